/// Identifies one task instance: a task of a run.
public struct TaskKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var runID: String
    public var taskID: String

    public init(runID: String, taskID: String) {
        self.runID = runID
        self.taskID = taskID
    }

    public static func < (lhs: TaskKey, rhs: TaskKey) -> Bool {
        (lhs.runID, lhs.taskID) < (rhs.runID, rhs.taskID)
    }

    public var description: String { "\(runID)/\(taskID)" }
}

/// One applied version of a DAG. Immutable once stored.
public struct DAGVersionRecord: Hashable, Sendable {
    public var dagID: String
    /// 1 for the first apply, growing by one per changed spec.
    public var version: Int
    /// SHA-256 of the spec's canonical encoding; equal hashes mean an identical spec.
    public var contentHash: String
    public var spec: DAGSpec
    /// The YAML text the spec was read from, as applied (for operators; never parsed again).
    public var specYAML: String
    public var appliedAt: Instant

    public init(dagID: String, version: Int, contentHash: String, spec: DAGSpec, specYAML: String = "", appliedAt: Instant) {
        self.dagID = dagID
        self.version = version
        self.contentHash = contentHash
        self.spec = spec
        self.specYAML = specYAML
        self.appliedAt = appliedAt
    }
}

/// The mutable part of a DAG: which version is latest, whether it is paused, where
/// its schedule stands.
public struct DAGRecord: Hashable, Sendable {
    public var dagID: String
    public var latestVersion: Int
    public var paused: Bool
    public var createdAt: Instant
    public var updatedAt: Instant
    /// The schedule instant of the newest scheduled run; nil before the first.
    public var lastScheduledAt: Instant?
    /// Runs created so far; the next run is number `runCount + 1`.
    public var runCount: Int

    public init(dagID: String, latestVersion: Int, paused: Bool, createdAt: Instant, updatedAt: Instant,
                lastScheduledAt: Instant? = nil, runCount: Int = 0) {
        self.dagID = dagID
        self.latestVersion = latestVersion
        self.paused = paused
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastScheduledAt = lastScheduledAt
        self.runCount = runCount
    }
}

/// Why a run exists.
public enum RunTrigger: String, Hashable, Sendable, Codable {
    case manual
    case schedule
    /// Made by a backfill, for one schedule interval.
    case backfill
}

/// One run of a DAG, pinned to the version it started with.
public struct RunRecord: Hashable, Sendable {
    /// `<dag id>-<run number>`.
    public var runID: String
    public var dagID: String
    public var version: Int
    public var number: Int
    public var state: RunState
    public var trigger: RunTrigger
    /// The instant the run stands for: for a scheduled run its schedule instant (the end of
    /// its data interval, as Airflow 3 counts it); for a manual run the one given, or the
    /// trigger time.
    public var logicalDate: Instant
    /// The span of data the run processes. A scheduled run's is the schedule interval that
    /// closed at its logical date; a manual run's is the latest whole schedule interval
    /// ending at or before its logical date, or the logical date alone if the DAG has no
    /// schedule.
    public var dataInterval: DataInterval
    /// Run parameters as given (DAG and task defaults are merged in at grant time).
    public var params: [String: String]
    /// The caller's key for a manual trigger: a second trigger with it returns this run.
    public var idempotencyKey: String?
    /// Free text from whoever triggered the run.
    public var note: String
    public var createdAt: Instant
    public var startedAt: Instant?
    public var finishedAt: Instant?
    /// When the run should have finished, from its DAG version's `deadline`; nil for none.
    public var deadlineAt: Instant?
    /// When the scheduler found the run unfinished past `deadlineAt` (once; never cleared).
    public var deadlineMissedAt: Instant?
    /// Callbacks started for this run so far: the next is `<kind>.<callbackCount + 1>`.
    public var callbackCount: Int
    /// The backfill that made the run (its first run's id), for that backfill's own
    /// max_active_runs; nil for other runs and unlimited backfills.
    public var backfillID: String?
    /// Most runs of `backfillID` running at once.
    public var backfillMaxActiveRuns: Int

    public init(runID: String, dagID: String, version: Int, number: Int, state: RunState, trigger: RunTrigger,
                logicalDate: Instant, dataInterval: DataInterval? = nil, params: [String: String],
                idempotencyKey: String? = nil, note: String = "", createdAt: Instant,
                startedAt: Instant? = nil, finishedAt: Instant? = nil, deadlineAt: Instant? = nil,
                deadlineMissedAt: Instant? = nil, callbackCount: Int = 0, backfillID: String? = nil,
                backfillMaxActiveRuns: Int = 0) {
        self.runID = runID
        self.dagID = dagID
        self.version = version
        self.number = number
        self.state = state
        self.trigger = trigger
        self.logicalDate = logicalDate
        self.dataInterval = dataInterval ?? DataInterval(start: logicalDate, end: logicalDate)
        self.params = params
        self.idempotencyKey = idempotencyKey
        self.note = note
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.deadlineAt = deadlineAt
        self.deadlineMissedAt = deadlineMissedAt
        self.callbackCount = callbackCount
        self.backfillID = backfillID
        self.backfillMaxActiveRuns = backfillMaxActiveRuns
    }
}

/// What a callback reports on (`on_success`, ... in a DAG file).
public enum CallbackKind: String, Hashable, Sendable, CaseIterable, Codable {
    case onSuccess = "on_success"
    case onFailure = "on_failure"
    case onRetry = "on_retry"
    case onDeadlineMiss = "on_deadline_miss"

    /// Whether `taskID` has the shape of a callback's id, `<kind>.<number>`: such ids are
    /// reserved, so a DAG's own tasks can never share one with a callback of their run.
    public static func isCallbackID(_ taskID: String) -> Bool {
        guard let dot = taskID.lastIndex(of: "."), CallbackKind(rawValue: String(taskID[..<dot])) != nil else { return false }
        let number = taskID[taskID.index(after: dot)...]
        return !number.isEmpty && number.allSatisfy { $0.isASCII && $0.isNumber }
    }
}

/// A callback: an entrypoint run once, as a task instance of its own, to report on a run
/// or one of its tasks (`on_failure`, ...) or on a missed deadline. It is leased like any
/// task (fencing, lost attempts re-queued) but never changes the run it reports on; it
/// outlives that run (a run's callbacks start once the run or task has finished).
public struct CallbackRecord: Hashable, Sendable {
    /// Its state machine and lease; `key` is (run id, `<kind>.<n>`).
    public var instance: TaskInstanceRecord
    public var kind: CallbackKind
    public var dagID: String
    public var dagVersion: Int
    /// The task reported on; empty for the run.
    public var taskID: String
    public var entrypoint: String
    public var queue: String
    /// What the entrypoint is told: `callback`, `dag_id`, `run_id`, `task_id`, `state`,
    /// `attempt`, `reason`, `logical_date`, `data_interval_start`, `data_interval_end`, ...
    public var params: [String: String]
    public var logicalDate: Instant
    public var dataInterval: DataInterval
    public var createdAt: Instant

    public init(instance: TaskInstanceRecord, kind: CallbackKind, dagID: String, dagVersion: Int, taskID: String,
                entrypoint: String, queue: String, params: [String: String], logicalDate: Instant,
                dataInterval: DataInterval, createdAt: Instant) {
        self.instance = instance
        self.kind = kind
        self.dagID = dagID
        self.dagVersion = dagVersion
        self.taskID = taskID
        self.entrypoint = entrypoint
        self.queue = queue
        self.params = params
        self.logicalDate = logicalDate
        self.dataInterval = dataInterval
        self.createdAt = createdAt
    }

    public var key: TaskKey { instance.key }
}

/// A run's span of data: from `start` (inclusive) to `end` (exclusive).
public struct DataInterval: Hashable, Sendable {
    public var start: Instant
    public var end: Instant

    public init(start: Instant, end: Instant) {
        self.start = start
        self.end = end
    }
}

/// What a manual trigger asks for besides the DAG.
public struct TriggerRequest: Sendable {
    /// Overrides of DAG and task params; each must be declared by the DAG or a task.
    public var params: [String: String]
    /// The run's logical date; nil for the trigger time.
    public var logicalDate: Instant?
    /// A second trigger of the same DAG with the same key returns the first run.
    public var idempotencyKey: String?
    public var note: String

    public init(params: [String: String] = [:], logicalDate: Instant? = nil, idempotencyKey: String? = nil, note: String = "") {
        self.params = params
        self.logicalDate = logicalDate
        self.idempotencyKey = idempotencyKey
        self.note = note
    }
}

/// What a trigger did.
public enum TriggerOutcome: Hashable, Sendable {
    /// A new run.
    case created(RunRecord)
    /// The idempotency key was used before, by this run (it may have finished already,
    /// and then the scheduler no longer holds it: read it from the store).
    case existing(runID: String)

    public var runID: String {
        switch self {
        case .created(let run): run.runID
        case .existing(let runID): runID
        }
    }
}

/// The lease a task instance is held under.
public struct LeaseRecord: Hashable, Sendable {
    /// `<run id>/<task id>/<epoch>`: unique because the epoch grows with every grant.
    public var leaseID: String
    public var agentID: String
    /// The fencing epoch: reports must carry it.
    public var epoch: UInt64
    /// 1 for the first attempt.
    public var attempt: Int
    public var grantedAt: Instant
    /// Renewed by the agent's heartbeats.
    public var expiresAt: Instant
    /// Set once the lease was taken back; the agent still holds the slot until it reports.
    public var revoked: RevokeReason?

    public init(leaseID: String, agentID: String, epoch: UInt64, attempt: Int, grantedAt: Instant,
                expiresAt: Instant, revoked: RevokeReason? = nil) {
        self.leaseID = leaseID
        self.agentID = agentID
        self.epoch = epoch
        self.attempt = attempt
        self.grantedAt = grantedAt
        self.expiresAt = expiresAt
        self.revoked = revoked
    }
}

/// One task of one run.
public struct TaskInstanceRecord: Hashable, Sendable {
    public var key: TaskKey
    public var state: TaskState
    /// Attempts granted so far, before and after clears (the newest attempt's number).
    public var tries: Int
    /// `tries` when the task was last cleared: its retries count from there.
    public var triesBeforeClear: Int
    /// Grants so far: the epoch of the newest lease.
    public var epoch: UInt64
    /// Attempts since the last clear that ended for reasons not the task's own (its agent
    /// vanished, or the agent could not start it) and were retried without using a retry
    /// of the task's.
    public var infrastructureAttempts: Int
    /// When it last became ready (queued).
    public var readyAt: Instant?
    /// When an up_for_retry task becomes ready again.
    public var nextTryAt: Instant?
    public var finishedAt: Instant?
    /// The live lease, if it is running (or cancelled and its agent has not reported yet).
    public var lease: LeaseRecord?
    /// Why the server ended it with no attempt of its own to blame (a queue timeout, the
    /// run's timeout); empty otherwise.
    public var reason: String

    public init(key: TaskKey, state: TaskState, tries: Int = 0, triesBeforeClear: Int = 0, epoch: UInt64 = 0,
                infrastructureAttempts: Int = 0, readyAt: Instant? = nil, nextTryAt: Instant? = nil, finishedAt: Instant? = nil,
                lease: LeaseRecord? = nil, reason: String = "") {
        self.key = key
        self.state = state
        self.tries = tries
        self.triesBeforeClear = triesBeforeClear
        self.epoch = epoch
        self.infrastructureAttempts = infrastructureAttempts
        self.readyAt = readyAt
        self.nextTryAt = nextTryAt
        self.finishedAt = finishedAt
        self.lease = lease
        self.reason = reason
    }
}

extension TaskInstanceRecord {
    /// Attempts since the last clear that used the task's own tries (not lost or rejected).
    public var ownTries: Int { tries - triesBeforeClear - infrastructureAttempts }
}

/// Which task instances of a run a clear sets back to scheduled.
public struct ClearRequest: Sendable {
    /// The tasks to clear; empty for every task of the run.
    public var taskIDs: [String]
    /// Also every task downstream of them.
    public var downstream: Bool
    /// Of those, only the failed and upstream_failed ones.
    public var failedOnly: Bool

    public init(taskIDs: [String] = [], downstream: Bool = false, failedOnly: Bool = false) {
        self.taskIDs = taskIDs
        self.downstream = downstream
        self.failedOnly = failedOnly
    }
}

/// A pool: a named number of slots that running (and admitted queued) attempts of tasks
/// naming it share, across DAGs.
public struct PoolRecord: Hashable, Sendable {
    public var name: String
    public var slots: Int
    public var updatedAt: Instant

    public init(name: String, slots: Int, updatedAt: Instant) {
        self.name = name
        self.slots = slots
        self.updatedAt = updatedAt
    }
}

/// A pool as operators see it.
public struct PoolStatus: Hashable, Sendable {
    public var pool: PoolRecord
    /// Slots held by running attempts and by queued tasks let in.
    public var used: Int
    /// Queued tasks waiting for room.
    public var waiting: Int
}

/// What a backfill did.
public struct BackfillOutcome: Hashable, Sendable {
    /// The schedule instants in the range the scheduler may backfill, oldest first.
    public var instants: [Instant]
    /// The new runs, by instant.
    public var created: [RunRecord]
    /// Runs that existed already for an instant of the range, by id; left alone, or
    /// cleared when asked to re-run failed ones.
    public var existing: [String]
    /// Failed runs among `existing` whose failed tasks were cleared to run again.
    public var rerun: [String]
    /// The range's end as the backfill saw it: no later than the schedule's own frontier
    /// (its last scheduled instant), which the schedule itself runs on from.
    public var through: Instant
}

/// A finished run as the store holds it, for a clear (the scheduler holds active runs only).
public struct StoredRun: Sendable {
    public var run: RunRecord
    public var tasks: [TaskInstanceRecord]

    public init(run: RunRecord, tasks: [TaskInstanceRecord]) {
        self.run = run
        self.tasks = tasks
    }
}

/// Resource use an agent reports for a finished attempt.
public struct AttemptUsage: Hashable, Sendable {
    public var exitCode: Int32?
    public var signal: Int32?
    public var userCPUMilliseconds: UInt64
    public var systemCPUMilliseconds: UInt64
    public var maxRSSKiB: UInt64

    public init(exitCode: Int32? = nil, signal: Int32? = nil, userCPUMilliseconds: UInt64 = 0,
                systemCPUMilliseconds: UInt64 = 0, maxRSSKiB: UInt64 = 0) {
        self.exitCode = exitCode
        self.signal = signal
        self.userCPUMilliseconds = userCPUMilliseconds
        self.systemCPUMilliseconds = systemCPUMilliseconds
        self.maxRSSKiB = maxRSSKiB
    }
}

/// One attempt of a task instance: one lease, from grant to outcome.
public struct AttemptRecord: Hashable, Sendable {
    public var key: TaskKey
    public var attempt: Int
    public var leaseID: String
    public var epoch: UInt64
    public var agentID: String
    public var outcome: AttemptOutcome
    public var grantedAt: Instant
    /// By the agent's report.
    public var startedAt: Instant?
    public var finishedAt: Instant?
    public var usage: AttemptUsage
    /// A short reason from the agent or the server; never task output.
    public var message: String

    public init(key: TaskKey, attempt: Int, leaseID: String, epoch: UInt64, agentID: String, outcome: AttemptOutcome,
                grantedAt: Instant, startedAt: Instant? = nil, finishedAt: Instant? = nil,
                usage: AttemptUsage = AttemptUsage(), message: String = "") {
        self.key = key
        self.attempt = attempt
        self.leaseID = leaseID
        self.epoch = epoch
        self.agentID = agentID
        self.outcome = outcome
        self.grantedAt = grantedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.usage = usage
        self.message = message
    }
}

/// Why a lease was taken back (`tether.agent.v1.RevokeReason`).
public enum RevokeReason: String, Hashable, Sendable, Codable {
    case cancelled
    case expired
    case superseded
    case unknownLease = "unknown_lease"
}
