internal import CSQLite

/// A SQLite result code, primary or extended (`SQLITE_CONSTRAINT_UNIQUE` is 2067,
/// whose primary code is `SQLITE_CONSTRAINT`, 19).
///
/// Match an extended code against a primary one with `~=`, so
/// `case .constraint = error.code` also catches `SQLITE_CONSTRAINT_UNIQUE`.
public struct SQLiteResultCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The primary code: the low 8 bits of an extended code.
    public var primary: SQLiteResultCode { SQLiteResultCode(rawValue: rawValue & 0xFF) }

    public static let ok = SQLiteResultCode(rawValue: SQLITE_OK)
    public static let error = SQLiteResultCode(rawValue: SQLITE_ERROR)
    public static let abort = SQLiteResultCode(rawValue: SQLITE_ABORT)
    public static let busy = SQLiteResultCode(rawValue: SQLITE_BUSY)
    public static let locked = SQLiteResultCode(rawValue: SQLITE_LOCKED)
    public static let noMemory = SQLiteResultCode(rawValue: SQLITE_NOMEM)
    public static let readOnly = SQLiteResultCode(rawValue: SQLITE_READONLY)
    public static let interrupt = SQLiteResultCode(rawValue: SQLITE_INTERRUPT)
    public static let ioError = SQLiteResultCode(rawValue: SQLITE_IOERR)
    public static let corrupt = SQLiteResultCode(rawValue: SQLITE_CORRUPT)
    public static let full = SQLiteResultCode(rawValue: SQLITE_FULL)
    public static let cantOpen = SQLiteResultCode(rawValue: SQLITE_CANTOPEN)
    public static let tooBig = SQLiteResultCode(rawValue: SQLITE_TOOBIG)
    public static let constraint = SQLiteResultCode(rawValue: SQLITE_CONSTRAINT)
    public static let mismatch = SQLiteResultCode(rawValue: SQLITE_MISMATCH)
    public static let misuse = SQLiteResultCode(rawValue: SQLITE_MISUSE)
    public static let range = SQLiteResultCode(rawValue: SQLITE_RANGE)
    public static let notADatabase = SQLiteResultCode(rawValue: SQLITE_NOTADB)
    public static let row = SQLiteResultCode(rawValue: SQLITE_ROW)
    public static let done = SQLiteResultCode(rawValue: SQLITE_DONE)

    /// A primary pattern matches any of its extended codes; an extended pattern
    /// matches only itself.
    public static func ~= (pattern: SQLiteResultCode, code: SQLiteResultCode) -> Bool {
        pattern == code || (pattern == pattern.primary && pattern == code.primary)
    }

    /// e.g. "SQLITE_CONSTRAINT (2067: UNIQUE constraint failed)" — SQLite's own text for the code.
    public var description: String {
        let text = String(cString: sqlite3_errstr(rawValue))
        return "\(Self.primaryNames[primary.rawValue] ?? "SQLITE_\(primary.rawValue)") (\(rawValue): \(text))"
    }

    private static let primaryNames: [Int32: String] = [
        SQLITE_OK: "SQLITE_OK", SQLITE_ERROR: "SQLITE_ERROR", SQLITE_INTERNAL: "SQLITE_INTERNAL",
        SQLITE_PERM: "SQLITE_PERM", SQLITE_ABORT: "SQLITE_ABORT", SQLITE_BUSY: "SQLITE_BUSY",
        SQLITE_LOCKED: "SQLITE_LOCKED", SQLITE_NOMEM: "SQLITE_NOMEM", SQLITE_READONLY: "SQLITE_READONLY",
        SQLITE_INTERRUPT: "SQLITE_INTERRUPT", SQLITE_IOERR: "SQLITE_IOERR", SQLITE_CORRUPT: "SQLITE_CORRUPT",
        SQLITE_NOTFOUND: "SQLITE_NOTFOUND", SQLITE_FULL: "SQLITE_FULL", SQLITE_CANTOPEN: "SQLITE_CANTOPEN",
        SQLITE_PROTOCOL: "SQLITE_PROTOCOL", SQLITE_SCHEMA: "SQLITE_SCHEMA", SQLITE_TOOBIG: "SQLITE_TOOBIG",
        SQLITE_CONSTRAINT: "SQLITE_CONSTRAINT", SQLITE_MISMATCH: "SQLITE_MISMATCH", SQLITE_MISUSE: "SQLITE_MISUSE",
        SQLITE_NOLFS: "SQLITE_NOLFS", SQLITE_AUTH: "SQLITE_AUTH", SQLITE_RANGE: "SQLITE_RANGE",
        SQLITE_NOTADB: "SQLITE_NOTADB", SQLITE_NOTICE: "SQLITE_NOTICE", SQLITE_WARNING: "SQLITE_WARNING",
        SQLITE_ROW: "SQLITE_ROW", SQLITE_DONE: "SQLITE_DONE",
    ]
}

/// A failed SQLite call: the result code, SQLite's message, what the store was doing,
/// and the SQL and arguments involved (if any).
public struct SQLiteError: Error, CustomStringConvertible {
    /// The (extended) result code; compare with `~=` against primary codes.
    public let code: SQLiteResultCode
    /// `sqlite3_errmsg` at the time of the failure, or our own explanation.
    public let message: String
    /// What the store was doing, e.g. "prepare", "step", "open /var/tether.db".
    public let operation: String
    /// The statement involved, if any.
    public let sql: String?
    /// The arguments bound to `sql`.
    public let arguments: [SQLiteValue]

    public init(code: SQLiteResultCode, message: String, operation: String,
                sql: String? = nil, arguments: [SQLiteValue] = []) {
        self.code = code
        self.message = message
        self.operation = operation
        self.sql = sql
        self.arguments = arguments
    }

    /// e.g. `SQLite step failed: SQLITE_CONSTRAINT (2067: …): UNIQUE constraint failed: t.id
    /// in "INSERT INTO t(id) VALUES (?)" with [1]`.
    public var description: String {
        var text = "SQLite \(operation) failed: \(code): \(message)"
        if let sql { text += " in \"\(sql)\"" }
        if !arguments.isEmpty { text += " with [\(arguments.map(\.shortDescription).joined(separator: ", "))]" }
        return text
    }
}

/// The one check for SQLite return codes: anything but `accepted` becomes a
/// `SQLiteError` carrying the connection's current message.
func checkSQLite(
    _ result: Int32, _ connection: OpaquePointer?, _ operation: @autoclosure () -> String,
    sql: String? = nil, arguments: [SQLiteValue] = [], accepting accepted: Int32 = SQLITE_OK
) throws(SQLiteError) {
    guard result != accepted else { return }
    throw sqliteError(result, connection, operation(), sql: sql, arguments: arguments)
}

/// The error for a result code that a caller already knows is a failure.
func sqliteError(
    _ result: Int32, _ connection: OpaquePointer?, _ operation: String,
    sql: String? = nil, arguments: [SQLiteValue] = []
) -> SQLiteError {
    // With no connection (a failed open), SQLite's generic text for the code is all there is.
    let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(result))
    return SQLiteError(code: SQLiteResultCode(rawValue: result), message: message, operation: operation,
                       sql: sql, arguments: arguments)
}
