import Dispatch
internal import Synchronization

/// A `SchedulerStore` in memory: commits apply at once. For tests and simulations;
/// it keeps every record, so it also answers the reads tests need.
public final class InMemorySchedulerStore: SchedulerStore {
    private struct Contents {
        var dags: [String: DAGRecord] = [:]
        var versions: [String: [Int: DAGVersionRecord]] = [:]
        var runs: [String: RunRecord] = [:]
        var tasks: [TaskKey: TaskInstanceRecord] = [:]
        var attempts: [String: AttemptRecord] = [:]
        var agentSequences: [String: UInt64] = [:]
        var pools: [String: PoolRecord] = [:]
        var callbacks: [TaskKey: CallbackRecord] = [:]
    }

    private let contents = Mutex(Contents())

    public init() {}

    public func loadSnapshot() throws -> SchedulerSnapshot {
        contents.withLock { c in
            let active = c.runs.values.filter { !$0.state.isFinal }
            let activeIDs = Set(active.map(\.runID))
            let tasks = c.tasks.values.filter { activeIDs.contains($0.key.runID) }
            let callbacks = c.callbacks.values.filter { !$0.instance.state.isFinal }
            let live = Set(tasks.compactMap { $0.lease?.leaseID } + callbacks.compactMap { $0.instance.lease?.leaseID })
            var keys: [IdempotencyKey: String] = [:]
            for run in c.runs.values {
                if let key = run.idempotencyKey { keys[IdempotencyKey(dagID: run.dagID, key: key)] = run.runID }
            }
            return SchedulerSnapshot(
                dags: Array(c.dags.values), versions: c.versions.values.flatMap(\.values), activeRuns: active,
                tasks: tasks, liveAttempts: c.attempts.values.filter { live.contains($0.leaseID) },
                agentSequences: c.agentSequences, idempotencyKeys: keys, pools: Array(c.pools.values), callbacks: callbacks)
        }
    }

    /// Applies at once; `completion` runs later on a serial queue (never inside `commit`,
    /// as the protocol requires), in commit order.
    public func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        apply(changes)
        completions.async { completion(.success(())) }
    }

    /// Succeeds: memory never fills up, so this store never fences.
    public func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        completions.async { completion(.success(())) }
    }

    private let completions = DispatchQueue(label: "tether.in-memory-store.completions")

    /// Applies changes synchronously.
    public func apply(_ changes: [SchedulerChange]) {
        contents.withLock { c in
            for change in changes {
                switch change {
                case .dagVersion(let v): c.versions[v.dagID, default: [:]][v.version] = v
                case .dag(let d): c.dags[d.dagID] = d
                case .run(let r): c.runs[r.runID] = r
                case .task(let t): c.tasks[t.key] = t
                case .attempt(let a): c.attempts[a.leaseID] = a
                case .agentSequence(let agent, let sequence): c.agentSequences[agent] = sequence
                case .pool(let pool): c.pools[pool.name] = pool
                case .poolRemoved(let name): c.pools[name] = nil
                case .callback(let callback): c.callbacks[callback.key] = callback
                case .dagRemoved(let dagID):
                    let runIDs = Set(c.runs.values.filter { $0.dagID == dagID }.map(\.runID))
                    c.dags[dagID] = nil
                    c.versions[dagID] = nil
                    c.runs = c.runs.filter { !runIDs.contains($0.key) }
                    c.tasks = c.tasks.filter { !runIDs.contains($0.key.runID) }
                    c.attempts = c.attempts.filter { !runIDs.contains($0.value.key.runID) }
                    c.callbacks = c.callbacks.filter { $0.value.dagID != dagID }
                }
            }
        }
    }

    public func run(_ runID: String) -> RunRecord? { contents.withLock { $0.runs[runID] } }
    public func runs(ofDAG dagID: String) -> [RunRecord] {
        contents.withLock { $0.runs.values.filter { $0.dagID == dagID }.sorted { $0.number < $1.number } }
    }
    public func task(_ key: TaskKey) -> TaskInstanceRecord? { contents.withLock { $0.tasks[key] } }
    public func tasks(ofRun runID: String) -> [TaskInstanceRecord] {
        contents.withLock { $0.tasks.values.filter { $0.key.runID == runID }.sorted { $0.key < $1.key } }
    }
    public func attempts(of key: TaskKey) -> [AttemptRecord] {
        contents.withLock { $0.attempts.values.filter { $0.key == key }.sorted { $0.attempt < $1.attempt } }
    }
    public func versions(ofDAG dagID: String) -> [DAGVersionRecord] {
        contents.withLock { ($0.versions[dagID] ?? [:]).values.sorted { $0.version < $1.version } }
    }
    public func dag(_ dagID: String) -> DAGRecord? { contents.withLock { $0.dags[dagID] } }
    /// A run's callbacks, finished or not, oldest first.
    public func callbacks(ofRun runID: String) -> [CallbackRecord] {
        contents.withLock { $0.callbacks.values.filter { $0.key.runID == runID }.sorted { ($0.createdAt, $0.key) < ($1.createdAt, $1.key) } }
    }
    /// Every attempt stored, for checks that nothing of a deleted DAG is left.
    public var attemptCount: Int { contents.withLock { $0.attempts.count } }
}
