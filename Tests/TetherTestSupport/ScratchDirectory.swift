public import Foundation

/// A fresh directory for a test's files, removed when the value is released.
public final class ScratchDirectory: Sendable {
    public let url: URL

    public init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("tether-test-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// The path of `name` inside this directory.
    public func path(_ name: String = "test.db") -> String { url.appendingPathComponent(name).path }
}
