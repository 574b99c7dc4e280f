internal import Synchronization
import TetherStore

/// One audited call: who (token), what (method, target, argument summary), from where
/// (peer address), when, through which surface, and how it ended.
public struct AuditEntry: Sendable, Equatable {
    /// The surface a call came through.
    public enum Surface: String, Sendable {
        case grpc
        case dashboard
    }

    /// Position in the log, from 1; set by `AuditLog.append`.
    public var id: Int64 = 0
    public var atMilliseconds: Int64
    public var tokenID: String
    public var tokenDescription: String
    public var role: TokenRole
    /// The RPC's name, e.g. "TriggerRun".
    public var method: String
    /// "dag:…", "run:…", "task:RUN/TASK", "agent:…", "pool:…", "token:…", or "".
    public var target: String
    /// The arguments in a few words, never a secret.
    public var summary: String
    public var peer: String
    public var surface: Surface
    /// The gRPC status code (0 is OK).
    public var statusCode: Int
    public var statusMessage: String
}

/// The audit log: every ControlService call that changes something and every dashboard
/// action, allowed or refused with PERMISSION_DENIED, in its own SQLite file
/// (`DATA_DIR/audit.db`), which this type alone opens. A file of its own rather than a
/// table in `tokens.db`: appends and pruning never wait on the token store's lock (or it
/// on them), the tokens file stays small, and an operator can copy, ship or rotate the
/// log without touching credentials.
///
/// Calls refused for a missing or unknown token (UNAUTHENTICATED) are not recorded: the
/// caller is nobody, and recording them would let anyone push real entries out of a
/// bounded log.
///
/// Retention: the newest `Retention.maxEntries` entries are kept. Once
/// `maxEntries + pruneBatch` are stored, one DELETE removes the oldest `pruneBatch`, so
/// pruning costs one statement per `pruneBatch` appends.
///
/// Thread-safe; every method blocks on the disk (an append waits for its fsync): call
/// them off event loops.
public final class AuditLog: Sendable {
    public struct Retention: Sendable {
        public var maxEntries: Int
        public var pruneBatch: Int

        public init(maxEntries: Int = 100_000, pruneBatch: Int = 1_000) {
            self.maxEntries = max(1, maxEntries)
            self.pruneBatch = max(1, pruneBatch)
        }
    }

    /// The most entries one `entries` call returns.
    public static let maxPageSize = 1_000

    public let retention: Retention
    private struct State {
        let db: SQLiteDatabase
        /// The lowest id stored (ids only grow and only the oldest are deleted, so the
        /// count is `next - oldest`).
        var oldest: Int64
    }
    private let state: Mutex<State>

    /// Opens (creating if needed) the log at `path`.
    /// - Throws: `SQLiteError` or a migration error.
    public init(path: String, retention: Retention = Retention()) throws {
        self.retention = retention
        let db = try SQLiteDatabase(.init(path: path))
        try db.migrate([SQLiteMigration(version: 1, name: "audit log", sql: """
            CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, token_id TEXT NOT NULL,
                token_description TEXT NOT NULL, role TEXT NOT NULL, method TEXT NOT NULL, target TEXT NOT NULL,
                summary TEXT NOT NULL, peer TEXT NOT NULL, surface TEXT NOT NULL, status_code INTEGER NOT NULL,
                status_message TEXT NOT NULL);
            """)])
        let oldest = try db.scalar("SELECT COALESCE(MIN(id), 0) FROM audit").int64 ?? 0
        state = Mutex(State(db: db, oldest: oldest))
    }

    /// Appends `entry` (its `id` is ignored), durably, pruning the oldest entries when
    /// due; returns it with its id.
    /// - Throws: `SQLiteError`.
    @discardableResult
    public func append(_ entry: AuditEntry) throws -> AuditEntry {
        try state.withLock { state in
            var stored = entry
            stored.id = try state.db.run("""
                INSERT INTO audit (at_ms, token_id, token_description, role, method, target, summary, peer, surface,
                                   status_code, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.integer(entry.atMilliseconds), .text(entry.tokenID), .text(entry.tokenDescription),
                      .text(entry.role.rawValue), .text(entry.method), .text(entry.target), .text(entry.summary),
                      .text(entry.peer), .text(entry.surface.rawValue), .integer(Int64(entry.statusCode)),
                      .text(entry.statusMessage)]).lastInsertRowID
            if state.oldest == 0 { state.oldest = stored.id }
            if stored.id - state.oldest + 1 >= Int64(retention.maxEntries + retention.pruneBatch) {
                let keepFrom = stored.id - Int64(retention.maxEntries) + 1
                try state.db.run("DELETE FROM audit WHERE id < ?", [.integer(keepFrom)])
                state.oldest = keepFrom
            }
            return stored
        }
    }

    /// Entries newest first, at most `limit` (capped at `maxPageSize`), older than id
    /// `before` if given, and matching every filter given.
    /// - Throws: `SQLiteError`.
    public func entries(since sinceMilliseconds: Int64 = 0, tokenID: String = "", method: String = "", before: Int64? = nil,
                        limit: Int) throws -> [AuditEntry] {
        var conditions = ["at_ms >= ?"]
        var arguments: [SQLiteValue] = [.integer(sinceMilliseconds)]
        if !tokenID.isEmpty {
            conditions.append("token_id = ?")
            arguments.append(.text(tokenID))
        }
        if !method.isEmpty {
            conditions.append("method = ?")
            arguments.append(.text(method))
        }
        if let before {
            conditions.append("id < ?")
            arguments.append(.integer(before))
        }
        arguments.append(.integer(Int64(min(max(0, limit), Self.maxPageSize))))
        var found: [AuditEntry] = []
        try state.withLock { state in
            try state.db.query("""
                SELECT id, at_ms, token_id, token_description, role, method, target, summary, peer, surface, status_code,
                       status_message FROM audit WHERE \(conditions.joined(separator: " AND ")) ORDER BY id DESC LIMIT ?
                """, arguments) { row in
                found.append(AuditEntry(
                    id: row[0].int64 ?? 0, atMilliseconds: row[1].int64 ?? 0, tokenID: row[2].text ?? "",
                    tokenDescription: row[3].text ?? "", role: TokenRole(rawValue: row[4].text ?? "") ?? .agent,
                    method: row[5].text ?? "", target: row[6].text ?? "", summary: row[7].text ?? "", peer: row[8].text ?? "",
                    surface: AuditEntry.Surface(rawValue: row[9].text ?? "") ?? .grpc, statusCode: Int(row[10].int64 ?? 0),
                    statusMessage: row[11].text ?? ""))
            }
        }
        return found
    }

    /// How many entries are stored.
    public var count: Int {
        (try? state.withLock { try $0.db.scalar("SELECT COUNT(*) FROM audit").int64 }).flatMap { $0 }.map(Int.init) ?? 0
    }
}
