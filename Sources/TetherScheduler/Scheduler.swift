import TetherSyntax
/// The orchestration core: DAG versions, runs, task instances, leases and the timers
/// behind them (retries, lease expiry, execution timeouts, cron).
///
/// Pure and single-threaded: every method runs to completion on the caller's thread,
/// reads time only from the injected clock, and records what must be made durable
/// (`SchedulerChange`) and what must be told to agents (`SchedulerEffect`). The owner
/// drains both with `takeOutput()`, commits the changes, and delivers the effects only
/// after that commit, so an agent never acts on a grant the store could lose.
///
/// Not thread-safe: one owner serializes all calls.
public final class Scheduler {
    public let clock: any SchedulerClock
    public let configuration: SchedulerConfiguration

    var dags: [String: DAGEntry] = [:]
    var runs: [String: ActiveRun] = [:]
    /// Live leases (including revoked ones whose agent has not reported yet), by id.
    var leases: [String: LiveLease] = [:]
    var leasesByAgent: [String: Set<String>] = [:]
    var dispatcher: LeaseDispatcher
    var timers = BinaryHeap<SchedulerTimer>()
    var timerSequence: UInt64 = 0
    var agentSequences: [String: UInt64] = [:]
    /// Manual triggers' idempotency keys and the runs they made.
    var idempotencyKeys: [IdempotencyKey: String] = [:]
    var pools: [String: PoolRecord] = [:]
    /// Instants backfills made runs for since this scheduler started, per DAG: with the
    /// store's runs the caller passes, they keep two backfills from making one interval twice.
    var backfilled: [String: Set<Instant>] = [:]
    /// Connected agents' stream and last sign of life (their Hello or a heartbeat). An
    /// agent silent for a lease TTL is treated as dead: no grants, its stream ended.
    var agentLiveness: [String: AgentLiveness] = [:]
    /// Agents with an `agentSilence` timer armed (one at most each).
    var silenceTimers: Set<String> = []
    /// Callbacks not yet finished, by (run id, callback id).
    var callbacks: [TaskKey: CallbackRecord] = [:]
    /// Running runs of each limited backfill, by DAG, then backfill id.
    var backfillRunning: [String: [String: Int]] = [:]
    var output = SchedulerOutput()

    /// A scheduler with no state.
    public convenience init(clock: any SchedulerClock, configuration: SchedulerConfiguration = SchedulerConfiguration()) {
        self.init(clock: clock, configuration: configuration, snapshot: SchedulerSnapshot())
    }

    /// Resumes from a stored snapshot: queued tasks go back to their queues, timers are
    /// re-armed, and leases wait for their agents to resume them until they expire.
    public init(clock: any SchedulerClock, configuration: SchedulerConfiguration = SchedulerConfiguration(),
                snapshot: SchedulerSnapshot) {
        self.clock = clock
        self.configuration = configuration
        self.dispatcher = LeaseDispatcher(queueCaps: configuration.queueSlotCaps)
        restore(snapshot)
    }

    /// Everything recorded since the last call.
    public func takeOutput() -> SchedulerOutput {
        defer { output = SchedulerOutput() }
        return output
    }

    // MARK: DAGs

    /// Stores `spec` as the DAG's next version unless it is identical to the latest.
    /// A DAG's first version creates it, paused if the spec says so.
    /// - Throws: `SchedulerError.invalidSpec` listing every problem.
    @discardableResult
    public func apply(_ spec: DAGSpec, specYAML: String = "") throws(SchedulerError) -> (version: DAGVersionRecord, created: Bool) {
        do {
            try spec.validate()
        } catch {
            throw .invalidSpec("\(error)")
        }
        let now = clock.now()
        let hash = spec.contentHash
        if let entry = dags[spec.dagID], let latest = entry.versions[entry.record.latestVersion] {
            if latest.contentHash == hash { return (latest, false) }
            let version = DAGVersionRecord(dagID: spec.dagID, version: latest.version + 1, contentHash: hash, spec: spec,
                                           specYAML: specYAML, appliedAt: now)
            entry.versions[version.version] = version
            entry.record.latestVersion = version.version
            entry.record.updatedAt = now
            entry.setLatest(version)
            dispatcher.setLimit(dagID: spec.dagID, maxActiveTasks: spec.maxActiveTasks)
            output.changes.append(.dagVersion(version))
            output.changes.append(.dag(entry.record))
            scheduleNext(entry, after: now)
            startQueuedRuns(entry)
            dispatch()  // a raised max_active_tasks may release parked tasks
            return (version, true)
        }
        let version = DAGVersionRecord(dagID: spec.dagID, version: 1, contentHash: hash, spec: spec, specYAML: specYAML, appliedAt: now)
        let entry = DAGEntry(record: DAGRecord(dagID: spec.dagID, latestVersion: 1, paused: spec.paused, createdAt: now, updatedAt: now))
        entry.versions[1] = version
        entry.setLatest(version)
        dags[spec.dagID] = entry
        dispatcher.setLimit(dagID: spec.dagID, maxActiveTasks: spec.maxActiveTasks)
        output.changes.append(.dagVersion(version))
        output.changes.append(.dag(entry.record))
        scheduleNext(entry, after: now)
        return (version, true)
    }

    /// Stops (or restarts) the DAG's schedule. Runs already started go on; manual
    /// triggers are accepted and wait, queued, until the DAG is unpaused.
    /// - Throws: `SchedulerError.unknownDAG`.
    public func setPaused(_ dagID: String, _ paused: Bool) throws(SchedulerError) {
        guard let entry = dags[dagID] else { throw .unknownDAG(dagID) }
        guard entry.record.paused != paused else { return }
        let now = clock.now()
        entry.record.paused = paused
        entry.record.updatedAt = now
        output.changes.append(.dag(entry.record))
        // Unpausing catches up only a catch-up DAG; another resumes from now.
        scheduleNext(entry, after: now)
        if !paused {
            startQueuedRuns(entry)
            dispatch()
        }
    }

    public func dag(_ dagID: String) -> DAGRecord? { dags[dagID]?.record }

    /// Every DAG, by id.
    public var allDAGs: [DAGRecord] { dags.values.map(\.record).sorted { $0.dagID < $1.dagID } }

    public func version(_ dagID: String, _ version: Int) -> DAGVersionRecord? { dags[dagID]?.versions[version] }

    /// Every version of a DAG, oldest first.
    public func versions(of dagID: String) -> [DAGVersionRecord] {
        (dags[dagID]?.versions.values).map { $0.sorted { $0.version < $1.version } } ?? []
    }

    /// Runs of the DAG in queued or running state.
    public func activeRunCount(ofDAG dagID: String) -> Int {
        guard let entry = dags[dagID] else { return 0 }
        return entry.runningCount + entry.waitingRuns.count
    }

    /// The live leases an agent holds, by id.
    public func leaseIDs(ofAgent agentID: String) -> [String] { (leasesByAgent[agentID] ?? []).sorted() }

    // MARK: Runs

    /// Creates a manual run of the DAG's latest version, or returns the run an earlier
    /// trigger with the same idempotency key made. A run of a paused DAG waits, queued,
    /// until the DAG is unpaused (as Airflow does).
    /// - Throws: `unknownDAG`; `unknownParam` if a parameter is declared neither by the
    ///   DAG nor by any of its tasks.
    @discardableResult
    public func trigger(dagID: String, _ request: TriggerRequest = TriggerRequest()) throws(SchedulerError) -> TriggerOutcome {
        guard let entry = dags[dagID] else { throw .unknownDAG(dagID) }
        let idempotency = request.idempotencyKey.map { IdempotencyKey(dagID: dagID, key: $0) }
        if let idempotency, let runID = idempotencyKeys[idempotency] { return .existing(runID: runID) }
        let spec = entry.latestSpec
        for name in request.params.keys.sorted()
        where spec.params[name] == nil && !spec.tasks.contains(where: { $0.params[name] != nil }) {
            throw .unknownParam(dagID: dagID, name: name)
        }
        let now = clock.now()
        let logicalDate = request.logicalDate ?? now
        let run = createRun(entry, trigger: .manual, logicalDate: logicalDate,
                            dataInterval: entry.schedule?.interval(endingAtOrBefore: logicalDate),
                            params: request.params, idempotencyKey: request.idempotencyKey, note: request.note, now: now)
        if let idempotency { idempotencyKeys[idempotency] = run.runID }
        dispatch()
        return .created(run)
    }

    /// Why a queued run has not started, or nil if it is not waiting.
    public func waitReason(ofRun runID: String) -> String? {
        guard let run = runs[runID], run.record.state == .queued, let entry = dags[run.record.dagID] else { return nil }
        if entry.record.paused { return "DAG '\(run.record.dagID)' is paused; the run starts when it is unpaused" }
        let limit = entry.latestSpec.maxActiveRuns
        if let backfillID = run.record.backfillID, entry.runningCount < limit {
            let running = backfillRunning[run.record.dagID]?[backfillID] ?? 0
            return "backfill \(backfillID) has \(running) of its max_active_runs \(run.record.backfillMaxActiveRuns) running"
        }
        return "DAG '\(run.record.dagID)' has \(entry.runningCount) of max_active_runs \(limit) running"
    }

    /// Runs in queued or running state.
    public var activeRunCount: Int { runs.count }

    /// The run's record, if it is still active.
    public func activeRun(_ runID: String) -> RunRecord? { runs[runID]?.record }

    /// The task instances of an active run, by task id.
    public func taskInstances(ofRun runID: String) -> [String: TaskInstanceRecord]? { runs[runID]?.tasks }

    /// Why a queued task is waiting, e.g. "no connected agent on queue 'gpu' offers entrypoint 'train'".
    public func waitReason(_ key: TaskKey) -> String? { dispatcher.waitReason(key)?.description }

    /// Cancels every unfinished task of the run and the run itself. Leased tasks get a
    /// revoke for their agent. A reason is added to the run's note.
    /// - Throws: `unknownRun` (also for runs already finished: only active runs are held).
    public func cancelRun(_ runID: String, reason: String = "") throws(SchedulerError) {
        guard let run = runs[runID] else { throw .unknownRun(runID) }
        let now = clock.now()
        if !reason.isEmpty { run.record.note += (run.record.note.isEmpty ? "" : "\n") + "cancelled: " + reason }
        for taskID in run.specs.keys.sorted() where !(run.tasks[taskID]!.state.isFinal) {
            cancelTask(run, taskID, now: now)
        }
        finishRun(run, as: .cancelled, now: now)
        dispatch()
    }

    /// Cancels one unfinished task; its downstream tasks follow their trigger rules
    /// (a cancelled upstream counts as failed).
    /// - Throws: `unknownRun`, `unknownTask`, `alreadyFinished`.
    public func cancelTask(runID: String, taskID: String) throws(SchedulerError) {
        guard let run = runs[runID] else { throw .unknownRun(runID) }
        guard let task = run.tasks[taskID] else { throw .unknownTask(runID: runID, taskID: taskID) }
        guard !task.state.isFinal else { throw .alreadyFinished("task \(task.key)") }
        let now = clock.now()
        cancelTask(run, taskID, now: now)
        settle(run, after: [taskID], now: now)
        dispatch()
    }

    /// Sets task instances of a run back to scheduled, to run again as new attempts in
    /// the same run, pinned to its version, each with its full retries; the run follows
    /// (a finished run is queued again, subject to pause and max_active_runs, as Airflow
    /// does). Tasks picked (`request.taskIDs`, or all), plus their downstream tasks if
    /// asked, then only the failed and upstream_failed ones if asked. Returns the ids
    /// cleared, in DAG order; none is not an error.
    ///
    /// - Parameter stored: the run as the store holds it, needed when the run has
    ///   finished (the scheduler holds only active runs); ignored while it is active.
    /// - Throws: `unknownRun`, `unknownTask`; `notFinished` if a task to clear is still
    ///   unfinished (cancel it or let it end first); `notYetStored` if `stored` shows
    ///   the run unfinished although the scheduler has finished it (its last commit is
    ///   still in flight); `unknownVersion` if the run's version is gone.
    @discardableResult
    public func clear(runID: String, _ request: ClearRequest, stored: StoredRun? = nil) throws(SchedulerError) -> [String] {
        let run: ActiveRun
        var reactivate = false
        if let active = runs[runID] {
            run = active
        } else if let stored, stored.run.runID == runID {
            guard stored.run.state.isFinal else {
                throw .notYetStored("run '\(runID)' is finishing; try again in a moment")
            }
            guard let entry = dags[stored.run.dagID], let version = entry.versions[stored.run.version] else {
                throw .unknownVersion(dagID: stored.run.dagID, version: stored.run.version)
            }
            run = ActiveRun(record: stored.run, spec: version.spec,
                            tasks: Dictionary(stored.tasks.map { ($0.key.taskID, $0) }, uniquingKeysWith: { $1 }))
            reactivate = true
        } else {
            throw .unknownRun(runID)
        }
        for taskID in request.taskIDs where run.specs[taskID] == nil || run.tasks[taskID] == nil {
            throw .unknownTask(runID: runID, taskID: taskID)
        }
        var picked = Set(request.taskIDs.isEmpty ? run.dagSpec.tasks.map(\.id) : request.taskIDs)
        if request.downstream {
            var work = Array(picked)
            while let taskID = work.popLast() {
                for child in run.downstream[taskID] ?? [] where picked.insert(child).inserted { work.append(child) }
            }
        }
        let order = run.dagSpec.tasks.map(\.id).filter { picked.contains($0) && run.tasks[$0] != nil }
        let cleared = request.failedOnly ? order.filter { [.failed, .upstreamFailed].contains(run.tasks[$0]!.state) } : order
        if let busy = cleared.first(where: { !run.tasks[$0]!.state.isFinal }) {
            throw .notFinished("task \(TaskKey(runID: runID, taskID: busy)) is \(run.tasks[busy]!.state.rawValue): "
                               + "cancel it or let it finish before clearing it")
        }
        guard !cleared.isEmpty else { return [] }
        let now = clock.now()
        for taskID in cleared {
            var task = run.tasks[taskID]!
            task.state = try task.state.cleared()
            task.triesBeforeClear = task.tries
            task.infrastructureAttempts = 0
            task.readyAt = nil
            task.nextTryAt = nil
            task.finishedAt = nil
            task.lease = nil
            task.reason = ""
            run.tasks[taskID] = task
            output.changes.append(.task(task))
        }
        run.unfinished += cleared.count
        if reactivate {
            run.record.state = try run.record.state.cleared()
            run.record.startedAt = nil
            run.record.finishedAt = nil
            runs[runID] = run
            output.changes.append(.run(run.record))
            if let deadline = run.record.deadlineAt { armDeadline(run, at: deadline) }
            let entry = dags[run.record.dagID]!
            entry.waitingRuns.append(runID)
            startQueuedRuns(entry)
        } else if run.record.state == .running {
            // Upstream tasks that stay final decide at once; cleared ones decide later.
            var finished: [String] = []
            for taskID in cleared where evaluate(run, taskID, now: now) { finished.append(taskID) }
            settle(run, after: finished, now: now)
        }
        dispatch()
        return cleared
    }

    // MARK: Backfill

    /// The most runs one backfill call may create.
    public static let maxBackfillRuns = 1_000

    /// Creates a run (trigger `backfill`) for every schedule instant from `from` to
    /// `through` (both included) that has no scheduled or backfill run yet, oldest first;
    /// they start as pause and max_active_runs allow. Instants after the schedule's
    /// frontier (its last scheduled instant, or the DAG's first apply) are the schedule's
    /// own and are left out. With `rerunFailed`, an existing failed run of the range has
    /// its failed tasks cleared and runs again.
    ///
    /// - Parameter existing: the DAG's scheduled and backfill runs in the range as the
    ///   store holds them (active runs are read from memory); finished ones are what
    ///   `rerunFailed` clears.
    /// - Parameter maxActiveRuns: most runs this backfill makes running at once, besides
    ///   the DAG's own max_active_runs; 0 for no limit of its own.
    /// - Throws: `unknownDAG`; `invalidArgument` for a DAG without a schedule, a reversed
    ///   range, a negative limit, or more than `maxBackfillRuns` runs to create; what
    ///   `clear` throws.
    public func backfill(dagID: String, from: Instant, through: Instant, rerunFailed: Bool,
                         existing: [StoredRun], maxActiveRuns: Int = 0) throws(SchedulerError) -> BackfillOutcome {
        guard let entry = dags[dagID] else { throw .unknownDAG(dagID) }
        guard let schedule = entry.schedule else { throw .invalidArgument("DAG '\(dagID)' has no schedule to backfill") }
        guard from <= through else { throw .invalidArgument("the range ends before it starts") }
        guard (0...DAGSpecLimits.maxActiveRuns.upperBound).contains(maxActiveRuns) else {
            throw .invalidArgument("max_active_runs \(maxActiveRuns): must be 0 (no limit of its own) to \(DAGSpecLimits.maxActiveRuns.upperBound)")
        }
        let frontier = entry.record.lastScheduledAt ?? entry.record.createdAt
        let end = min(through, frontier)
        var instants: [Instant] = []
        var next = schedule.next(after: from.adding(milliseconds: -1))
        while let instant = next, instant <= end {
            instants.append(instant)
            next = schedule.next(after: instant)
        }
        var byInstant: [Instant: String] = [:]
        for run in runs.values where run.record.dagID == dagID && run.record.trigger != .manual {
            byInstant[run.record.logicalDate] = run.record.runID
        }
        var stored: [String: StoredRun] = [:]
        for run in existing where run.run.dagID == dagID && run.run.trigger != .manual {
            byInstant[run.run.logicalDate] = byInstant[run.run.logicalDate] ?? run.run.runID
            stored[run.run.runID] = run
        }
        let claimed = backfilled[dagID] ?? []
        let missing = instants.filter { byInstant[$0] == nil && !claimed.contains($0) }
        guard missing.count <= Self.maxBackfillRuns else {
            throw .invalidArgument("the range holds \(missing.count) intervals without a run; one backfill makes at most \(Self.maxBackfillRuns)")
        }
        var outcome = BackfillOutcome(instants: instants, created: [], existing: [], rerun: [], through: end)
        for instant in instants {
            if let runID = byInstant[instant] {
                outcome.existing.append(runID)
                if rerunFailed, runs[runID] == nil, let run = stored[runID], run.run.state == .failed {
                    try clear(runID: runID, ClearRequest(failedOnly: true), stored: run)
                    outcome.rerun.append(runID)
                }
            }
        }
        let now = clock.now()
        // The backfill is named by its first run, which it makes first.
        let backfillID = maxActiveRuns > 0 && !missing.isEmpty ? "\(dagID)-\(entry.record.runCount + 1)" : nil
        for instant in missing {
            backfilled[dagID, default: []].insert(instant)
            outcome.created.append(createRun(entry, trigger: .backfill, logicalDate: instant,
                                             dataInterval: schedule.interval(endingAt: instant), params: [:], now: now,
                                             backfill: backfillID.map { ($0, maxActiveRuns) }))
        }
        dispatch()
        return outcome
    }

    // MARK: Pools

    /// Creates a pool or resizes it. A smaller size takes nothing from attempts already
    /// holding slots; it lets no one else in until use is below it.
    /// - Throws: `invalidArgument` for a bad name or a size outside 0...100,000.
    public func setPool(_ name: String, slots: Int) throws(SchedulerError) {
        if let problem = Identifier.problem(name) { throw .invalidArgument("pool name '\(name)': \(problem)") }
        guard (0...DAGSpecLimits.poolSlots.upperBound).contains(slots) else {
            throw .invalidArgument("pool '\(name)': \(slots) slots; must be 0 to \(DAGSpecLimits.poolSlots.upperBound)")
        }
        let record = PoolRecord(name: name, slots: slots, updatedAt: clock.now())
        pools[name] = record
        output.changes.append(.pool(record))
        dispatcher.setPool(name, size: slots)
        dispatch()
    }

    /// Deletes a pool. Attempts holding its slots go on; tasks naming it wait (saying the
    /// pool does not exist) until it is created again.
    /// - Throws: `unknownPool`.
    public func deletePool(_ name: String) throws(SchedulerError) {
        guard pools.removeValue(forKey: name) != nil else { throw .unknownPool(name) }
        output.changes.append(.poolRemoved(name: name))
        dispatcher.setPool(name, size: nil)
    }

    /// Every pool, by name, with its use now.
    public var poolStatuses: [PoolStatus] {
        pools.values.sorted { $0.name < $1.name }.map {
            PoolStatus(pool: $0, used: dispatcher.poolUse($0.name), waiting: dispatcher.poolWaitingCount($0.name))
        }
    }

    // MARK: Time

    /// Fires everything due at or before now: cron runs, retries, lease expiries and
    /// execution-timeout backstops.
    public func tick() {
        let now = clock.now()
        while let timer = timers.first, timer.at <= now {
            timers.popFirst()
            fire(timer, now: now)
        }
        dispatch()
    }

    /// The earliest instant at which `tick()` has work, if any.
    public func nextDeadline() -> Instant? { timers.first?.at }
}

/// Tunables of the scheduler.
public struct SchedulerConfiguration: Sendable {
    /// How long a lease lives without a heartbeat from its agent.
    public var leaseTTLMilliseconds: Int64
    /// How long past its execution timeout the server waits for the agent's report
    /// before it fails the attempt itself.
    public var timeoutGraceMilliseconds: Int64
    /// Most leases at once per queue, across agents; a queue not listed has no cap.
    public var queueSlotCaps: [String: Int]
    /// Once this many attempts of one task have ended `lost` (its agent vanished or could
    /// not keep its lease) or `rejected` (the agent could not start it), the task fails for
    /// that reason. Such attempts never use the task's own retries.
    public var maxInfrastructureAttempts: Int
    /// The unguessable part of each lease id (64 random bits by default), so a lease
    /// cannot be resumed or reported on by someone who only knows the run and task.
    public var leaseIDNonce: @Sendable () -> UInt64

    public init(leaseTTLMilliseconds: Int64 = 30_000, timeoutGraceMilliseconds: Int64 = 30_000, queueSlotCaps: [String: Int] = [:],
                maxInfrastructureAttempts: Int = 10, leaseIDNonce: @escaping @Sendable () -> UInt64 = { UInt64.random(in: .min ... .max) }) {
        self.leaseTTLMilliseconds = leaseTTLMilliseconds
        self.timeoutGraceMilliseconds = timeoutGraceMilliseconds
        self.queueSlotCaps = queueSlotCaps
        self.maxInfrastructureAttempts = maxInfrastructureAttempts
        self.leaseIDNonce = leaseIDNonce
    }
}

/// What the scheduler decided since the last `takeOutput()`.
public struct SchedulerOutput: Sendable {
    /// To commit, in order, atomically.
    public var changes: [SchedulerChange] = []
    /// To deliver to agents after the commit.
    public var effects: [SchedulerEffect] = []

    public init() {}
}

/// A message for an agent.
public enum SchedulerEffect: Hashable, Sendable {
    case grant(LeaseGrant)
    case revoke(agentID: String, leaseID: String, epoch: UInt64, reason: RevokeReason)
    /// The agent was silent for a lease TTL: end its stream (and with it any grant still
    /// queued for it). It may reconnect; its leases stand until their own expiry.
    case endSession(agentID: String, session: UInt64, reason: String)
}

/// A connected agent's stream and when it last showed life.
struct AgentLiveness {
    var session: UInt64
    var lastSeen: Instant
}

/// One task attempt given to an agent.
public struct LeaseGrant: Hashable, Sendable {
    public var agentID: String
    public var leaseID: String
    public var epoch: UInt64
    public var key: TaskKey
    public var dagID: String
    /// The DAG version the run is pinned to.
    public var dagVersion: Int
    public var entrypoint: String
    /// DAG defaults, then task params, then the run's overrides.
    public var params: [String: String]
    public var timeoutMilliseconds: Int64?
    public var attempt: Int
    public var grantedAt: Instant
    /// When the task became ready; `grantedAt - readyAt` is the dispatch latency.
    public var readyAt: Instant
    /// The run's logical date and data interval, for the task.
    public var logicalDate: Instant
    public var dataInterval: DataInterval
}

/// The mutable state of one DAG id.
final class DAGEntry {
    var record: DAGRecord
    var versions: [Int: DAGVersionRecord] = [:]
    private(set) var latestSpec: DAGSpec
    /// Runs waiting for a free max_active_runs place, oldest first.
    var waitingRuns: [String] = []
    var runningCount = 0
    /// When the armed cron timer fires; a timer with another instant is stale.
    var nextFireAt: Instant?

    init(record: DAGRecord) {
        self.record = record
        self.latestSpec = DAGSpec(dagID: record.dagID, tasks: [])
    }

    func setLatest(_ version: DAGVersionRecord) { latestSpec = version.spec }
}

/// A run in queued or running state, with its pinned spec and its task instances.
final class ActiveRun {
    var record: RunRecord
    let dagSpec: DAGSpec
    let specs: [String: TaskSpec]
    let upstream: [String: [String]]
    let downstream: [String: [String]]
    var tasks: [String: TaskInstanceRecord]
    var unfinished: Int

    init(record: RunRecord, spec: DAGSpec, tasks: [String: TaskInstanceRecord]) {
        self.record = record
        self.dagSpec = spec
        var specs: [String: TaskSpec] = [:]
        var upstream: [String: [String]] = [:]
        var downstream: [String: [String]] = [:]
        for task in spec.tasks {
            specs[task.id] = task
            upstream[task.id] = task.dependsOn
            for parent in task.dependsOn { downstream[parent, default: []].append(task.id) }
        }
        self.specs = specs
        self.upstream = upstream
        self.downstream = downstream
        self.tasks = tasks
        self.unfinished = tasks.values.filter { !$0.state.isFinal }.count
    }
}

/// A lease the scheduler holds live, with what it needs to end the attempt even after
/// its run has finished (a cancelled run's leases live until their agent reports).
struct LiveLease {
    /// `expiresAt` is exact: the last renewal plus the TTL.
    var record: LeaseRecord
    var dagID: String
    var queue: String
    /// The pool slots the attempt holds.
    var pool: PoolClaim?
    var attempt: AttemptRecord
    /// The expiry last written to the store, which lags `record.expiresAt` by up to a
    /// quarter TTL (renewals are stored only that often). Only a restart reads it, and a
    /// restart gives every lease a full TTL anyway.
    var storedExpiresAt: Instant
    /// Its execution timeout's backstop fired: the attempt ends `timedOut` when the agent
    /// reports or the lease expires, whichever comes first.
    var timedOut = false
    /// Its DAG was deleted: the lease holds its agent's slot until the agent reports or it
    /// expires, and then ends with nothing written.
    var orphaned = false
    var key: TaskKey { attempt.key }

    init(record: LeaseRecord, dagID: String, queue: String, pool: PoolClaim?, attempt: AttemptRecord) {
        self.record = record
        self.dagID = dagID
        self.queue = queue
        self.pool = pool
        self.attempt = attempt
        self.storedExpiresAt = record.expiresAt
    }
}

/// Something the scheduler must do at an instant. Stale timers (the thing they were
/// for has moved on) are recognised and dropped when they fire.
struct SchedulerTimer: Comparable {
    enum Kind: Equatable {
        case retry(TaskKey)
        case leaseExpiry(leaseID: String)
        case executionTimeout(leaseID: String)
        case cron(dagID: String)
        /// Checks whether a connected agent has been silent for a TTL.
        case agentSilence(agentID: String)
        /// The task, queued since `readyAt`, has waited its queue_timeout.
        case queueTimeout(TaskKey, readyAt: Instant)
        /// The run has run for its DAG's run_timeout; `createdAt` as for `deadline`.
        case runTimeout(runID: String, createdAt: Instant)
        /// The run's deadline; `createdAt` tells the run from a later one of the same id
        /// (its DAG deleted and applied again).
        case deadline(runID: String, createdAt: Instant)
    }

    var at: Instant
    var sequence: UInt64
    var kind: Kind

    static func < (lhs: SchedulerTimer, rhs: SchedulerTimer) -> Bool {
        (lhs.at, lhs.sequence) < (rhs.at, rhs.sequence)
    }
    static func == (lhs: SchedulerTimer, rhs: SchedulerTimer) -> Bool { lhs.sequence == rhs.sequence }
}
