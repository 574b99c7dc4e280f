import GRPC
internal import Glibc
internal import Synchronization
import TetherScheduler
import TetherWire

/// The scheduler's store, watched: forwards everything to `base` and tells `feed` of
/// each batch that committed and of each snapshot loaded (the start, and the reload after
/// a store outage). Only committed changes reach the feed, in commit order, so what it
/// streams is what a restart would find.
///
/// The cost on the commit thread is one lock and one array append per non-empty batch
/// (`CommitFeed.committed`); everything else happens on the feed's own task.
final class ObservedSchedulerStore: SchedulerStore {
    private let base: any SchedulerStore
    private let feed: CommitFeed

    init(_ base: any SchedulerStore, feed: CommitFeed) {
        self.base = base
        self.feed = feed
    }

    func loadSnapshot() throws -> SchedulerSnapshot {
        let snapshot = try base.loadSnapshot()
        feed.restored(snapshot)
        return snapshot
    }

    func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        base.commit(changes) { [feed] result in
            if case .success = result, !changes.isEmpty { feed.committed(changes) }
            completion(result)
        }
    }

    func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        base.probe(completion: completion)
    }
}

/// The server's change feed: committed scheduler changes and agents' comings and goings
/// turned into `tether.control.v1.WatchEventsResponse` messages, written to the
/// `EventLog` (which `WatchEvents` streams from) and, with once a second the numbers the
/// dashboard's overview charts draw (queue depths, running tasks, tasks finished,
/// dispatch latency), fanned out as server-sent events to a bounded set of subscribers.
///
/// Design (why not snapshots): the scheduler's active runs are not enumerable from
/// outside its module, and comparing whole snapshots costs O(state) per tick under the
/// scheduler's lock. The store decorator above hands over each committed batch instead:
/// O(1) on the commit thread, and O(changes) on the feed's task, which wakes when a batch
/// arrives (at most once per `Limits.drainInterval`, so batches coalesce under load) and
/// once per `statsInterval`, whether or not anyone watches: the log must hold what
/// happened while a client was away. Agents live outside the scheduler's commits, so they
/// are compared once a second (they are few).
///
/// The feed is background work beside dispatch on the same CPUs: it yields its CPU every
/// 50 us of work (`CPUYielder`), so a loop or the commit thread woken on that CPU does not
/// wait behind a whole batch.
///
/// Bounds: at most `maxSubscribers` at once (more are refused); each has at most
/// `maxBufferedBytes` waiting for it, past which it is dropped (its stream ends; the
/// browser reconnects and reloads). A drain that would send more than a quarter of that
/// sends one `resync` event instead, so a burst (a wide DAG's run starting) costs every
/// client one small event and one reload, not a disconnect. At most `maxPendingBatches`
/// batches wait for the feed's task; past that they are dropped and clients told to
/// resync (the numbers may be off until the tasks dropped change again).
///
/// Event contents: a `run` event's Run has no `task_counts` (the commit does not say),
/// a `task` event's TaskInstance lists only the attempts the same commit changed and no
/// waiting reason; a reader wanting more reads the run (`GetRun`).
///
/// Thread-safe.
final class CommitFeed: Sendable {
    struct Limits: Sendable {
        var maxSubscribers = 32
        var maxBufferedBytes = 256 << 10
        var maxPendingBatches = 65_536
        /// The shortest time between two drains: what an event may wait to be batched.
        var drainInterval: Duration = .milliseconds(10)
        var statsInterval: Duration = .seconds(1)
        /// An agent whose only change is a newer heartbeat is re-sent at most this often.
        var agentHeartbeatInterval: Duration = .seconds(10)
    }

    enum Input: Sendable {
        case restored(runs: [RunRecord], tasks: [TaskInstanceRecord])
        case committed([SchedulerChange], at: Instant)
    }

    private struct Inbox {
        var inputs: [Input] = []
        var dropped = false
    }

    private struct Fanout {
        var subscribers: [UInt64: FeedSubscriber] = [:]
        var nextID: UInt64 = 0
        var closed = false
        /// The latest stats event, sent to each new subscriber at once.
        var lastStats: [UInt8] = []
    }

    /// Events appended to the log under one hold of its lock.
    static let appendSlice = 16

    let limits: Limits
    /// What `WatchEvents` streams from.
    let log: EventLog
    private let clock: any SchedulerClock
    private let inbox = Mutex(Inbox())
    private let fanout = Mutex(Fanout())
    private let task = Mutex<Task<Void, Never>?>(nil)
    /// Wakes the feed's task: a batch arrived, or the stats interval passed.
    private let wakeups: AsyncStream<Void>
    private let wakeup: AsyncStream<Void>.Continuation

    init(clock: any SchedulerClock, limits: Limits = Limits(), log: EventLog = EventLog()) {
        self.clock = clock
        self.limits = limits
        self.log = log
        (wakeups, wakeup) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: Input (the commit thread; the thread loading a snapshot)

    func restored(_ snapshot: SchedulerSnapshot) {
        inbox.withLock { $0.inputs.append(.restored(runs: snapshot.activeRuns, tasks: snapshot.tasks)) }
        wakeup.yield()
    }

    func committed(_ changes: [SchedulerChange]) {
        let at = clock.now()
        let first = inbox.withLock { inbox in
            guard inbox.inputs.count < limits.maxPendingBatches else {
                inbox.dropped = true
                return false
            }
            inbox.inputs.append(.committed(changes, at: at))
            return inbox.inputs.count == 1
        }
        if first { wakeup.yield() }
    }

    // MARK: Subscribers

    /// A new subscriber, or nil when `maxSubscribers` are subscribed (or the feed closed).
    func subscribe() -> FeedSubscriber? {
        fanout.withLock { fanout in
            guard !fanout.closed, fanout.subscribers.count < limits.maxSubscribers else { return nil }
            fanout.nextID += 1
            let subscriber = FeedSubscriber(id: fanout.nextID, limit: limits.maxBufferedBytes)
            fanout.subscribers[subscriber.id] = subscriber
            if !fanout.lastStats.isEmpty { _ = subscriber.push(fanout.lastStats) }
            return subscriber
        }
    }

    /// Frees the subscriber's slot; call when its stream ends, however it ends.
    func unsubscribe(_ subscriber: FeedSubscriber) {
        subscriber.close()
        fanout.withLock { _ = $0.subscribers.removeValue(forKey: subscriber.id) }
    }

    var subscriberCount: Int { fanout.withLock { $0.subscribers.count } }

    /// Sends `event` to every subscriber; one that cannot take it is dropped (closed: its
    /// stream ends), but keeps its slot until its stream's handler unsubscribes.
    func publish(_ event: [UInt8], isStats: Bool = false) {
        let subscribers = fanout.withLock { fanout in
            if isStats { fanout.lastStats = event }
            return Array(fanout.subscribers.values)
        }
        for subscriber in subscribers { _ = subscriber.push(event) }
    }

    // MARK: Life

    /// Starts the feed's task. `agents` lists the agents as `ListAgents` does.
    func start(scheduler: SchedulerService, agents: @escaping @Sendable () async -> [ControlV1.Agent]) {
        task.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in
                let ticker = Task { [limits, wakeup] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: limits.statsInterval)
                        wakeup.yield()
                    }
                }
                defer { ticker.cancel() }
                var state = FeedState(limits: limits)
                var nextStats = ContinuousClock.now
                for await _ in wakeups {
                    let (inputs, dropped) = inbox.withLock { inbox in
                        defer { inbox = Inbox() }
                        return (inbox.inputs, inbox.dropped)
                    }
                    if dropped {
                        log.breakHistory(GRPCStatus(code: .aborted, message: "the server fell behind and dropped events; "
                            + "re-read the state you need and watch from cursor 0"))
                    }
                    var yielder = CPUYielder()
                    var (events, restored) = state.apply(inputs, scheduler: scheduler, yielder: &yielder)
                    let now = ContinuousClock.now
                    let statsDue = now >= nextStats
                    if statsDue { events += state.agentEvents(await agents(), now: clock.now()) }
                    events = log.append(events, slice: Self.appendSlice) { yielder.checkpoint() }
                    let watched = subscriberCount > 0
                    if watched {
                        // One buffer for the whole batch: one wake-up of each subscriber's handler.
                        var encoded: [UInt8] = []
                        for event in events where encoded.count <= limits.maxBufferedBytes / 4 {
                            encoded += FeedState.sse(event)
                            yielder.checkpoint()
                        }
                        if dropped || restored || encoded.count > limits.maxBufferedBytes / 4 {
                            publish(FeedState.resyncEvent)
                        } else if !encoded.isEmpty {
                            publish(encoded)
                        }
                    }
                    if statsDue {
                        nextStats = now + limits.statsInterval
                        if watched {
                            publish(state.statsEvent(now: clock.now()), isStats: true)
                        } else {
                            state.idle(now: clock.now())
                            fanout.withLock { $0.lastStats = [] }
                        }
                    }
                    try? await Task.sleep(for: limits.drainInterval)
                }
            }
        }
    }

    /// Ends every subscriber's stream and the feed's task; refuses new subscribers.
    func stop() async {
        let subscribers = fanout.withLock { fanout in
            fanout.closed = true
            return Array(fanout.subscribers.values)
        }
        for subscriber in subscribers { subscriber.close() }
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
        log.close()
    }
}

/// One event the feed made, before and after the log numbered it (`message.cursor`), with
/// what `WatchEvents` filters on.
struct FeedEvent: Sendable {
    enum Kind: String, Sendable {
        case dag, run, task, agent
    }

    var kind: Kind
    var message: ControlV1.WatchEventsResponse
    /// The DAG of a DAG, run or task event; empty for an agent.
    var dagID: String
    /// The run of a run or task event; empty otherwise.
    var runID: String
}

/// One SSE client's queue of encoded events. `push` from the feed, `next` from the
/// client's stream handler.
final class FeedSubscriber: Sendable {
    private struct State {
        var chunks: [[UInt8]] = []
        var bytes = 0
        var closed = false
        var waiter: CheckedContinuation<[UInt8]?, Never>?
    }

    let id: UInt64
    let limit: Int
    private let state = Mutex(State())

    init(id: UInt64, limit: Int) {
        self.id = id
        self.limit = limit
    }

    /// Queues `bytes`; returns false (and closes the subscriber, dropping what waited)
    /// when more than `limit` bytes would wait.
    @discardableResult
    func push(_ bytes: [UInt8]) -> Bool {
        let (ok, waiter) = state.withLock { state -> (Bool, CheckedContinuation<[UInt8]?, Never>?) in
            guard !state.closed else { return (false, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            guard state.bytes + bytes.count <= limit else {
                state.closed = true
                state.chunks = []
                state.bytes = 0
                return (false, nil)
            }
            state.chunks.append(bytes)
            state.bytes += bytes.count
            return (true, nil)
        }
        waiter?.resume(returning: bytes)
        return ok
    }

    /// Whether the subscriber was closed (dropped, stopped or cancelled).
    var isClosed: Bool { state.withLock { $0.closed } }

    func close() {
        let waiter = state.withLock { state in
            state.closed = true
            state.chunks = []
            state.bytes = 0
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Everything queued, as one buffer, waiting for something if nothing is; nil once
    /// closed. Cancelling the calling task closes the subscriber.
    func next() async -> [UInt8]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
                let ready = state.withLock { state -> [UInt8]?? in
                    if state.closed { return .some(nil) }
                    if !state.chunks.isEmpty {
                        defer { state.chunks = []; state.bytes = 0 }
                        return .some(state.chunks.count == 1 ? state.chunks[0] : Array(state.chunks.joined()))
                    }
                    state.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            close()
        }
    }
}

/// What the feed's task knows: the active runs and their unfinished tasks (from the
/// snapshot and every commit since), the agents last seen, and the current stats window.
/// Owned by that task alone.
struct FeedState {
    private struct RunInfo {
        var dagID: String
        var version: Int
        var taskIDs: Set<String> = []
    }

    private struct VersionKey: Hashable {
        var dagID: String
        var version: Int
    }

    private struct TrackedTask {
        var queue: String
        var state: TetherScheduler.TaskState
    }

    private struct SeenAgent {
        var fingerprint: [UInt8]
        var heartbeat: Int64
        var sentAt: Instant
        var message: ControlV1.Agent
    }

    static let jsonOptions = WireJSONOptions(layout: .compact, alwaysPrintsFieldsWithoutPresence: true, escapesNonASCII: false)
    /// Dispatch latencies kept per stats window (the rest are counted, not kept).
    static let maxLatencySamples = 512

    let limits: CommitFeed.Limits
    private var runs: [String: RunInfo] = [:]
    private var tasks: [TaskKey: TrackedTask] = [:]
    private var specs: [VersionKey: [String: TetherScheduler.TaskSpec]] = [:]
    private var agents: [String: SeenAgent] = [:]
    private var finished = 0
    private var dispatched = 0
    private var latencies: [Int64] = []
    private var windowStart: Instant?

    init(limits: CommitFeed.Limits) {
        self.limits = limits
    }

    /// Applies inputs in order; returns the change events, and whether state was reloaded
    /// (clients of the dashboard then fetch everything again).
    mutating func apply(_ inputs: [CommitFeed.Input], scheduler: SchedulerService,
                        yielder: inout CPUYielder) -> (events: [FeedEvent], restored: Bool) {
        var events: [FeedEvent] = []
        var restored = false
        for input in inputs {
            switch input {
            case .restored(let restoredRuns, let restoredTasks):
                runs = [:]
                tasks = [:]
                for run in restoredRuns { runs[run.runID] = RunInfo(dagID: run.dagID, version: run.version) }
                resolveSpecs(scheduler)
                for task in restoredTasks { track(task) }
                restored = true
            case .committed(let changes, let at):
                events += apply(changes, at: at, scheduler: scheduler, yielder: &yielder)
            }
        }
        return (events, restored)
    }

    private mutating func apply(_ changes: [SchedulerChange], at: Instant, scheduler: SchedulerService,
                                yielder: inout CPUYielder) -> [FeedEvent] {
        var attempts: [TaskKey: [AttemptRecord]] = [:]
        var newGrants: Set<TaskKey> = []
        var finishedRuns: [String] = []
        var dagIDs: [String] = []
        var removed: [String] = []
        for change in changes {
            switch change {
            case .run(let run):
                runs[run.runID, default: RunInfo(dagID: run.dagID, version: run.version)].version = run.version
                if run.state.isFinal { finishedRuns.append(run.runID) }
            case .attempt(let attempt):
                attempts[attempt.key, default: []].append(attempt)
                if attempt.outcome == .running && attempt.startedAt == nil { newGrants.insert(attempt.key) }
            case .dag(let dag):
                dagIDs.append(dag.dagID)
            case .dagRemoved(let dagID):
                // Its runs go as finished ones do; its versions' specs are forgotten, as the
                // same id applied again starts at version 1.
                finishedRuns += runs.filter { $0.value.dagID == dagID }.map(\.key)
                removed.append(dagID)
                specs = specs.filter { $0.key.dagID != dagID }
            case .task, .dagVersion, .agentSequence, .pool, .poolRemoved, .callback:
                break
            }
        }
        resolveSpecs(scheduler)
        var events: [FeedEvent] = []
        for change in changes {
            switch change {
            case .run(let run):
                events.append(event(.run, .run(ControlV1.Run(run, taskCounts: [:])), dagID: run.dagID, runID: run.runID, at: at))
            case .task(let task):
                let before = tasks[task.key]?.state
                track(task)
                if task.state.isFinal && before != task.state { finished += 1 }
                if task.state == .running, newGrants.contains(task.key), let granted = task.lease?.grantedAt, let ready = task.readyAt {
                    dispatched += 1
                    if latencies.count < Self.maxLatencySamples {
                        latencies.append(max(0, granted.millisecondsSinceEpoch - ready.millisecondsSinceEpoch))
                    }
                }
                let spec = spec(of: task.key)
                let subject = ControlV1.WatchEventsResponse.Subject.taskInstance(
                    ControlV1.TaskInstance(task, spec: spec, attempts: attempts[task.key] ?? [], waitingReason: nil))
                events.append(event(.task, subject, dagID: runs[task.key.runID]?.dagID ?? "", runID: task.key.runID, at: at))
                yielder.checkpoint()
            case .attempt, .dag, .dagVersion, .agentSequence, .pool, .poolRemoved, .callback, .dagRemoved:
                break
            }
        }
        if !dagIDs.isEmpty {
            let dags = scheduler.read { scheduler in
                dagIDs.compactMap { id -> ControlV1.Dag? in
                    guard let record = scheduler.dag(id) else { return nil }
                    return ControlV1.Dag(record, latest: scheduler.version(id, record.latestVersion),
                                         nextRunAt: scheduler.nextScheduledRun(id), activeRuns: scheduler.activeRunCount(ofDAG: id))
                }
            }
            events += dags.map { event(.dag, .dag($0), dagID: $0.dagID, runID: "", at: at) }
        }
        for dagID in removed {
            var gone = ControlV1.Dag()
            gone.dagID = dagID
            gone.deleted = true
            events.append(event(.dag, .dag(gone), dagID: dagID, runID: "", at: at))
        }
        for runID in finishedRuns {
            for taskID in runs[runID]?.taskIDs ?? [] { tasks[TaskKey(runID: runID, taskID: taskID)] = nil }
            runs[runID] = nil
        }
        return events
    }

    /// Remembers an unfinished task (with its queue), forgets a finished one.
    private mutating func track(_ task: TaskInstanceRecord) {
        if task.state.isFinal {
            tasks[task.key] = nil
            runs[task.key.runID]?.taskIDs.remove(task.key.taskID)
        } else {
            tasks[task.key] = TrackedTask(queue: spec(of: task.key)?.queue ?? "", state: task.state)
            runs[task.key.runID]?.taskIDs.insert(task.key.taskID)
        }
    }

    private func spec(of key: TaskKey) -> TetherScheduler.TaskSpec? {
        guard let run = runs[key.runID] else { return nil }
        return specs[VersionKey(dagID: run.dagID, version: run.version)]?[key.taskID]
    }

    /// Loads the task specs of runs' versions not seen before, in one scheduler read.
    /// Versions are immutable, so each is read once.
    private mutating func resolveSpecs(_ scheduler: SchedulerService) {
        let missing = Set(runs.values.map { VersionKey(dagID: $0.dagID, version: $0.version) }).filter { specs[$0] == nil }
        guard !missing.isEmpty else { return }
        let found = scheduler.read { scheduler in
            missing.map { key in (key, scheduler.version(key.dagID, key.version)?.spec.tasks ?? []) }
        }
        for (key, taskSpecs) in found {
            specs[key] = Dictionary(taskSpecs.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        }
    }

    /// Events for agents that connected, changed or went away since the last call.
    mutating func agentEvents(_ current: [ControlV1.Agent], now: Instant) -> [FeedEvent] {
        var events: [FeedEvent] = []
        var present: Set<String> = []
        for agent in current {
            present.insert(agent.name)
            var stable = agent
            stable.lastHeartbeatAtUnixUs = 0
            stable.metrics = []
            let fingerprint = (try? stable.serializedBytes()) ?? []
            let previous = agents[agent.name]
            let stale = previous.map { $0.heartbeat != agent.lastHeartbeatAtUnixUs
                && now.millisecondsSinceEpoch - $0.sentAt.millisecondsSinceEpoch >= limits.agentHeartbeatInterval.milliseconds } ?? true
            guard previous?.fingerprint != fingerprint || stale else { continue }
            agents[agent.name] = SeenAgent(fingerprint: fingerprint, heartbeat: agent.lastHeartbeatAtUnixUs, sentAt: now, message: agent)
            events.append(event(.agent, .agent(agent), dagID: "", runID: "", at: now))
        }
        for (name, seen) in agents where !present.contains(name) {
            var gone = seen.message
            gone.state = .disconnected
            gone.freeSlots = 0
            gone.leaseIds = []
            events.append(event(.agent, .agent(gone), dagID: "", runID: "", at: now))
            agents[name] = nil
        }
        return events
    }

    /// The overview's numbers for the window since the last call, as one `stats` event:
    /// per queue the tasks queued, running and waiting (scheduled or up for retry), and
    /// the tasks finished and dispatched in the window, with dispatch latencies in ms
    /// (ready to granted, by the scheduler's millisecond clock).
    mutating func statsEvent(now: Instant) -> [UInt8] {
        var queues: [String: [TetherScheduler.TaskState: Int]] = [:]
        for task in tasks.values { queues[task.queue, default: [:]][task.state, default: 0] += 1 }
        let queueJSON = JSONText.object(members: queues.keys.sorted().map { queue in
            let counts = queues[queue]!
            return (queue, .json(JSONText.object(members: [
                ("queued", .integer(Int64(counts[.queued] ?? 0))),
                ("running", .integer(Int64(counts[.running] ?? 0))),
                ("waiting", .integer(Int64((counts[.scheduled] ?? 0) + (counts[.upForRetry] ?? 0)))),
            ])))
        })
        let window = now.millisecondsSinceEpoch - (windowStart ?? now).millisecondsSinceEpoch
        let text = JSONText.object(members: [
            ("atUnixUs", .integer(now.millisecondsSinceEpoch &* 1000)),
            ("windowMs", .integer(window)),
            ("activeRuns", .integer(Int64(runs.count))),
            ("finished", .integer(Int64(finished))),
            ("dispatched", .integer(Int64(dispatched))),
            ("dispatchLatencyMs", .json("[" + latencies.map(String.init).joined(separator: ",") + "]")),
            ("queues", .json(queueJSON)),
        ])
        windowStart = now
        finished = 0
        dispatched = 0
        latencies = []
        return Self.sse(event: "stats", id: nil, data: text)
    }

    /// No one watches: the stats window restarts.
    mutating func idle(now: Instant) {
        windowStart = now
        finished = 0
        dispatched = 0
        latencies = []
    }

    /// Tells clients to fetch everything again: events were dropped or state reloaded.
    static let resyncEvent = sse(event: "resync", id: nil, data: "{}")

    private func event(_ kind: FeedEvent.Kind, _ subject: ControlV1.WatchEventsResponse.Subject, dagID: String, runID: String,
                       at: Instant) -> FeedEvent {
        var message = ControlV1.WatchEventsResponse()
        message.committedAtUnixUs = at.millisecondsSinceEpoch &* 1000
        message.subject = subject
        return FeedEvent(kind: kind, message: message, dagID: dagID, runID: runID)
    }

    /// A numbered event as a server-sent event.
    static func sse(_ event: FeedEvent) -> [UInt8] {
        // A message that cannot be encoded (a NUL in stored text) is announced, not sent.
        let json = (try? event.message.jsonString(options: jsonOptions)) ?? "{\"cursor\":\"\(event.message.cursor)\"}"
        return sse(event: event.kind.rawValue, id: event.message.cursor, data: json)
    }

    /// One server-sent event. `data` is compact JSON: one line.
    static func sse(event: String, id: UInt64?, data: String) -> [UInt8] {
        var text = ""
        if let id { text += "id: \(id)\n" }
        text += "event: \(event)\ndata: \(data)\n\n"
        return Array(text.utf8)
    }
}

extension Duration {
    /// Whole milliseconds, for comparisons with the scheduler's millisecond clock.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
