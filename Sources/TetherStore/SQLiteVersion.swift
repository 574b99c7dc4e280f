internal import CSQLite

/// The SQLite library the store runs on.
public enum SQLiteLibrary {
    /// SQLite's version as loaded at run time, e.g. "3.40.1".
    public static var version: String { String(cString: sqlite3_libversion()) }
}
