internal import CSQLite

/// One compiled statement: the sole owner of its `sqlite3_stmt`, finalized in deinit.
///
/// Used only by the `SQLiteDatabase` that prepared it, on that connection's thread.
final class SQLiteStatement {
    let handle: OpaquePointer
    let connection: OpaquePointer
    let sql: String
    /// Bumped on every step and reset, so a `SQLiteRow` can tell it has gone stale.
    private(set) var generation = 0
    /// Whether a caller is between bind and reset; a cached statement in use is not
    /// handed out again (a query inside its own row callback gets a fresh one).
    var inUse = false

    /// Compiles `sql` (exactly one statement). Throws `SQLiteError` (with the SQL) if it
    /// does not compile.
    init(connection: OpaquePointer, sql: String, persistent: Bool) throws(SQLiteError) {
        var statement: OpaquePointer?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let result = sql.withCString { sqlite3_prepare_v3(connection, $0, -1, flags, &statement, nil) }
        try checkSQLite(result, connection, "prepare", sql: sql)
        guard let statement else {
            throw SQLiteError(code: .misuse, message: "no statement in the SQL text", operation: "prepare", sql: sql)
        }
        self.handle = statement
        self.connection = connection
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds `arguments` to parameters 1...n. Throws `SQLiteError` (`.range` on a count
    /// mismatch).
    func bind(_ arguments: [SQLiteValue]) throws(SQLiteError) {
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard expected == arguments.count else {
            throw SQLiteError(code: .range, message: "statement takes \(expected) arguments, got \(arguments.count)",
                              operation: "bind", sql: sql, arguments: arguments)
        }
        for (offset, value) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let result: Int32
            switch value {
            case .null:
                result = sqlite3_bind_null(handle, index)
            case .integer(let integer):
                result = sqlite3_bind_int64(handle, index, integer)
            case .real(let real):
                result = sqlite3_bind_double(handle, index, real)
            case .text(var text):
                result = text.withUTF8 { bytes in
                    // An empty buffer may have no base address, which SQLite would bind as NULL.
                    guard let base = bytes.baseAddress, bytes.count > 0 else {
                        return sqlite3_bind_text(handle, index, "", 0, tether_sqlite_transient())
                    }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        sqlite3_bind_text64(handle, index, $0, UInt64(bytes.count), tether_sqlite_transient(),
                                            UInt8(SQLITE_UTF8))
                    }
                }
            case .blob(let blob):
                result = blob.withUnsafeBytes { bytes in
                    guard let base = bytes.baseAddress, bytes.count > 0 else {
                        return sqlite3_bind_zeroblob(handle, index, 0)
                    }
                    return sqlite3_bind_blob64(handle, index, base, UInt64(bytes.count), tether_sqlite_transient())
                }
            }
            try checkSQLite(result, connection, "bind argument \(index)", sql: sql, arguments: arguments)
        }
    }

    /// Steps once: true with a row ready, false when done. Throws `SQLiteError` with the
    /// SQL and `arguments` (for the message only).
    func step(_ arguments: [SQLiteValue]) throws(SQLiteError) -> Bool {
        generation &+= 1
        let result = sqlite3_step(handle)
        switch result {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw sqliteError(result, connection, "step", sql: sql, arguments: arguments)
        }
    }

    /// Makes the statement ready for its next use. The result of `sqlite3_reset`
    /// repeats the last step's error, which `step` already threw, so it is not checked.
    func reset() {
        generation &+= 1
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        inUse = false
    }

    var columnCount: Int { Int(sqlite3_column_count(handle)) }

    func columnName(_ index: Int) -> String {
        sqlite3_column_name(handle, Int32(index)).map { String(cString: $0) } ?? ""
    }

    func column(_ index: Int) -> SQLiteValue {
        let column = Int32(index)
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(handle, column))
        case SQLITE_FLOAT:
            return .real(sqlite3_column_double(handle, column))
        case SQLITE_TEXT:
            // Text first, then its length: the documented order for a conversion-free read.
            guard let text = sqlite3_column_text(handle, column) else { return .text("") }
            let count = Int(sqlite3_column_bytes(handle, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let bytes = sqlite3_column_blob(handle, column)
            let count = Int(sqlite3_column_bytes(handle, column))
            guard let bytes, count > 0 else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
        default:
            return .null
        }
    }
}

/// The current row of a query. Valid only inside the row callback that received it:
/// using it after the callback returns is a programming error and traps.
///
/// Not Sendable: read it on the thread that runs the query.
public struct SQLiteRow {
    private let statement: SQLiteStatement
    private let generation: Int

    init(_ statement: SQLiteStatement) {
        self.statement = statement
        self.generation = statement.generation
    }

    /// The number of columns in the result.
    public var count: Int {
        checkValid()
        return statement.columnCount
    }

    /// The value of column `index` (0-based).
    public subscript(index: Int) -> SQLiteValue {
        checkValid()
        precondition(index >= 0 && index < statement.columnCount, "column \(index) out of range")
        return statement.column(index)
    }

    /// The name of column `index` (0-based), as SQLite reports it.
    public func columnName(_ index: Int) -> String {
        checkValid()
        return statement.columnName(index)
    }

    private func checkValid() {
        precondition(generation == statement.generation, "SQLiteRow used outside its row callback")
    }
}

@available(*, unavailable)
extension SQLiteRow: Sendable {}
