public import H2
public import TetherStore
public import TetherWire
import Glibc
import Foundation

/// The agent's durable outbox: task events wait here, numbered, until the server's Ack
/// covers them; and the leases whose processes are running, so that after a crash the
/// agent can find and kill what it left behind.
///
/// One SQLite file (`outbox.db` under `state_dir`) in WAL mode with `synchronous=NORMAL`:
/// a write that returns survives a crash or kill of the agent at once, and a power loss
/// once `sync()` has run (the agent calls it every second). An fsync per event cost the
/// agent a sixth of its task throughput; what a power loss can take instead is the last
/// second's events not yet acknowledged, whose tasks the server then re-runs when their
/// leases expire (without using a retry), as it would had the machine died a second sooner.
///
/// Sequence numbers start at 1, grow by 1 per event, and are never reused: the last one
/// issued is the larger of the newest stored event's and a meta row written whenever
/// acknowledged events are deleted, so neither deletions nor restarts bring an old number
/// back.
///
/// The unacknowledged events are also kept in memory, so reading them costs no query. An
/// acknowledgement only moves a mark in memory; the acknowledged rows are deleted in the
/// next write's transaction (or by `sync()`), so it costs no transaction of its own. A
/// crash before that deletion makes the restarted agent send those events again, which
/// the server, applying each sequence number once, answers as duplicates.
///
/// One process at a time: the outbox holds an exclusive `flock` on `outbox.db.lock` while
/// it is open, and a second agent given the same `state_dir` fails to open it instead of
/// mixing its events and sequence numbers into the first one's.
///
/// Thread-safe: one connection behind a lock; callers on any thread are serialised.
/// Writes block on disk I/O, so call them off Swift's cooperative pool.
public final class EventOutbox: @unchecked Sendable {
    /// The database file's name under `state_dir`.
    public static let fileName = "outbox.db"

    /// The database file.
    public let path: String
    // Safety (@unchecked Sendable): `connection`, `writes` and the event state below are
    // used only while `lock` is held; `checkpointer` and `syncedWrites` only while
    // `syncLock` is.
    private let connection: SQLiteDatabase
    private let lock = NSLock()
    /// Write transactions begun so far.
    private var writes: UInt64 = 0
    /// The last sequence number issued.
    private var lastIssued: UInt64
    /// The events not yet acknowledged, in sequence order, from index `firstUnacknowledged`.
    private var events: [(sequence: UInt64, event: AgentV1.TaskEvent)]
    private var firstUnacknowledged = 0
    /// The server's highest acknowledgement so far, and how far the rows on disk are deleted.
    private var acknowledged: UInt64 = 0
    private var deletedThrough: UInt64 = 0
    /// Holds the exclusive `flock` that keeps other processes out.
    private let lockFile: FileDescriptor
    /// A second connection, for `sync()`: its checkpoint and fsyncs never hold up writers.
    private let checkpointer: SQLiteDatabase
    private let syncLock = NSLock()
    /// `writes` as of the last complete checkpoint; nil before the first.
    private var syncedWrites: UInt64?

    /// Opens (creating if needed) `directory/outbox.db` (0600, as its sidecars), creating
    /// `directory` (0700) too, and migrates its schema.
    ///
    /// - Throws: `EventOutboxError` if the directory or database cannot be created or opened.
    public convenience init(directory: String) throws(EventOutboxError) {
        do {
            try LogDirectory.makeDirectories(directory)
        } catch {
            throw .system(error)
        }
        try self.init(path: (directory.hasSuffix("/") ? directory : directory + "/") + Self.fileName)
    }

    /// Opens (creating if needed) the outbox database at `path` and migrates its schema.
    ///
    /// - Throws: `EventOutboxError.inUse` if another open outbox (in any process) holds
    ///   `path`; `.system`, `.database` or `.migration`.
    public init(path: String) throws(EventOutboxError) {
        self.path = path
        let lockFD = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw .system(SystemError("open \(path).lock", errno: errno)) }
        lockFile = FileDescriptor(owning: lockFD)
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { throw .inUse(path) }
            throw .system(SystemError("flock \(path).lock", errno: errno))
        }
        let connection: SQLiteDatabase
        do {
            connection = try SQLiteDatabase(.init(path: path, access: .readWriteCreate, synchronous: .normal))
        } catch {
            throw .database(error)
        }
        do {
            try connection.migrate(Self.migrations)
        } catch let error as SQLiteError {
            throw .database(error)
        } catch {
            throw .migration("\(error)")
        }
        self.connection = connection
        do {
            checkpointer = try SQLiteDatabase(.init(path: path, access: .readWriteCreate, synchronous: .normal))
            let meta = UInt64(try connection.scalar("SELECT value FROM outbox_meta WHERE key = 'last_sequence'").int64 ?? 0)
            var rows: [(UInt64, [UInt8])] = []
            try connection.query("SELECT sequence, payload FROM events ORDER BY sequence") { row in
                rows.append((UInt64(row[0].int64 ?? 0), row[1].blob ?? []))
            }
            lastIssued = max(meta, rows.last?.0 ?? 0)
            events = []
            events.reserveCapacity(rows.count)
            for (sequence, payload) in rows {
                do {
                    var event = try AgentV1.TaskEvent(serializedBytes: payload)
                    event.sequence = sequence  // renumbering changes the row's key, not its payload
                    events.append((sequence, event))
                } catch {
                    throw EventOutboxError.undecodableEvent(sequence: sequence, error)
                }
            }
        } catch {
            throw EventOutboxError(error)
        }
    }

    deinit {
        // A clean close leaves no acknowledged event behind to be sent again.
        if acknowledged > deletedThrough { try? transaction { _ in } }
    }

    static let migrations = [
        SQLiteMigration(version: 1, name: "outbox", sql: """
            CREATE TABLE outbox_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
            INSERT INTO outbox_meta(key, value) VALUES ('last_sequence', 0);
            CREATE TABLE events(
                sequence INTEGER PRIMARY KEY,
                lease_id TEXT NOT NULL,
                payload BLOB NOT NULL
            ) STRICT;
            CREATE TABLE leases(
                lease_id TEXT PRIMARY KEY,
                epoch INTEGER NOT NULL,
                dag_id TEXT NOT NULL,
                run_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                process_group INTEGER NOT NULL,
                process_start_ticks INTEGER,
                boot_id TEXT,
                started_at_unix_us INTEGER NOT NULL
            ) STRICT;
            """),
    ]

    // MARK: - Events

    /// Stores `event` under the next sequence number (its `sequence` field is set to it)
    /// and returns that number once the event is written. An event of a final kind
    /// (anything but `started`) also forgets the lease's running record, in the same
    /// transaction, so a crash cannot leave both a final event and a lease to reap.
    ///
    /// - Throws: `EventOutboxError`; nothing is stored then, and no number is used up.
    @discardableResult
    public func append(_ event: AgentV1.TaskEvent) throws(EventOutboxError) -> UInt64 {
        try appending(event) { _ in }
    }

    /// Records `lease` as running and appends its `started` event, atomically; returns
    /// the event's sequence number once both are written.
    ///
    /// - Throws: `EventOutboxError`; nothing is stored then.
    @discardableResult
    public func recordStart(of lease: RunningLease, event: AgentV1.TaskEvent) throws(EventOutboxError) -> UInt64 {
        try appending(event) { database in try Self.insert(lease, bootID: ProcessIdentity.bootID, into: database) }
    }

    /// Stores `event` under the next number, after `also` in the same transaction.
    private func appending(_ event: AgentV1.TaskEvent, also: (SQLiteDatabase) throws -> Void) throws(EventOutboxError) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        var stored = event
        stored.sequence = lastIssued + 1
        try transaction { database in
            try also(database)
            try Self.insert(stored, into: database)
        }
        lastIssued = stored.sequence
        events.append((stored.sequence, stored))
        return stored.sequence
    }

    /// Events not yet acknowledged with a sequence number above `after`, in sequence
    /// order, at most `limit` of them. Read from memory.
    public func pending(after: UInt64 = 0, limit: Int = .max) -> [(sequence: UInt64, event: AgentV1.TaskEvent)] {
        lock.lock()
        defer { lock.unlock() }
        // Binary search for the first event past `after`.
        var low = firstUnacknowledged, high = events.count
        while low < high {
            let middle = (low + high) / 2
            if events[middle].sequence <= after { low = middle + 1 } else { high = middle }
        }
        return Array(events[low..<min(events.count, low + max(0, min(limit, events.count)))])
    }

    /// Forgets every event with a sequence number up to `sequence` (the server's Ack or
    /// Welcome.acked_sequence). Their rows go in the next write's transaction.
    ///
    /// If `sequence` is beyond the last number issued, the server remembers events of an
    /// earlier outbox that was lost (a power loss took its last second, or `state_dir` was
    /// wiped): every event here is one the server has not seen, whatever its number. They
    /// are kept and renumbered past `sequence`, in order, and numbering goes on from there,
    /// so that neither they nor later events are mistaken for ones already applied.
    ///
    /// - Throws: `EventOutboxError.database` (only when renumbering).
    public func acknowledge(upTo sequence: UInt64) throws(EventOutboxError) {
        let bound = UInt64(clamping: Int64(clamping: sequence))
        lock.lock()
        defer { lock.unlock() }
        guard bound > lastIssued else {
            acknowledged = max(acknowledged, bound)
            while firstUnacknowledged < events.count, events[firstUnacknowledged].sequence <= acknowledged {
                firstUnacknowledged += 1
            }
            if firstUnacknowledged == events.count {
                events.removeAll(keepingCapacity: true)
                firstUnacknowledged = 0
            } else if firstUnacknowledged > 1024, firstUnacknowledged > events.count / 2 {
                events.removeFirst(firstUnacknowledged)
                firstUnacknowledged = 0
            }
            return
        }
        let kept = events[firstUnacknowledged...]
        let shift = bound - ((kept.first?.sequence ?? (lastIssued + 1)) - 1)
        let renumberedLast = max(bound, lastIssued + shift)
        try transaction { database in
            // Through negative numbers, so no row meets another's key on the way.
            try database.run("UPDATE events SET sequence = -sequence")
            try database.run("UPDATE events SET sequence = -sequence + ?", [.integer(Int64(shift))])
            try database.run("UPDATE outbox_meta SET value = ? WHERE key = 'last_sequence'", [.integer(Int64(renumberedLast))])
        }
        events = kept.map { entry in
            var event = entry.event
            event.sequence = entry.sequence + shift
            return (event.sequence, event)
        }
        firstUnacknowledged = 0
        lastIssued = renumberedLast
        acknowledged = bound
        deletedThrough = bound
    }

    /// The last sequence number issued (0 before the first event).
    public func lastSequence() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return lastIssued
    }

    // MARK: - Running leases

    /// Leases recorded as running, by lease id.
    ///
    /// - Throws: `EventOutboxError.database`.
    public func runningLeases() throws(EventOutboxError) -> [RunningLease] {
        try recordedLeases().map(\.lease)
    }

    /// The leases table, by lease id, with the boot each lease was recorded in.
    private func recordedLeases() throws(EventOutboxError) -> [(lease: RunningLease, bootID: String?)] {
        try read { database in
            var rows: [(lease: RunningLease, bootID: String?)] = []
            try database.query("""
                SELECT lease_id, epoch, dag_id, run_id, task_id, attempt, process_group, process_start_ticks,
                       started_at_unix_us, boot_id
                FROM leases ORDER BY lease_id
                """) { row in
                rows.append((RunningLease(
                    leaseID: row[0].text ?? "", epoch: UInt64(bitPattern: row[1].int64 ?? 0), dagID: row[2].text ?? "",
                    runID: row[3].text ?? "", taskID: row[4].text ?? "", attempt: UInt32(clamping: row[5].int64 ?? 0),
                    processGroup: Int32(clamping: row[6].int64 ?? 0),
                    processStartTicks: row[7].int64.map { UInt64(bitPattern: $0) },
                    startedAtUnixUs: row[8].int64 ?? 0), row[9].text))
            }
            return rows
        }
    }

    /// Deals with leases a previous agent process left recorded as running (call once at
    /// start-up, before running anything): kills each one's process group with SIGKILL
    /// and appends a `failed` event for it, then forgets the lease.
    ///
    /// `lost`, not `failed` or `cancelled`: the task did not fail and the agent did not
    /// choose to stop it; the agent's end took it, so it runs again without using one of
    /// its retries. (The server drops the event anyway if the lease's epoch is stale by then.)
    ///
    /// The group is killed only when it can still be the task's: not after a reboot (the
    /// boot id differs), and not when a process with the leader's pid but another start
    /// time exists (the pid was reused). When the leader is gone but members of its group
    /// remain, they are killed: Linux does not hand out a pid still in use as a group id.
    ///
    /// - Returns: what was done, lease by lease.
    /// - Throws: `EventOutboxError`; leases handled before the failure stay handled.
    @discardableResult
    public func reapOrphans() throws(EventOutboxError) -> [ReapedLease] {
        let bootID = ProcessIdentity.bootID
        let recorded = try recordedLeases()
        var reaped: [ReapedLease] = []
        for (lease, leaseBootID) in recorded {
            let action = Self.reapAction(for: lease, recordedBootID: leaseBootID, currentBootID: bootID)
            var killed = false
            if action == .kill {
                do {
                    killed = try TaskProcess.signalGroup(lease.processGroup, SIGKILL)
                } catch {
                    throw .system(error)
                }
            }
            let message: String
            switch (action, killed) {
            case (.kill, true): message = "agent restarted while the task ran; its process group \(lease.processGroup) was killed (SIGKILL)"
            case (.kill, false): message = "agent restarted while the task ran; its process group \(lease.processGroup) had already ended"
            case (.leaveRebooted, _): message = "agent restarted after a reboot while the task ran; the task did not survive it"
            case (.leavePidReused, _): message = "agent restarted while the task ran; its process \(lease.processGroup) had already ended"
            }
            let sequence = try append(AgentV1.TaskEvent(orphaned: lease, killed: killed, message: message))
            reaped.append(ReapedLease(lease: lease, killedProcessGroup: killed, eventSequence: sequence, message: message))
        }
        return reaped
    }

    private enum ReapAction { case kill, leaveRebooted, leavePidReused }

    private static func reapAction(for lease: RunningLease, recordedBootID: String?, currentBootID: String?) -> ReapAction {
        if let recordedBootID, let currentBootID, recordedBootID != currentBootID { return .leaveRebooted }
        if let recordedTicks = lease.processStartTicks, let ticks = ProcessIdentity.startTicks(of: lease.processGroup),
           ticks != recordedTicks {
            return .leavePidReused
        }
        return .kill
    }

    // MARK: - Storage

    /// Inserts `event` (its `sequence` set); a final event also forgets its lease's record.
    private static func insert(_ event: AgentV1.TaskEvent, into database: SQLiteDatabase) throws {
        let payload: [UInt8]
        do {
            payload = try event.serializedBytes()
        } catch {
            throw EventOutboxError.encoding(leaseID: event.leaseID, error)
        }
        try database.run("INSERT INTO events(sequence, lease_id, payload) VALUES (?, ?, ?)",
                         [.integer(Int64(event.sequence)), .text(event.leaseID), .blob(payload)])
        if event.kind != .started {
            try database.run("DELETE FROM leases WHERE lease_id = ?", [.text(event.leaseID)])
        }
    }

    private static func insert(_ lease: RunningLease, bootID: String?, into database: SQLiteDatabase) throws {
        try database.run("""
            INSERT OR REPLACE INTO leases(lease_id, epoch, dag_id, run_id, task_id, attempt, process_group,
                process_start_ticks, boot_id, started_at_unix_us)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [
                .text(lease.leaseID), .integer(Int64(bitPattern: lease.epoch)), .text(lease.dagID), .text(lease.runID),
                .text(lease.taskID), .integer(Int64(lease.attempt)), .integer(Int64(lease.processGroup)),
                lease.processStartTicks.map { .integer(Int64(bitPattern: $0)) } ?? .null,
                bootID.map { .text($0) } ?? .null, .integer(lease.startedAtUnixUs),
            ])
    }

    /// Makes every write so far survive a power loss: a checkpoint, which fsyncs the WAL
    /// and then the database, on a connection of its own, so writers go on meanwhile.
    /// Does nothing when nothing was written since the last complete one; a checkpoint
    /// that could not copy every frame (a reader held an older snapshot) counts as not
    /// done, and the next call tries again.
    ///
    /// - Throws: `EventOutboxError.database`; the writes stay crash-safe and the next
    ///   call tries again.
    public func sync() throws(EventOutboxError) {
        syncLock.lock()
        defer { syncLock.unlock() }
        lock.lock()
        // Acknowledged rows left for a next write that has not come: deleted now.
        var deletion: EventOutboxError?
        if acknowledged > deletedThrough {
            do throws(EventOutboxError) { try transaction { _ in } } catch { deletion = error }
        }
        let target = writes
        lock.unlock()
        // The checkpoint runs even if that deletion failed: it is what protects the events.
        if target != syncedWrites {
            var complete = false
            do {
                // One row: busy (0 or 1), frames in the WAL, frames copied into the database.
                try checkpointer.query("PRAGMA wal_checkpoint(PASSIVE)") { row in
                    complete = row[0].int64 == 0 && row[1].int64 == row[2].int64
                }
            } catch let error as SQLiteError {
                throw .database(error)
            } catch {
                throw EventOutboxError(error)
            }
            if complete { syncedWrites = target }
        }
        if let deletion { throw deletion }
    }

    /// Runs `body` in an IMMEDIATE transaction that first deletes the acknowledged rows
    /// still on disk. Call with `lock` held.
    private func transaction(_ body: (SQLiteDatabase) throws -> Void) throws(EventOutboxError) {
        writes &+= 1
        let deleting = acknowledged > deletedThrough ? acknowledged : nil
        do {
            try connection.transaction(.immediate) { database in
                if let deleting {
                    // The meta row keeps the last number issued once its event row is gone.
                    try database.run("UPDATE outbox_meta SET value = ? WHERE key = 'last_sequence'", [.integer(Int64(lastIssued))])
                    try database.run("DELETE FROM events WHERE sequence <= ?", [.integer(Int64(deleting))])
                }
                try body(database)
            }
        } catch {
            throw EventOutboxError(error)
        }
        if let deleting { deletedThrough = deleting }
    }

    /// Runs `body` under the lock, outside any explicit transaction.
    private func read<T>(_ body: (SQLiteDatabase) throws -> T) throws(EventOutboxError) -> T {
        lock.lock()
        defer { lock.unlock() }
        do {
            return try body(connection)
        } catch {
            throw EventOutboxError(error)
        }
    }
}

/// A lease whose process is running, as the outbox records it.
public struct RunningLease: Sendable, Equatable {
    public var leaseID: String
    public var epoch: UInt64
    public var dagID: String
    public var runID: String
    public var taskID: String
    public var attempt: UInt32
    /// The task's process group id (its leader's pid).
    public var processGroup: Int32
    /// The leader's start time in clock ticks since boot; tells it from a reused pid.
    public var processStartTicks: UInt64?
    public var startedAtUnixUs: Int64

    public init(leaseID: String, epoch: UInt64, dagID: String, runID: String, taskID: String, attempt: UInt32,
                processGroup: Int32, processStartTicks: UInt64?, startedAtUnixUs: Int64) {
        self.leaseID = leaseID
        self.epoch = epoch
        self.dagID = dagID
        self.runID = runID
        self.taskID = taskID
        self.attempt = attempt
        self.processGroup = processGroup
        self.processStartTicks = processStartTicks
        self.startedAtUnixUs = startedAtUnixUs
    }

    /// The record for `lease` once its runner reported `start`.
    public init(lease: Lease, start: TaskRunner.Start) {
        self.init(leaseID: lease.id, epoch: lease.epoch, dagID: lease.dagID, runID: lease.runID, taskID: lease.taskID,
                  attempt: lease.attempt, processGroup: start.processID, processStartTicks: start.processStartTicks,
                  startedAtUnixUs: start.startedAtUnixUs)
    }
}

/// What `EventOutbox.reapOrphans` did with one leftover lease.
public struct ReapedLease: Sendable, Equatable {
    public var lease: RunningLease
    /// Whether SIGKILL reached a live process group.
    public var killedProcessGroup: Bool
    /// The `failed` event appended for it.
    public var eventSequence: UInt64
    public var message: String
}

/// Why an outbox operation failed.
public enum EventOutboxError: Error, CustomStringConvertible, Sendable {
    /// SQLite failed (the SQL and arguments are in the error).
    case database(SQLiteError)
    /// The schema could not be migrated (e.g. the file is from a newer agent).
    case migration(String)
    /// An event could not be encoded (e.g. a string holds U+0000).
    case encoding(leaseID: String, WireError)
    /// A stored event no longer decodes.
    case undecodableEvent(sequence: UInt64, WireError)
    /// An OS call failed (creating the directory, signalling a process group).
    case system(SystemError)
    /// Another open outbox, most likely another agent process, holds this file.
    case inUse(String)

    init(_ error: any Error) {
        switch error {
        case let error as EventOutboxError: self = error
        case let error as SQLiteError: self = .database(error)
        case let error as SystemError: self = .system(error)
        default: self = .database(SQLiteError(code: .error, message: "\(error)", operation: "event outbox"))
        }
    }

    public var description: String {
        switch self {
        case .database(let error): "event outbox: \(error)"
        case .migration(let text): "event outbox: migration failed: \(text)"
        case .encoding(let leaseId, let error): "event outbox: cannot encode event of lease \(leaseId): \(error)"
        case .undecodableEvent(let sequence, let error): "event outbox: stored event \(sequence) does not decode: \(error)"
        case .system(let error): "event outbox: \(error)"
        case .inUse(let path): "event outbox: \(path) is in use by another agent process; give each agent a state_dir of its own"
        }
    }
}
