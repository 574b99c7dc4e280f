import TetherStore
import TetherTestSupport

extension ScratchDirectory {
    /// A read-write connection to `name` in this directory.
    func open(_ name: String = "test.db", synchronous: SQLiteDatabase.Options.Synchronous = .full) throws -> SQLiteDatabase {
        try SQLiteDatabase(SQLiteDatabase.Options(path: path(name), synchronous: synchronous))
    }
}
