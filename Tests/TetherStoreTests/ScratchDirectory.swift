import Foundation
import TetherStore

/// A fresh directory for a test's database files, removed when the value is released.
final class ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("tether-store-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String = "test.db") -> String { url.appendingPathComponent(name).path }

    /// A read-write connection to `name` in this directory.
    func open(_ name: String = "test.db", synchronous: SQLiteDatabase.Options.Synchronous = .full) throws -> SQLiteDatabase {
        try SQLiteDatabase(SQLiteDatabase.Options(path: path(name), synchronous: synchronous))
    }
}
