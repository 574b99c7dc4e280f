import Foundation
internal import Synchronization
import TetherScheduler
import TetherStore

/// What a bearer token may do. On the ControlService the roles are ordered
/// viewer < operator < admin (each may do what the ones before it may; `ControlAccess`
/// says which role each method needs); an agent token may call the AgentService only.
public enum TokenRole: String, Sendable, CaseIterable {
    /// Everything: the ControlService and, for testing, the AgentService.
    case admin
    /// Only the AgentService.
    case agent
    /// The ControlService's read methods, and the dashboard read-only.
    case viewer
    /// A viewer that may also act on runs, DAG schedules and agents (trigger, cancel,
    /// clear, backfill, pause, drain), on the ControlService and the dashboard.
    case `operator`

    /// Where the role stands on the ControlService; nil for agent tokens, which may not call it.
    var controlRank: Int? {
        switch self {
        case .viewer: 1
        case .operator: 2
        case .admin: 3
        case .agent: nil
        }
    }

    /// Whether a token of this role may call a ControlService method that needs `least`.
    func satisfies(_ least: TokenRole) -> Bool {
        guard let rank = controlRank, let needed = least.controlRank else { return false }
        return rank >= needed
    }
}

/// A stored token, without its secret (only the secret's SHA-256 is kept).
public struct TokenRecord: Sendable, Equatable {
    public var tokenID: String
    public var role: TokenRole
    public var description: String
    public var createdAtMilliseconds: Int64
    /// 0 means no expiry.
    public var expiresAtMilliseconds: Int64
    /// 0 means not revoked.
    public var revokedAtMilliseconds: Int64
    /// For an agent token bound to one agent: its name; empty allows any.
    public var agentName: String = ""
    /// When it last authenticated a call; 0 if never (see `TokenStore.authenticate`).
    public var lastUsedAtMilliseconds: Int64 = 0

    func isActive(at now: Int64) -> Bool {
        revokedAtMilliseconds == 0 && (expiresAtMilliseconds == 0 || now < expiresAtMilliseconds)
    }
}

/// Bearer tokens in their own small SQLite file. A secret reads
/// `tether_<token id>_<random>`; the store keeps the SHA-256 of the whole secret, so a
/// stolen database yields no usable token. All tokens are also held in memory: every
/// call is checked without touching the disk.
///
/// Last use: `authenticate` sets a token's `lastUsedAtMilliseconds` in memory only; at
/// most once per `lastUsedWriteInterval` per token it hands a write of the values that
/// changed to `scheduleWrite` (by default a detached task, off the caller's event loop),
/// and `persistLastUsed()` (called at shutdown) writes the rest. After a crash a token's
/// last use may be up to that interval old.
///
/// Thread-safe.
public final class TokenStore: Sendable {
    private struct Entry: Sendable {
        var record: TokenRecord
        var secretHash: String
        /// The last use written to disk (or being written).
        var lastUsedWritten: Int64
        /// When a write of the last use was last handed to `scheduleWrite`.
        var lastUsedWriteScheduledAt: Int64?
    }

    /// The longest lifetime a token can be given: 10 years.
    public static let maxTTLMilliseconds: Int64 = 10 * 365 * 86_400_000
    /// How often at most a token's last use is written to disk.
    public static let lastUsedWriteInterval: Int64 = 60_000

    private let database: Mutex<SQLiteDatabase>
    private let entries: Mutex<[String: Entry]>
    private let scheduleWrite: @Sendable (@escaping @Sendable () -> Void) -> Void

    /// Opens (creating if needed) the token database at `path`.
    /// - Parameter scheduleWrite: runs a write of tokens' last use, off the caller's
    ///   thread (by default in a detached task); tests pass their own to run it by hand.
    /// - Throws: `SQLiteError` or a migration error.
    public init(path: String, scheduleWrite: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void = { work in
        Task.detached { work() }
    }) throws {
        self.scheduleWrite = scheduleWrite
        let db = try SQLiteDatabase(.init(path: path))
        try db.migrate([SQLiteMigration(version: 1, name: "tokens", sql: """
            CREATE TABLE tokens (
                token_id TEXT PRIMARY KEY, role TEXT NOT NULL, description TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL, revoked_at_ms INTEGER NOT NULL);
            """),
            SQLiteMigration(version: 2, name: "agent tokens bound to a name",
                            sql: "ALTER TABLE tokens ADD COLUMN agent_name TEXT NOT NULL DEFAULT ''"),
            SQLiteMigration(version: 3, name: "token last use",
                            sql: "ALTER TABLE tokens ADD COLUMN last_used_at_ms INTEGER NOT NULL DEFAULT 0"),
        ])
        var loaded: [String: Entry] = [:]
        try db.query("""
            SELECT token_id, role, description, secret_sha256, created_at_ms, expires_at_ms, revoked_at_ms, agent_name,
                   last_used_at_ms FROM tokens
            """) { row in
            // A role this version does not know (written by a newer one) gets the least access.
            let record = TokenRecord(
                tokenID: row[0].text ?? "", role: TokenRole(rawValue: row[1].text ?? "") ?? .agent, description: row[2].text ?? "",
                createdAtMilliseconds: row[4].int64 ?? 0, expiresAtMilliseconds: row[5].int64 ?? 0,
                revokedAtMilliseconds: row[6].int64 ?? 0, agentName: row[7].text ?? "", lastUsedAtMilliseconds: row[8].int64 ?? 0)
            loaded[record.tokenID] = Entry(record: record, secretHash: row[3].text ?? "", lastUsedWritten: record.lastUsedAtMilliseconds)
        }
        database = Mutex(db)
        entries = Mutex(loaded)
    }

    /// Creates a token and returns it with its secret, which is never stored or shown again.
    /// `agentName` binds an agent token to the one agent name it may connect as.
    /// `beforeStoring` gets the secret before the token is stored, to keep it somewhere
    /// durable first: what it throws is thrown and no token is created.
    /// - Throws: `SQLiteError`, or what `beforeStoring` throws.
    public func create(role: TokenRole, description: String, ttlMilliseconds: Int64 = 0, agentName: String = "",
                       now: Int64, beforeStoring: (String) throws -> Void = { _ in }) throws -> (TokenRecord, secret: String) {
        let tokenID = Self.randomHex(bytes: 6)
        let secret = "tether_\(tokenID)_\(Self.randomHex(bytes: 24))"
        try beforeStoring(secret)
        return (try insert(tokenID: tokenID, secret: secret, role: role, description: description,
                           ttlMilliseconds: ttlMilliseconds, agentName: agentName, now: now), secret)
    }

    /// Makes `secret` (read from an operator's file) an admin token named "bootstrap",
    /// replacing an earlier bootstrap token. The secret must be 16+ printable characters.
    /// - Throws: `TokenStoreError.weakSecret` or `SQLiteError`.
    public func installBootstrap(secret: String, now: Int64) throws {
        guard secret.count >= 16, secret.allSatisfy({ $0.isASCII && !$0.isWhitespace && !$0.isNewline }) else {
            throw TokenStoreError.weakSecret
        }
        _ = try insert(tokenID: "bootstrap", secret: secret, role: .admin, description: "bootstrap token from file",
                       ttlMilliseconds: 0, now: now)
    }

    /// Whether any admin token is active.
    public func hasActiveAdmin(now: Int64) -> Bool {
        entries.withLock { $0.values.contains { $0.record.role == .admin && $0.record.isActive(at: now) } }
    }

    /// The active token `secret` belongs to, or nil. Marks it used at `now`, in memory
    /// (no disk I/O here: the write is scheduled, at most once a `lastUsedWriteInterval`).
    public func authenticate(secret: String, now: Int64) -> TokenRecord? {
        let hash = SHA256.hexDigest(of: Array(secret.utf8))
        let tokenID = Self.tokenID(inSecret: secret) ?? "bootstrap"
        let (record, writeDue) = entries.withLock { entries -> (TokenRecord?, Bool) in
            guard let entry = entries[tokenID], Self.constantTimeEqual(entry.secretHash, hash), entry.record.isActive(at: now) else {
                return (nil, false)
            }
            return Self.noteUse(&entries, tokenID, now)
        }
        if writeDue {
            scheduleWrite { [self] in _ = try? persistLastUsed() }
        }
        return record
    }

    /// Marks the active token `tokenID` used at `now`, as `authenticate` does (a dashboard
    /// session counts as a use of the token it was opened with); false if it is not active.
    @discardableResult
    public func markUsed(tokenID: String, now: Int64) -> Bool {
        let (record, writeDue) = entries.withLock { entries -> (TokenRecord?, Bool) in
            guard let entry = entries[tokenID], entry.record.isActive(at: now) else { return (nil, false) }
            return Self.noteUse(&entries, tokenID, now)
        }
        if writeDue {
            scheduleWrite { [self] in _ = try? persistLastUsed() }
        }
        return record != nil
    }

    /// Sets the last use of `entries[tokenID]` (which exists) and whether its write is due.
    private static func noteUse(_ entries: inout [String: Entry], _ tokenID: String, _ now: Int64) -> (TokenRecord?, Bool) {
        var entry = entries[tokenID]!
        entry.record.lastUsedAtMilliseconds = max(entry.record.lastUsedAtMilliseconds, now)
        var due = false
        if entry.lastUsedWriteScheduledAt.map({ now - $0 >= lastUsedWriteInterval }) ?? true {
            entry.lastUsedWriteScheduledAt = now
            due = true
        }
        entries[tokenID] = entry
        return (entry.record, due)
    }

    /// Writes every token's last use that changed since it was last written, in one
    /// transaction; returns how many tokens it wrote. Blocks on the disk: call it off
    /// event loops.
    /// - Throws: `SQLiteError` (the values stay to be written next time).
    @discardableResult
    public func persistLastUsed() throws -> Int {
        try database.withLock { db in
            let changed = entries.withLock { entries in
                entries.values.filter { $0.record.lastUsedAtMilliseconds > $0.lastUsedWritten }
                    .map { ($0.record.tokenID, $0.record.lastUsedAtMilliseconds) }
            }
            guard !changed.isEmpty else { return 0 }
            try db.transaction(.immediate) { db in
                for (tokenID, at) in changed {
                    try db.run("UPDATE tokens SET last_used_at_ms = ? WHERE token_id = ?", [.integer(at), .text(tokenID)])
                }
            }
            entries.withLock { entries in
                for (tokenID, at) in changed where entries[tokenID] != nil {
                    entries[tokenID]!.lastUsedWritten = max(entries[tokenID]!.lastUsedWritten, at)
                }
            }
            return changed.count
        }
    }

    /// Whether the token `tokenID` exists and is neither revoked nor expired at `now`.
    public func isActive(tokenID: String, now: Int64) -> Bool {
        entries.withLock { $0[tokenID]?.record.isActive(at: now) ?? false }
    }

    /// The token `tokenID` (active or not), or nil.
    public func record(tokenID: String) -> TokenRecord? {
        entries.withLock { $0[tokenID]?.record }
    }

    /// Every token, newest first; inactive ones only if asked for.
    public func list(includeInactive: Bool, now: Int64) -> [TokenRecord] {
        entries.withLock { $0.values.map(\.record) }
            .filter { includeInactive || $0.isActive(at: now) }
            .sorted { ($0.createdAtMilliseconds, $0.tokenID) > ($1.createdAtMilliseconds, $1.tokenID) }
    }

    /// Revokes a token; revoking twice keeps the first time.
    /// - Throws: `TokenStoreError.unknownToken` or `SQLiteError`.
    public func revoke(tokenID: String, now: Int64) throws -> TokenRecord {
        try database.withLock { db in
            guard var entry = entries.withLock({ $0[tokenID] }) else { throw TokenStoreError.unknownToken(tokenID) }
            if entry.record.revokedAtMilliseconds == 0 {
                try db.run("UPDATE tokens SET revoked_at_ms = ? WHERE token_id = ?", [.integer(now), .text(tokenID)])
                entry.record.revokedAtMilliseconds = now
                entries.withLock { $0[tokenID]?.record.revokedAtMilliseconds = now }
            }
            return entry.record
        }
    }

    private func insert(tokenID: String, secret: String, role: TokenRole, description: String, ttlMilliseconds: Int64,
                        agentName: String = "", now: Int64) throws -> TokenRecord {
        let ttl = min(max(0, ttlMilliseconds), Self.maxTTLMilliseconds)
        let record = TokenRecord(tokenID: tokenID, role: role, description: description, createdAtMilliseconds: now,
                                 expiresAtMilliseconds: ttl > 0 ? now + ttl : 0, revokedAtMilliseconds: 0, agentName: agentName)
        let hash = SHA256.hexDigest(of: Array(secret.utf8))
        try database.withLock { db in
            try db.run("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                       [.text(tokenID), .text(role.rawValue), .text(description), .text(hash), .integer(now),
                        .integer(record.expiresAtMilliseconds), .integer(0), .text(agentName)])
            entries.withLock { $0[tokenID] = Entry(record: record, secretHash: hash, lastUsedWritten: 0) }
        }
        return record
    }

    /// The token id in a `tether_<id>_<random>` secret.
    private static func tokenID(inSecret secret: String) -> String? {
        let parts = secret.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "tether", parts[1].count == 12 else { return nil }
        return String(parts[1])
    }

    private static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Compares secrets in time that does not depend on where they differ.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

public enum TokenStoreError: Error, CustomStringConvertible {
    case unknownToken(String)
    case weakSecret

    public var description: String {
        switch self {
        case .unknownToken(let id): return "no token '\(id)'"
        case .weakSecret: return "the bootstrap token must be at least 16 printable characters with no spaces"
        }
    }
}
