import Foundation
internal import Synchronization
public import TetherStore
public import TetherScheduler

/// The scheduler's state in SQLite, written through a group-commit writer.
///
/// Every `SchedulerChange` is a whole-row upsert; `commit` first keeps only the last
/// change to each row, then submits the batch as one writer change, so it is durable
/// all or nothing, and calls `completion` after the COMMIT that includes it.
/// Reads use read-only connections: `loadSnapshot` its own, the async queries `SQLiteReadPool`.
///
/// A failed commit fences the store (see `SchedulerStore`): the fence is set on the
/// writer thread, inside the failed change or in its completion, so no later change
/// runs unfenced, not even a batch-mate in the same transaction. Errors reach
/// completions as `SchedulerStoreError`, in words for an operator.
public final class SQLiteSchedulerStore: SchedulerStore {
    public let path: String
    private let writer: GroupCommitWriter
    /// Read-only connections for `read` and the queries below.
    private let reads: SQLiteReadPool
    /// Set by a failed commit, cleared by a probe that commits. Writer thread only, but
    /// an atomic so the store stays `Sendable`.
    private let fenced = Atomic<Bool>(false)

    /// Opens (creating and migrating if needed) the database at `path`.
    /// - Throws: `SQLiteError` or `SQLiteMigrationError` from opening and migrating.
    public init(path: String, synchronous: SQLiteDatabase.Options.Synchronous = .full, maxBatchSize: Int = 1024) throws {
        self.path = path
        writer = try GroupCommitWriter(SQLiteDatabase.Options(path: path, synchronous: synchronous),
                                       migrations: Self.migrations, maxBatchSize: maxBatchSize)
        reads = SQLiteReadPool(path: path)
    }

    /// Drains pending commits and stops the writer.
    public func close() { writer.close() }

    public var commitStats: GroupCommitStats { writer.stats }

    /// Tells `observer` of each batch the store's writer commits (`GroupCommitWriter.observeBatches`).
    public func observeCommits(_ observer: @escaping @Sendable (GroupCommitBatch) -> Void) {
        writer.observeBatches(observer)
    }

    /// How many attempts ever ended with each final outcome (running ones are left out): what
    /// a restarted server's outcome counters start from. Reads every attempt: for a start.
    /// - Throws: `SQLiteError`, or `SchedulerStoreError.corruptValue` for an unknown outcome.
    public func finishedAttemptCounts() throws -> [AttemptOutcome: Int] {
        let database = try SQLiteDatabase(reads.options)
        var counts: [AttemptOutcome: Int] = [:]
        try database.query("SELECT outcome, count(*) FROM task_attempts WHERE outcome != 'running' GROUP BY outcome") { row in
            counts[try Self.enumValue(AttemptOutcome.self, row[0])] = Int(row[1].int64 ?? 0)
        }
        return counts
    }

    public func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let rows = Self.lastChangePerRow(changes)
        writer.submit({ [self] database in
            guard !fenced.load(ordering: .relaxed) else { throw SchedulerStoreError.fenced(path: path) }
            do {
                for change in rows { try Self.write(change, to: database) }
            } catch {
                // Before the next change of this transaction runs: it may build on this one.
                fenced.store(true, ordering: .relaxed)
                throw error
            }
        }, completion: { [self] result in
            // A BEGIN or COMMIT failure reaches only the completions; they run before the
            // writer starts the next batch.
            if case .failure = result { fenced.store(true, ordering: .relaxed) }
            completion(result.mapError { Self.writeFailure($0, path: path) })
        })
    }

    /// Commits an update of the one row of `store_probe` (a counter), behind every commit
    /// already submitted; its success lifts the fence.
    public func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        writer.submit({ database in
            try database.run("INSERT INTO store_probe VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET probes = probes + 1")
        }, completion: { [self] result in
            if case .success = result { fenced.store(false, ordering: .relaxed) }
            completion(result.mapError { Self.writeFailure($0, path: path) })
        })
    }

    /// A writer error as an operator reads it: SQLite's code and what it likely means,
    /// without the statement and its arguments (a batch's can be whole DAG specs).
    static func writeFailure(_ error: any Error, path: String) -> any Error {
        switch error {
        case let error as SchedulerStoreError:
            return error
        case GroupCommitWriterError.batchAborted(let cause):
            return writeFailure(cause, path: path)
        case let error as SQLiteError:
            var reason = "\(error.code)"
            if !error.message.isEmpty && !reason.contains(error.message) { reason += ": \(error.message)" }
            switch error.code {
            case .full: reason += "; the disk that holds it has no space left"
            case .ioError: reason += "; the disk failed a write"
            default: break
            }
            return SchedulerStoreError.writeFailed(path: path, reason: reason)
        default:
            return SchedulerStoreError.writeFailed(path: path, reason: "\(error)")
        }
    }

    public func loadSnapshot() throws -> SchedulerSnapshot {
        let database = try SQLiteDatabase(reads.options)  // at start and recovery only
        return try database.transaction { db in
            var snapshot = SchedulerSnapshot()
            try db.query("SELECT dag_id, latest_version, paused, created_at_ms, updated_at_ms, last_scheduled_at_ms, run_count FROM dags") { row in
                snapshot.dags.append(DAGRecord(
                    dagID: row[0].text!, latestVersion: Int(row[1].int64!), paused: row[2].int64 != 0,
                    createdAt: Instant(row[3]), updatedAt: Instant(row[4]), lastScheduledAt: Instant(optional: row[5]),
                    runCount: Int(row[6].int64!)))
            }
            try db.query("SELECT dag_id, version, content_hash, spec_json, spec_yaml, applied_at_ms FROM dag_versions") { row in
                snapshot.versions.append(DAGVersionRecord(
                    dagID: row[0].text!, version: Int(row[1].int64!), contentHash: row[2].text!,
                    spec: try Self.decode(DAGSpec.self, row[3]), specYAML: row[4].text ?? "", appliedAt: Instant(row[5])))
            }
            try db.query("\(Self.runColumns) WHERE state IN ('queued', 'running')") { row in
                snapshot.activeRuns.append(try Self.runRecord(row))
            }
            try db.query("""
                \(Self.taskColumns) JOIN runs USING (run_id) WHERE runs.state IN ('queued', 'running')
                """) { row in snapshot.tasks.append(try Self.taskRecord(row)) }
            try db.query("""
                \(Self.attemptColumns) JOIN task_instances t ON t.lease_id = a.lease_id
                """) { row in snapshot.liveAttempts.append(try Self.attemptRecord(row)) }
            try db.query("\(Self.callbackColumns) WHERE state NOT IN ('success', 'failed', 'cancelled')") { row in
                snapshot.callbacks.append(try Self.callbackRecord(row))
            }
            try db.query("""
                \(Self.attemptColumns) JOIN callbacks c ON c.lease_id = a.lease_id
                WHERE c.state NOT IN ('success', 'failed', 'cancelled')
                """) { row in snapshot.liveAttempts.append(try Self.attemptRecord(row)) }
            try db.query("SELECT agent_id, sequence FROM agent_sequences") { row in
                snapshot.agentSequences[row[0].text!] = UInt64(row[1].int64!)
            }
            try db.query("SELECT name, slots, updated_at_ms FROM pools") { row in
                snapshot.pools.append(PoolRecord(name: row[0].text!, slots: Int(row[1].int64!), updatedAt: Instant(row[2])))
            }
            try db.query("SELECT dag_id, idempotency_key, run_id FROM runs WHERE idempotency_key IS NOT NULL") { row in
                snapshot.idempotencyKeys[IdempotencyKey(dagID: row[0].text!, key: row[1].text!)] = row[2].text!
            }
            return snapshot
        }
    }

    // MARK: Reads

    // Every read is async and runs on one of `reads`' connections (WAL: the last committed
    // state), never on the caller's thread: a handler on an event loop cannot block it here.

    /// Runs `body` on a read-only connection, off the calling thread.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        try await reads.read(body)
    }

    public func run(_ runID: String) async throws -> RunRecord? {
        try await read { db in try db.firstRow("\(Self.runColumns) WHERE run_id = ?", [.text(runID)], Self.runRecord) }
    }

    public func tasks(ofRun runID: String) async throws -> [TaskInstanceRecord] {
        try await read { db in
            var tasks: [TaskInstanceRecord] = []
            try db.query("\(Self.taskColumns) WHERE run_id = ? ORDER BY task_id", [.text(runID)]) { tasks.append(try Self.taskRecord($0)) }
            return tasks
        }
    }

    public func attempts(of key: TaskKey) async throws -> [AttemptRecord] {
        try await read { db in
            var attempts: [AttemptRecord] = []
            try db.query("\(Self.attemptColumns) WHERE a.run_id = ? AND a.task_id = ? ORDER BY a.attempt",
                         [.text(key.runID), .text(key.taskID)]) { attempts.append(try Self.attemptRecord($0)) }
            return attempts
        }
    }

    /// Every attempt of a run's tasks, by task id, oldest attempt first: one query.
    public func attempts(ofRun runID: String) async throws -> [String: [AttemptRecord]] {
        try await read { db in
            var attempts: [String: [AttemptRecord]] = [:]
            try db.query("\(Self.attemptColumns) WHERE a.run_id = ? ORDER BY a.task_id, a.attempt", [.text(runID)]) { row in
                let attempt = try Self.attemptRecord(row)
                attempts[attempt.key.taskID, default: []].append(attempt)
            }
            return attempts
        }
    }

    /// Runs newest first, optionally of one DAG and in some states; `after` is the
    /// cursor from a previous page. Returns the runs and the next page's cursor.
    public func runs(dagID: String?, states: [RunState], limit: Int, after cursor: Int64?) async throws -> (runs: [RunRecord], next: Int64?) {
        let page = try await runPage(dagID: dagID, states: states, limit: limit, after: cursor)
        return (page.map(\.run), page.count == limit ? page.last?.cursor : nil)
    }

    /// As `runs(dagID:states:limit:after:)`, with each run's own cursor: passed as `after`,
    /// it continues with the run after that one. Lets a caller end a page early (when the
    /// rows it has would fill its message) and still hand out a cursor.
    public func runPage(dagID: String?, states: [RunState], limit: Int, after cursor: Int64?) async throws -> [(run: RunRecord, cursor: Int64)] {
        var conditions: [String] = []
        var arguments: [SQLiteValue] = []
        if let dagID { conditions.append("dag_id = ?"); arguments.append(.text(dagID)) }
        if !states.isEmpty {
            conditions.append("state IN (\(states.map { _ in "?" }.joined(separator: ", ")))")
            arguments += states.map { .text($0.rawValue) }
        }
        if let cursor { conditions.append("rowid < ?"); arguments.append(.integer(cursor)) }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let bound = arguments + [.integer(Int64(limit))]
        return try await read { db in
            var runs: [(run: RunRecord, cursor: Int64)] = []
            let sql = "SELECT rowid, \(Self.runColumnList) FROM runs \(filter) ORDER BY rowid DESC LIMIT ?"
            try db.query(sql, bound) { row in
                runs.append((try Self.runRecord(row, offset: 1), row[0].int64 ?? 0))
            }
            return runs
        }
    }

    /// The DAG's scheduled and backfill runs with a logical date in the range (both ends
    /// included), oldest first.
    public func intervalRuns(dagID: String, from: Instant, through: Instant) async throws -> [RunRecord] {
        try await read { db in
            var runs: [RunRecord] = []
            try db.query("""
                \(Self.runColumns) WHERE dag_id = ? AND trigger IN ('schedule', 'backfill')
                AND logical_date_ms BETWEEN ? AND ? ORDER BY logical_date_ms
                """, [.text(dagID), from.value, through.value]) { runs.append(try Self.runRecord($0)) }
            return runs
        }
    }

    /// The run's callbacks, finished or not, oldest first.
    public func callbacks(ofRun runID: String) async throws -> [CallbackRecord] {
        try await read { db in
            var callbacks: [CallbackRecord] = []
            try db.query("\(Self.callbackColumns) WHERE run_id = ? ORDER BY created_at_ms, callback_id", [.text(runID)]) {
                callbacks.append(try Self.callbackRecord($0))
            }
            return callbacks
        }
    }

    /// How many of the run's task instances are in each state.
    public func taskStateCounts(ofRun runID: String) async throws -> [TaskState: Int] {
        try await read { db in
            var counts: [TaskState: Int] = [:]
            try db.query("SELECT state, count(*) FROM task_instances WHERE run_id = ? GROUP BY state", [.text(runID)]) { row in
                counts[try Self.enumValue(TaskState.self, row[0])] = Int(row[1].int64 ?? 0)
            }
            return counts
        }
    }

    // MARK: Schema

    static let migrations = [
        SQLiteMigration(version: 1, name: "scheduler state", sql: """
            CREATE TABLE dags (
                dag_id TEXT PRIMARY KEY, latest_version INTEGER NOT NULL, paused INTEGER NOT NULL,
                created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL, last_scheduled_at_ms INTEGER,
                run_count INTEGER NOT NULL);
            CREATE TABLE dag_versions (
                dag_id TEXT NOT NULL, version INTEGER NOT NULL, content_hash TEXT NOT NULL, spec_json TEXT NOT NULL,
                spec_yaml TEXT NOT NULL, applied_at_ms INTEGER NOT NULL, PRIMARY KEY (dag_id, version)) WITHOUT ROWID;
            CREATE TABLE runs (
                run_id TEXT PRIMARY KEY, dag_id TEXT NOT NULL, version INTEGER NOT NULL, number INTEGER NOT NULL,
                state TEXT NOT NULL, trigger TEXT NOT NULL, logical_date_ms INTEGER NOT NULL, params_json TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL, started_at_ms INTEGER, finished_at_ms INTEGER);
            CREATE INDEX runs_by_dag ON runs (dag_id, number);
            CREATE INDEX runs_active ON runs (state) WHERE state IN ('queued', 'running');
            CREATE TABLE task_instances (
                run_id TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, tries INTEGER NOT NULL,
                epoch INTEGER NOT NULL, infrastructure_retries INTEGER NOT NULL, ready_at_ms INTEGER, next_try_at_ms INTEGER, finished_at_ms INTEGER,
                lease_id TEXT, lease_agent_id TEXT, lease_epoch INTEGER, lease_attempt INTEGER,
                lease_granted_at_ms INTEGER, lease_expires_at_ms INTEGER, lease_revoked TEXT,
                PRIMARY KEY (run_id, task_id)) WITHOUT ROWID;
            CREATE TABLE task_attempts (
                lease_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task_id TEXT NOT NULL, attempt INTEGER NOT NULL,
                epoch INTEGER NOT NULL, agent_id TEXT NOT NULL, outcome TEXT NOT NULL, granted_at_ms INTEGER NOT NULL,
                started_at_ms INTEGER, finished_at_ms INTEGER, exit_code INTEGER, signal INTEGER,
                user_cpu_ms INTEGER NOT NULL, system_cpu_ms INTEGER NOT NULL, max_rss_kib INTEGER NOT NULL,
                message TEXT NOT NULL);
            CREATE INDEX task_attempts_by_task ON task_attempts (run_id, task_id, attempt);
            CREATE TABLE agent_sequences (agent_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL);
            """),
        // What `probe` writes: one row whose counter each probe bumps, a real commit that
        // touches no scheduler state.
        SQLiteMigration(version: 2, name: "store probe", sql: """
            CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probes INTEGER NOT NULL);
            """),
        // Runs of schema 2 have no data interval (read as their logical date alone), no
        // key and no note; their tasks were never cleared.
        SQLiteMigration(version: 3, name: "run data intervals, idempotency keys, notes; clears; pools", sql: """
            ALTER TABLE runs ADD COLUMN data_interval_start_ms INTEGER;
            ALTER TABLE runs ADD COLUMN data_interval_end_ms INTEGER;
            ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
            ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
            CREATE UNIQUE INDEX runs_by_idempotency_key ON runs (dag_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
            ALTER TABLE task_instances ADD COLUMN tries_before_clear INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE task_instances ADD COLUMN reason TEXT NOT NULL DEFAULT '';
            CREATE TABLE pools (name TEXT PRIMARY KEY, slots INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL);
            CREATE INDEX runs_by_logical_date ON runs (dag_id, logical_date_ms);
            """),
        // Runs of schema 3 have no deadline, no callbacks and no backfill limit.
        SQLiteMigration(version: 4, name: "callbacks, run deadlines, backfill limits", sql: """
            ALTER TABLE runs ADD COLUMN deadline_at_ms INTEGER;
            ALTER TABLE runs ADD COLUMN deadline_missed_at_ms INTEGER;
            ALTER TABLE runs ADD COLUMN callback_count INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE runs ADD COLUMN backfill_id TEXT;
            ALTER TABLE runs ADD COLUMN backfill_max_active_runs INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE callbacks (
                run_id TEXT NOT NULL, callback_id TEXT NOT NULL, kind TEXT NOT NULL, dag_id TEXT NOT NULL,
                dag_version INTEGER NOT NULL, task_id TEXT NOT NULL, entrypoint TEXT NOT NULL, queue TEXT NOT NULL,
                params_json TEXT NOT NULL, logical_date_ms INTEGER NOT NULL, data_interval_start_ms INTEGER NOT NULL,
                data_interval_end_ms INTEGER NOT NULL, created_at_ms INTEGER NOT NULL,
                state TEXT NOT NULL, tries INTEGER NOT NULL, epoch INTEGER NOT NULL, infrastructure_attempts INTEGER NOT NULL,
                ready_at_ms INTEGER, next_try_at_ms INTEGER, finished_at_ms INTEGER,
                lease_id TEXT, lease_agent_id TEXT, lease_epoch INTEGER, lease_attempt INTEGER,
                lease_granted_at_ms INTEGER, lease_expires_at_ms INTEGER, lease_revoked TEXT, reason TEXT NOT NULL,
                PRIMARY KEY (run_id, callback_id)) WITHOUT ROWID;
            CREATE INDEX callbacks_unfinished ON callbacks (state) WHERE state NOT IN ('success', 'failed', 'cancelled');
            CREATE INDEX callbacks_by_dag ON callbacks (dag_id);
            """),
    ]

    /// The columns `runRecord` reads, in its order.
    private static let runColumnList = """
        run_id, dag_id, version, number, state, trigger, logical_date_ms, params_json, created_at_ms,
        started_at_ms, finished_at_ms, data_interval_start_ms, data_interval_end_ms, idempotency_key, note,
        deadline_at_ms, deadline_missed_at_ms, callback_count, backfill_id, backfill_max_active_runs
        """
    private static let runColumns = "SELECT \(runColumnList) FROM runs"
    /// `infrastructure_retries` holds `TaskInstanceRecord.infrastructureAttempts` (the
    /// column keeps the name of schema v1).
    private static let taskColumns = """
        SELECT run_id, task_id, task_instances.state, tries, epoch, infrastructure_retries, ready_at_ms, next_try_at_ms,
               task_instances.finished_at_ms, lease_id, lease_agent_id, lease_epoch, lease_attempt,
               lease_granted_at_ms, lease_expires_at_ms, lease_revoked, tries_before_clear, reason FROM task_instances
        """
    private static let callbackColumns = "SELECT \(callbackColumnList) FROM callbacks"
    private static let callbackColumnList = """
        run_id, callback_id, kind, dag_id, dag_version, task_id, entrypoint, queue, params_json, logical_date_ms,
               data_interval_start_ms, data_interval_end_ms, created_at_ms, state, tries, epoch, infrastructure_attempts,
               ready_at_ms, next_try_at_ms, finished_at_ms, lease_id, lease_agent_id, lease_epoch, lease_attempt,
               lease_granted_at_ms, lease_expires_at_ms, lease_revoked, reason
        """
    private static let attemptColumns = """
        SELECT a.lease_id, a.run_id, a.task_id, a.attempt, a.epoch, a.agent_id, a.outcome, a.granted_at_ms,
               a.started_at_ms, a.finished_at_ms, a.exit_code, a.signal, a.user_cpu_ms, a.system_cpu_ms,
               a.max_rss_kib, a.message FROM task_attempts a
        """

    // MARK: Writing

    /// The last change of each row, in the order those last changes were made.
    static func lastChangePerRow(_ changes: [SchedulerChange]) -> [SchedulerChange] {
        var last: [RowKey: Int] = [:]
        last.reserveCapacity(changes.count)
        for (index, change) in changes.enumerated() { last[RowKey(change)] = index }
        guard last.count < changes.count else { return changes }
        return changes.indices.filter { last[RowKey(changes[$0])] == $0 }.map { changes[$0] }
    }

    private enum RowKey: Hashable {
        case version(String, Int), dag(String), run(String), task(TaskKey), attempt(String), agent(String), pool(String)
        case callback(TaskKey), dagRemoved(String)

        init(_ change: SchedulerChange) {
            switch change {
            case .dagVersion(let v): self = .version(v.dagID, v.version)
            case .dag(let d): self = .dag(d.dagID)
            case .run(let r): self = .run(r.runID)
            case .task(let t): self = .task(t.key)
            case .attempt(let a): self = .attempt(a.leaseID)
            case .agentSequence(let agentID, _): self = .agent(agentID)
            case .pool(let pool): self = .pool(pool.name)
            case .poolRemoved(let name): self = .pool(name)
            case .callback(let callback): self = .callback(callback.key)
            case .dagRemoved(let dagID): self = .dagRemoved(dagID)
            }
        }
    }

    private static func write(_ change: SchedulerChange, to db: SQLiteDatabase) throws {
        switch change {
        case .dagVersion(let v):
            try db.run("INSERT OR REPLACE INTO dag_versions VALUES (?, ?, ?, ?, ?, ?)",
                       [.text(v.dagID), .integer(Int64(v.version)), .text(v.contentHash), try encode(v.spec), .text(v.specYAML),
                        v.appliedAt.value])
        case .dag(let d):
            try db.run("INSERT OR REPLACE INTO dags VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [.text(d.dagID), .integer(Int64(d.latestVersion)), .integer(d.paused ? 1 : 0), d.createdAt.value,
                        d.updatedAt.value, d.lastScheduledAt.value, .integer(Int64(d.runCount))])
        case .run(let r):
            // An upsert that keeps the row (and its rowid, the creation order ListRuns pages by).
            try db.run("""
                INSERT INTO runs (\(runColumnList)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id) DO UPDATE SET
                state = excluded.state, started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms,
                note = excluded.note, deadline_at_ms = excluded.deadline_at_ms,
                deadline_missed_at_ms = excluded.deadline_missed_at_ms, callback_count = excluded.callback_count
                """,
                       [.text(r.runID), .text(r.dagID), .integer(Int64(r.version)), .integer(Int64(r.number)),
                        .text(r.state.rawValue), .text(r.trigger.rawValue), r.logicalDate.value, try encode(r.params),
                        r.createdAt.value, r.startedAt.value, r.finishedAt.value, r.dataInterval.start.value,
                        r.dataInterval.end.value, r.idempotencyKey.map { .text($0) } ?? .null, .text(r.note),
                        r.deadlineAt.value, r.deadlineMissedAt.value, .integer(Int64(r.callbackCount)),
                        r.backfillID.map { .text($0) } ?? .null, .integer(Int64(r.backfillMaxActiveRuns))])
        case .task(let t):
            let lease = t.lease
            try db.run("INSERT OR REPLACE INTO task_instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [.text(t.key.runID), .text(t.key.taskID), .text(t.state.rawValue), .integer(Int64(t.tries)),
                        .integer(Int64(bitPattern: t.epoch)), .integer(Int64(t.infrastructureAttempts)), t.readyAt.value, t.nextTryAt.value, t.finishedAt.value,
                        lease.map { .text($0.leaseID) } ?? .null, lease.map { .text($0.agentID) } ?? .null,
                        lease.map { .integer(Int64(bitPattern: $0.epoch)) } ?? .null,
                        lease.map { .integer(Int64($0.attempt)) } ?? .null, lease?.grantedAt.value ?? .null,
                        lease?.expiresAt.value ?? .null, lease?.revoked.map { .text($0.rawValue) } ?? .null,
                        .integer(Int64(t.triesBeforeClear)), .text(t.reason)])
        case .attempt(let a):
            // An upsert, not REPLACE: the row keeps its rowid and its index entries (whose
            // columns never change), so an attempt's update dirties one page, not four.
            try db.run("""
                INSERT INTO task_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (lease_id) DO UPDATE SET
                epoch = excluded.epoch, agent_id = excluded.agent_id, outcome = excluded.outcome,
                granted_at_ms = excluded.granted_at_ms, started_at_ms = excluded.started_at_ms,
                finished_at_ms = excluded.finished_at_ms, exit_code = excluded.exit_code, signal = excluded.signal,
                user_cpu_ms = excluded.user_cpu_ms, system_cpu_ms = excluded.system_cpu_ms,
                max_rss_kib = excluded.max_rss_kib, message = excluded.message
                """,
                       [.text(a.leaseID), .text(a.key.runID), .text(a.key.taskID), .integer(Int64(a.attempt)),
                        .integer(Int64(bitPattern: a.epoch)), .text(a.agentID), .text(a.outcome.rawValue), a.grantedAt.value,
                        a.startedAt.value, a.finishedAt.value, a.usage.exitCode.map { .integer(Int64($0)) } ?? .null,
                        a.usage.signal.map { .integer(Int64($0)) } ?? .null,
                        .integer(Int64(clamping: a.usage.userCPUMilliseconds)), .integer(Int64(clamping: a.usage.systemCPUMilliseconds)),
                        .integer(Int64(clamping: a.usage.maxRSSKiB)), .text(a.message)])
        case .pool(let pool):
            try db.run("INSERT OR REPLACE INTO pools VALUES (?, ?, ?)",
                       [.text(pool.name), .integer(Int64(pool.slots)), pool.updatedAt.value])
        case .poolRemoved(let name):
            try db.run("DELETE FROM pools WHERE name = ?", [.text(name)])
        case .callback(let c):
            let t = c.instance, lease = t.lease
            try db.run("INSERT OR REPLACE INTO callbacks (\(callbackColumnList)) VALUES (\(Array(repeating: "?", count: 28).joined(separator: ", ")))",
                       [.text(t.key.runID), .text(t.key.taskID), .text(c.kind.rawValue), .text(c.dagID), .integer(Int64(c.dagVersion)),
                        .text(c.taskID), .text(c.entrypoint), .text(c.queue), try encode(c.params), c.logicalDate.value,
                        c.dataInterval.start.value, c.dataInterval.end.value, c.createdAt.value,
                        .text(t.state.rawValue), .integer(Int64(t.tries)), .integer(Int64(bitPattern: t.epoch)),
                        .integer(Int64(t.infrastructureAttempts)), t.readyAt.value, t.nextTryAt.value, t.finishedAt.value,
                        lease.map { .text($0.leaseID) } ?? .null, lease.map { .text($0.agentID) } ?? .null,
                        lease.map { .integer(Int64(bitPattern: $0.epoch)) } ?? .null,
                        lease.map { .integer(Int64($0.attempt)) } ?? .null, lease?.grantedAt.value ?? .null,
                        lease?.expiresAt.value ?? .null, lease?.revoked.map { .text($0.rawValue) } ?? .null, .text(t.reason)])
        case .dagRemoved(let dagID):
            // Children first: attempts and task instances are found through the DAG's runs.
            let runs = "SELECT run_id FROM runs WHERE dag_id = ?"
            try db.run("DELETE FROM task_attempts WHERE run_id IN (\(runs))", [.text(dagID)])
            try db.run("DELETE FROM task_instances WHERE run_id IN (\(runs))", [.text(dagID)])
            try db.run("DELETE FROM callbacks WHERE dag_id = ?", [.text(dagID)])
            try db.run("DELETE FROM runs WHERE dag_id = ?", [.text(dagID)])
            try db.run("DELETE FROM dag_versions WHERE dag_id = ?", [.text(dagID)])
            try db.run("DELETE FROM dags WHERE dag_id = ?", [.text(dagID)])
        case .agentSequence(let agentID, let sequence):
            try db.run("INSERT INTO agent_sequences VALUES (?, ?) ON CONFLICT (agent_id) DO UPDATE SET sequence = excluded.sequence",
                       [.text(agentID), .integer(Int64(bitPattern: sequence))])
        }
    }

    // MARK: Reading rows

    private static func runRecord(_ row: SQLiteRow) throws -> RunRecord { try runRecord(row, offset: 0) }

    private static func runRecord(_ row: SQLiteRow, offset o: Int) throws -> RunRecord {
        RunRecord(runID: row[o].text!, dagID: row[o + 1].text!, version: Int(row[o + 2].int64!), number: Int(row[o + 3].int64!),
                  state: try enumValue(RunState.self, row[o + 4]), trigger: try enumValue(RunTrigger.self, row[o + 5]),
                  logicalDate: Instant(row[o + 6]),
                  dataInterval: Instant(optional: row[o + 11]).flatMap { start in
                      Instant(optional: row[o + 12]).map { DataInterval(start: start, end: $0) }
                  },
                  params: try decode([String: String].self, row[o + 7]), idempotencyKey: row[o + 13].text,
                  note: row[o + 14].text ?? "", createdAt: Instant(row[o + 8]), startedAt: Instant(optional: row[o + 9]),
                  finishedAt: Instant(optional: row[o + 10]), deadlineAt: Instant(optional: row[o + 15]),
                  deadlineMissedAt: Instant(optional: row[o + 16]), callbackCount: Int(row[o + 17].int64 ?? 0),
                  backfillID: row[o + 18].text, backfillMaxActiveRuns: Int(row[o + 19].int64 ?? 0))
    }

    private static func callbackRecord(_ row: SQLiteRow) throws -> CallbackRecord {
        var lease: LeaseRecord?
        if let leaseID = row[20].text {
            lease = LeaseRecord(leaseID: leaseID, agentID: row[21].text ?? "", epoch: UInt64(bitPattern: row[22].int64 ?? 0),
                                attempt: Int(row[23].int64 ?? 0), grantedAt: Instant(row[24]), expiresAt: Instant(row[25]),
                                revoked: try row[26].isNull ? nil : enumValue(RevokeReason.self, row[26]))
        }
        let instance = TaskInstanceRecord(
            key: TaskKey(runID: row[0].text!, taskID: row[1].text!), state: try enumValue(TaskState.self, row[13]),
            tries: Int(row[14].int64 ?? 0), epoch: UInt64(bitPattern: row[15].int64 ?? 0),
            infrastructureAttempts: Int(row[16].int64 ?? 0), readyAt: Instant(optional: row[17]),
            nextTryAt: Instant(optional: row[18]), finishedAt: Instant(optional: row[19]), lease: lease, reason: row[27].text ?? "")
        return CallbackRecord(
            instance: instance, kind: try enumValue(CallbackKind.self, row[2]), dagID: row[3].text!, dagVersion: Int(row[4].int64 ?? 0),
            taskID: row[5].text ?? "", entrypoint: row[6].text ?? "", queue: row[7].text ?? "",
            params: try decode([String: String].self, row[8]), logicalDate: Instant(row[9]),
            dataInterval: DataInterval(start: Instant(row[10]), end: Instant(row[11])), createdAt: Instant(row[12]))
    }

    private static func taskRecord(_ row: SQLiteRow) throws -> TaskInstanceRecord {
        var lease: LeaseRecord?
        if let leaseID = row[9].text {
            lease = LeaseRecord(leaseID: leaseID, agentID: row[10].text ?? "", epoch: UInt64(bitPattern: row[11].int64 ?? 0),
                                attempt: Int(row[12].int64 ?? 0), grantedAt: Instant(row[13]), expiresAt: Instant(row[14]),
                                revoked: try row[15].isNull ? nil : enumValue(RevokeReason.self, row[15]))
        }
        return TaskInstanceRecord(
            key: TaskKey(runID: row[0].text!, taskID: row[1].text!), state: try enumValue(TaskState.self, row[2]),
            tries: Int(row[3].int64!), triesBeforeClear: Int(row[16].int64 ?? 0), epoch: UInt64(bitPattern: row[4].int64!),
            infrastructureAttempts: Int(row[5].int64 ?? 0),
            readyAt: Instant(optional: row[6]), nextTryAt: Instant(optional: row[7]), finishedAt: Instant(optional: row[8]),
            lease: lease, reason: row[17].text ?? "")
    }

    private static func attemptRecord(_ row: SQLiteRow) throws -> AttemptRecord {
        AttemptRecord(
            key: TaskKey(runID: row[1].text!, taskID: row[2].text!), attempt: Int(row[3].int64!), leaseID: row[0].text!,
            epoch: UInt64(bitPattern: row[4].int64!), agentID: row[5].text!, outcome: try enumValue(AttemptOutcome.self, row[6]),
            grantedAt: Instant(row[7]), startedAt: Instant(optional: row[8]), finishedAt: Instant(optional: row[9]),
            usage: AttemptUsage(exitCode: row[10].int64.map { Int32(truncatingIfNeeded: $0) },
                                signal: row[11].int64.map { Int32(truncatingIfNeeded: $0) },
                                userCPUMilliseconds: UInt64(row[12].int64!), systemCPUMilliseconds: UInt64(row[13].int64!),
                                maxRSSKiB: UInt64(row[14].int64!)),
            message: row[15].text ?? "")
    }

    private static func enumValue<T: RawRepresentable<String>>(_ type: T.Type, _ value: SQLiteValue) throws -> T {
        guard let text = value.text, let result = T(rawValue: text) else {
            throw SchedulerStoreError.corruptValue("\(value) is not a \(T.self)")
        }
        return result
    }

    private static func encode<T: Encodable>(_ value: T) throws -> SQLiteValue {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return .text(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ value: SQLiteValue) throws -> T {
        guard let text = value.text else { throw SchedulerStoreError.corruptValue("expected JSON text, found \(value)") }
        return try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

/// What went wrong in the scheduler's SQLite store.
public enum SchedulerStoreError: Error, CustomStringConvertible {
    /// A stored value the scheduler cannot read back.
    case corruptValue(String)
    /// A commit failed; `reason` is SQLite's code and what it likely means.
    case writeFailed(path: String, reason: String)
    /// Not attempted: an earlier commit failed and no probe has committed since.
    case fenced(path: String)

    public var description: String {
        switch self {
        case .corruptValue(let what): return "scheduler store holds an unreadable value: \(what)"
        case .writeFailed(let path, let reason): return "cannot write \(path): \(reason)"
        case .fenced(let path):
            return "not written to \(path): an earlier commit failed, and nothing is written until a probe write commits"
        }
    }
}

private extension Instant {
    init(_ value: SQLiteValue) { self.init(millisecondsSinceEpoch: value.int64 ?? 0) }
    init?(optional value: SQLiteValue) {
        guard let ms = value.int64 else { return nil }
        self.init(millisecondsSinceEpoch: ms)
    }
    var value: SQLiteValue { .integer(millisecondsSinceEpoch) }
}

private extension Optional where Wrapped == Instant {
    var value: SQLiteValue { self?.value ?? .null }
}
