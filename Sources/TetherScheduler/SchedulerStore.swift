/// One durable change the scheduler asks its store to make. Every case is a whole-row
/// upsert (or, `poolRemoved`, a delete) keyed by its identity, so applying a change twice
/// is harmless and the last change to a row wins.
public enum SchedulerChange: Hashable, Sendable {
    case dagVersion(DAGVersionRecord)
    case dag(DAGRecord)
    case run(RunRecord)
    case task(TaskInstanceRecord)
    case attempt(AttemptRecord)
    /// The highest event sequence number applied for an agent (exactly-once delivery).
    case agentSequence(agentID: String, sequence: UInt64)
    case pool(PoolRecord)
    case poolRemoved(name: String)
    case callback(CallbackRecord)
    /// Deletes the DAG with its versions, runs, task instances, attempts and callbacks
    /// (`Scheduler.deleteDAG`). Changes after it in the same batch apply after it.
    case dagRemoved(dagID: String)
}

/// Everything the scheduler needs to resume after a restart.
public struct SchedulerSnapshot: Sendable {
    public var dags: [DAGRecord]
    /// Every stored version of every DAG.
    public var versions: [DAGVersionRecord]
    /// Runs in queued or running state.
    public var activeRuns: [RunRecord]
    /// The task instances of the active runs.
    public var tasks: [TaskInstanceRecord]
    /// The attempts of the leases those task instances hold.
    public var liveAttempts: [AttemptRecord]
    public var agentSequences: [String: UInt64]
    /// Every run triggered with an idempotency key, finished or not.
    public var idempotencyKeys: [IdempotencyKey: String]
    public var pools: [PoolRecord]
    /// Callbacks not yet finished (their live attempts are in `liveAttempts`).
    public var callbacks: [CallbackRecord]

    public init(dags: [DAGRecord] = [], versions: [DAGVersionRecord] = [], activeRuns: [RunRecord] = [],
                tasks: [TaskInstanceRecord] = [], liveAttempts: [AttemptRecord] = [], agentSequences: [String: UInt64] = [:],
                idempotencyKeys: [IdempotencyKey: String] = [:], pools: [PoolRecord] = [], callbacks: [CallbackRecord] = []) {
        self.dags = dags
        self.versions = versions
        self.activeRuns = activeRuns
        self.tasks = tasks
        self.liveAttempts = liveAttempts
        self.agentSequences = agentSequences
        self.idempotencyKeys = idempotencyKeys
        self.pools = pools
        self.callbacks = callbacks
    }
}

/// A manual trigger's idempotency key, which is unique per DAG.
public struct IdempotencyKey: Hashable, Sendable {
    public var dagID: String
    public var key: String

    public init(dagID: String, key: String) {
        self.dagID = dagID
        self.key = key
    }
}

/// Where the scheduler's state is kept.
///
/// Contract: `commit` makes a batch of changes durable atomically (all or none) and in
/// submission order, then calls `completion` — only after the changes would survive a
/// crash. A failed commit leaves the store as it was before the batch.
///
/// A failed commit fences the store: every commit after it fails too, even one already
/// submitted, until a `probe` succeeds. The scheduler's memory runs ahead of the disk by
/// the batches in flight, so a batch made after a lost one may depend on it (a task of a
/// run that was never written) and must not land without it.
public protocol SchedulerStore: AnyObject, Sendable {
    /// Reads the state to resume from.
    func loadSnapshot() throws -> SchedulerSnapshot
    /// Makes `changes` durable, then calls `completion` on another thread — never from
    /// inside `commit`, whose caller may hold a lock the completion needs.
    func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void)
    /// Makes a small durable write of the store's own (no scheduler state), after every
    /// commit submitted before it, and calls `completion` as `commit` does: `.success`
    /// means the store can write again, and lifts the fence of a failed commit.
    func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void)
}
