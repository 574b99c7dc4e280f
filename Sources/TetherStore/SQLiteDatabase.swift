internal import CSQLite

/// One SQLite connection: the sole owner of its `sqlite3*`, closed in deinit.
///
/// Threading: not Sendable. Use a connection from one thread at a time; the
/// connection is opened without SQLite's own mutex (`SQLITE_OPEN_NOMUTEX`).
/// Readers that run beside a writer open a connection of their own (WAL lets them).
///
/// Statements run through `run`, `query` and `scalar` are compiled once per SQL text
/// and cached (`SQLITE_PREPARE_PERSISTENT`); after each use they are reset and their
/// bindings cleared.
public final class SQLiteDatabase {
    /// How to open a connection.
    public struct Options: Sendable {
        public enum Access: Sendable {
            case readOnly
            /// Read-write, creating the file if needed; the connection also turns on WAL.
            case readWriteCreate
        }

        /// `PRAGMA synchronous` under WAL.
        public enum Synchronous: String, Sendable, CaseIterable {
            /// fsync the WAL on every commit: a commit survives power loss.
            case full
            /// fsync only at checkpoints: a commit survives a process crash but
            /// the last ones may be lost on power loss.
            case normal
        }

        /// A file path (in-memory databases cannot use WAL, so are not supported).
        public var path: String
        public var access: Access
        public var synchronous: Synchronous
        /// How long a statement waits for another connection's lock before failing
        /// with `.busy`.
        public var busyTimeout: Duration
        /// How many distinct SQL texts keep a compiled statement; beyond it, statements
        /// are compiled for one use.
        public var statementCacheCapacity: Int

        public init(path: String, access: Access = .readWriteCreate, synchronous: Synchronous = .full,
                    busyTimeout: Duration = .seconds(5), statementCacheCapacity: Int = 256) {
            self.path = path
            self.access = access
            self.synchronous = synchronous
            self.busyTimeout = busyTimeout
            self.statementCacheCapacity = statementCacheCapacity
        }
    }

    /// What a `run` changed.
    public struct Changes: Sendable, Equatable {
        /// Rows inserted, updated or deleted by the statement (`sqlite3_changes64`).
        public let count: Int
        /// The connection's last inserted rowid after the statement.
        public let lastInsertRowID: Int64
    }

    let handle: OpaquePointer
    public let options: Options
    private var cache: [String: SQLiteStatement] = [:]
    private var savepointDepth = 0

    /// How many statements this connection has compiled; a cached statement is
    /// compiled once however often it runs.
    public private(set) var compiledStatementCount = 0

    /// Opens (and for read-write, creates) the database at `options.path`, then sets
    /// WAL (read-write only), `synchronous`, the busy timeout and `foreign_keys = ON`.
    /// Read-write: the database and its sidecars are 0600 (`PrivateFiles.prepareDatabase`).
    /// Throws `SQLiteError` if the file cannot be opened or a setting does not take.
    public init(_ options: Options) throws(SQLiteError) {
        if options.access == .readWriteCreate {
            do {
                try PrivateFiles.prepareDatabase(options.path)
            } catch {
                throw SQLiteError(code: .cantOpen, message: error.description, operation: "open \(options.path)")
            }
        }
        var connection: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        flags |= options.access == .readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let result = sqlite3_open_v2(options.path, &connection, flags, nil)
        guard result == SQLITE_OK, let connection else {
            let error = sqliteError(result, connection, "open \(options.path)")
            // A failed open may still allocate a handle, which must be closed.
            sqlite3_close_v2(connection)
            throw error
        }
        self.handle = connection
        self.options = options
        let milliseconds = options.busyTimeout.components.seconds * 1000
            + options.busyTimeout.components.attoseconds / 1_000_000_000_000_000
        try checkSQLite(sqlite3_busy_timeout(connection, Int32(clamping: milliseconds)), connection, "set busy timeout")
        if options.access == .readWriteCreate {
            let mode = try scalar("PRAGMA journal_mode = WAL")
            guard mode.text?.lowercased() == "wal" else {
                throw SQLiteError(code: .error, message: "journal_mode is \(mode), not wal",
                                  operation: "set WAL journal mode", sql: "PRAGMA journal_mode = WAL")
            }
        }
        try execute("PRAGMA synchronous = \(options.synchronous.rawValue.uppercased()); PRAGMA foreign_keys = ON")
    }

    deinit {
        cache.removeAll()   // finalizes the cached statements before the connection goes
        sqlite3_close_v2(handle)
    }

    /// Runs a script of zero or more statements separated by semicolons, with no
    /// arguments; rows are discarded. Statements before a failing one stay applied.
    /// Throws `SQLiteError` carrying the failing statement's text.
    public func execute(_ script: String) throws(SQLiteError) {
        let utf8 = Array(script.utf8CString)
        try utf8.withUnsafeBufferPointer { (buffer) throws(SQLiteError) in
            guard let base = buffer.baseAddress else { return }
            let terminator = base + buffer.count - 1
            var cursor = base
            while cursor < terminator {
                var statement: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let result = sqlite3_prepare_v3(handle, cursor, -1, 0, &statement, &tail)
                let end = tail ?? terminator
                let text = String(decoding: UnsafeRawBufferPointer(start: cursor, count: end - cursor), as: UTF8.self)
                compiledStatementCount += 1
                try checkSQLite(result, handle, "prepare", sql: text)
                cursor = end
                guard let statement else { continue }   // only whitespace or a comment
                defer { sqlite3_finalize(statement) }
                var step = sqlite3_step(statement)
                while step == SQLITE_ROW { step = sqlite3_step(statement) }
                try checkSQLite(step, handle, "step", sql: text, accepting: SQLITE_DONE)
            }
        }
    }

    /// Runs one statement with `arguments` bound to `?` parameters 1...n, discarding
    /// any rows. Throws `SQLiteError` with the SQL and arguments.
    @discardableResult
    public func run(_ sql: String, _ arguments: [SQLiteValue] = []) throws(SQLiteError) -> Changes {
        let statement = try acquire(sql, arguments)
        defer { statement.reset() }
        while try statement.step(arguments) {}
        return Changes(count: Int(sqlite3_changes64(handle)), lastInsertRowID: sqlite3_last_insert_rowid(handle))
    }

    /// Runs one statement and calls `body` with each row, in order. The row is valid
    /// only during that call. Throws the `SQLiteError` of the statement, or what
    /// `body` throws (which stops the query).
    public func query(_ sql: String, _ arguments: [SQLiteValue] = [], _ body: (SQLiteRow) throws -> Void) throws {
        let statement = try acquire(sql, arguments)
        defer { statement.reset() }
        while try statement.step(arguments) { try body(SQLiteRow(statement)) }
    }

    /// `body` applied to the first row, or nil when there is none. Throws like `query`.
    public func firstRow<T>(_ sql: String, _ arguments: [SQLiteValue] = [], _ body: (SQLiteRow) throws -> T) throws -> T? {
        let statement = try acquire(sql, arguments)
        defer { statement.reset() }
        return try statement.step(arguments) ? try body(SQLiteRow(statement)) : nil
    }

    /// The first column of the first row, or `.null` when there is no row.
    /// Throws `SQLiteError` with the SQL and arguments.
    public func scalar(_ sql: String, _ arguments: [SQLiteValue] = []) throws(SQLiteError) -> SQLiteValue {
        let statement = try acquire(sql, arguments)
        defer { statement.reset() }
        return try statement.step(arguments) ? statement.column(0) : .null
    }

    /// Whether a transaction is open (SQLite is not in autocommit mode).
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// The lines of `PRAGMA integrity_check`: `["ok"]` for a sound database.
    /// Throws `SQLiteError` (`.corrupt` when the damage stops the check itself).
    public func integrityCheck() throws(SQLiteError) -> [String] {
        let statement = try acquire("PRAGMA integrity_check", [])
        defer { statement.reset() }
        var lines: [String] = []
        while try statement.step([]) { lines.append(statement.column(0).text ?? "") }
        return lines
    }

    /// A bound statement for `sql`, from the cache when free; the caller resets it
    /// (`defer { statement.reset() }`) however its use ends.
    private func acquire(_ sql: String, _ arguments: [SQLiteValue]) throws(SQLiteError) -> SQLiteStatement {
        let statement = try statement(for: sql)
        statement.inUse = true
        do {
            try statement.bind(arguments)
        } catch {
            statement.reset()
            throw error
        }
        return statement
    }

    private func statement(for sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = cache[sql], !cached.inUse { return cached }
        let cacheable = cache[sql] == nil && cache.count < options.statementCacheCapacity
        let statement = try SQLiteStatement(connection: handle, sql: sql, persistent: cacheable)
        compiledStatementCount += 1
        if cacheable { cache[sql] = statement }
        return statement
    }

    /// The next savepoint name; transactions nest as savepoints.
    func pushSavepoint() -> String {
        savepointDepth += 1
        return "tether_savepoint_\(savepointDepth)"
    }

    func popSavepoint() { savepointDepth -= 1 }
}

@available(*, unavailable)
extension SQLiteDatabase: Sendable {}
