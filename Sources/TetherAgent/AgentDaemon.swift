import Foundation
public import GRPC
import H2
import TetherStore
internal import Synchronization
import TetherWire

/// The agent's life: one outbound connection, one Connect stream at a time, reconnecting
/// with backoff; leases run as local processes; every task event goes to the durable
/// outbox first and to the server from there, until the server's Ack.
///
/// Threading: `run()` drives sessions on the client's event loop; task exits are noticed
/// there and their events recorded and sent from there (a task that fails to spawn, or is
/// cancelled before it starts, reports from the thread that found out). A grant that
/// arrives while no other task runs is spawned on the loop as well; one that arrives
/// beside running tasks is spawned on one of its host's spawner threads, in parallel with
/// the loop. Both threads live as long as the agent, and every task dies with the thread
/// that spawned it, so a task never outlives its agent, even one killed by SIGKILL. A spawn
/// on the loop blocks it for a few hundred microseconds: creating the attempt's log under
/// `log_dir` and the spawn (vfork, which waits for the exec, after the chdir to the
/// entrypoint's working directory). Should a mount there hang, the connection stalls with
/// it, as it already would on the outbox's disk: heartbeats stop and the server re-leases
/// the agent's tasks to others. Shared state sits behind one lock. All messages to the
/// server go through the session's outbound queue, written by one pump task.
///
/// Several agents may share one process (`AgentHost`): each keeps its own name, token,
/// state and log directories, connection, stream, heartbeats and lease deadlines, and
/// they share the spawner threads, the lease keeper and, when their clients share an
/// event loop, that loop (and so the reaper on it). The loop must then outlive every
/// agent on it, for the same reason as the spawner threads.
public final class AgentDaemon: Sendable {
    public let configuration: AgentConfiguration
    private let client: GRPCClient
    /// The bearer token, read again for every session (a rotated token file is picked up).
    private let readToken: @Sendable () throws -> String
    private let outbox: EventOutbox
    private let logs: LogDirectory
    private let instanceID: String
    /// Task exits are noticed on the connection's loop, where their events are sent.
    private let reaper: ChildReaper
    /// The spawner threads and the lease keeper, shared with the process's other agents.
    private let host: AgentHost
    /// Whether `run()` stops the host at its end: it was made for this agent alone.
    private let ownsHost: Bool
    /// What tasks inherit of this process's environment, read once.
    private let environment = ProcessInfo.processInfo.environment.filter { TaskRunner.inheritedVariables.contains($0.key) }
    private let log: @Sendable (String) -> Void
    /// How long a `started` event waits before it is sent, unless a later event carries
    /// it sooner. A short task's start then reaches the server together with its end, in
    /// one server commit instead of two; a long task shows as running this much later
    /// (its start time is the agent's, so no timing is skewed).
    private let startedEventDelay: Duration
    private let state: Mutex<State>

    private struct State {
        var runners: [String: TaskRunner] = [:]
        /// How long each running lease is known to stand; see `LeaseDeadlines`.
        var deadlines: LeaseDeadlines
        /// Running tasks' process groups, by lease; the keeper watches each.
        var processGroups: [String: pid_t] = [:]
        /// The keeper's drop count when this agent last sent it every deadline.
        var keeperDropsSeen = 0
        /// Entrypoints not offered, and why, as last logged.
        var unusable: [String: String] = [:]
        /// The live session's outbound queue, and the last event sequence put on it.
        var session: AsyncStream<AgentV1.AgentMessage>.Continuation?
        var lastSent: UInt64 = 0
        var draining = false
        /// `stop()`: finish once no task runs, without waiting for the server's Acks.
        var stopping = false
        var finished = false
        /// Why the server refused this agent's token, once it has (the agent then stops).
        var refusal: GRPCStatus?
        /// The token the current (or last) session used.
        var token = ""
        /// Ends the current session's call, for `reconnect()`.
        var cancelSession: (@Sendable () async -> Void)?
        /// Ends the wait between sessions early (the agent drained, or SIGHUP).
        var wake: AsyncStream<Void>.Continuation?
        /// Counter increments since the last heartbeat, by series.
        var counters: [MetricSeries: Double] = [:]
        /// A flush waits on the loop's timer for a `started` event.
        var startedFlushScheduled = false
    }

    /// A metric name with its labels.
    private struct MetricSeries: Hashable {
        var name: String
        var labels: [String: String]
    }

    /// - Parameters:
    ///   - token: the bearer token (the content of token_file), read for every session.
    ///   - client: a client for the server (TLS, proxy and backoff already set). Its event
    ///     loop must live as long as the process's agents (tasks are spawned on it).
    ///   - host: what this agent shares with the process's other agents; nil makes one for
    ///     this agent alone, which `run()` stops at its end.
    ///   - log: one line per notable event, for the operator.
    ///   - startedEventDelay: how long a `started` event may wait for a later one to go with.
    /// - Throws: `EventOutboxError` opening the outbox under state_dir; `SystemError`
    ///   starting a host of its own.
    public init(configuration: AgentConfiguration, token: @escaping @Sendable () throws -> String, client: GRPCClient,
                host: AgentHost? = nil, startedEventDelay: Duration = .milliseconds(20),
                log: @escaping @Sendable (String) -> Void) throws {
        self.configuration = configuration
        self.client = client
        self.startedEventDelay = startedEventDelay
        state = Mutex(State(deadlines: LeaseDeadlines(killGrace: .milliseconds(configuration.killGraceMilliseconds))))
        // First, while the process holds the fewest descriptors (see `AgentHost.init`).
        self.host = try host ?? AgentHost()
        ownsHost = host == nil
        reaper = ChildReaper(loop: client.eventLoop)
        self.log = log
        readToken = token
        try configuration.createDirectories()
        outbox = try EventOutbox(directory: configuration.stateDirectory)
        logs = LogDirectory(root: configuration.logDirectory)
        instanceID = try Self.instanceID(in: configuration.stateDirectory)
        // Processes a previous agent process left behind cannot be resumed: kill them and
        // report them lost, so they run again without using a retry.
        for reaped in try outbox.reapOrphans() { log("reaped \(reaped.lease.leaseID): \(reaped.message)") }
    }

    /// Runs sessions until the agent has drained (after `drain()`) or `stop()`.
    public func run() async {
        // The outbox's writes are crash-safe at once and power-loss-safe once synced.
        let syncTimer = DispatchSource.makeTimerSource(queue: .global())
        syncTimer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1))
        syncTimer.setEventHandler { [outbox, log] in
            do { try outbox.sync() } catch { log("outbox: \(error)") }
        }
        syncTimer.resume()
        // Stops tasks whose leases the server has not confirmed in time, connected or not.
        let leaseTimer = DispatchSource.makeTimerSource(queue: .global())
        leaseTimer.setEventHandler { [weak self] in self?.stopOverdueLeases(timer: leaseTimer) }
        leaseTimer.schedule(deadline: .now() + .milliseconds(100))
        leaseTimer.resume()
        defer {
            syncTimer.cancel()
            leaseTimer.cancel()
            try? outbox.sync()
        }
        var attempt = 0
        let backoff = GRPCConnectionBackoff()
        while !state.withLock({ $0.finished }) {
            do {
                // On the connection's own thread: each message in or out costs no hop to
                // Swift's global pool and back.
                try await withTaskExecutorPreference(client.eventLoop) { try await session() }
                attempt = 0
            } catch let status as GRPCStatus where status.code == .unauthenticated || status.code == .permissionDenied {
                // A rotated token: the file holds a new one, which the next session uses.
                let (used, current) = (state.withLock { $0.token }, try? readToken())
                if let current, current != used {
                    log("the server refused the token (\(status.message)); token_file has a new one: reconnecting with it")
                    continue
                }
                log("the server refused this agent's token: \(status.message); stopping")
                state.withLock { $0.refusal = status }
                await cancelRunningTasks(reason: "the server refused this agent's token")
                break
            } catch {
                if state.withLock({ $0.finished }) { break }
                log("session ended: \(error)")
            }
            if state.withLock({ $0.finished }) { break }
            let (ttl, running) = state.withLock { ($0.deadlines.ttl, !$0.runners.isEmpty) }
            let delay = Self.reconnectDelay(backoff.delay(attempt: attempt, random: Double.random(in: 0..<1)), leaseTTL: ttl,
                                            holdsWork: running || !outbox.pending(limit: 1).isEmpty)
            attempt += 1
            await pause(delay)
        }
        await client.close()
        if ownsHost { host.stop() }
    }

    /// Waits `delay` between sessions, or less if `finishIfDrained()` or `reconnect()`
    /// wakes it: a drained agent whose server is gone exits at once, not after the backoff.
    private func pause(_ delay: Duration) async {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        guard state.withLock({ state in
            state.wake = wake
            return !state.finished
        }) else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: delay) }
            group.addTask { for await _ in wakes { return } }
            await group.next()
            group.cancelAll()
        }
        state.withLock { $0.wake = nil }
    }

    /// The entrypoints this agent can start now, checked for every session: one whose program
    /// is missing is not offered (and logged, when that changes), so its tasks go to agents
    /// that can run them instead of burning attempts here.
    private func offeredEntrypoints() -> [String] {
        var unusable: [String: String] = [:]
        for (name, entrypoint) in configuration.entrypoints {
            if let problem = TaskRunner.unusable(entrypoint, inherited: environment) { unusable[name] = problem }
        }
        let changed = state.withLock { state in
            defer { state.unusable = unusable }
            return state.unusable != unusable
        }
        if changed {
            for name in unusable.keys.sorted() { log("entrypoint '\(name)' is not offered: \(unusable[name]!)") }
        }
        return configuration.entrypoints.keys.filter { unusable[$0] == nil }.sorted()
    }

    /// The wait before redialling: gRPC's backoff, but at most a quarter of the lease TTL
    /// while the agent holds leases or unacknowledged events, since it must be back within a
    /// TTL of the server's return (a restarted server gives each lease a TTL) or finished
    /// work is run again elsewhere.
    static func reconnectDelay(_ backoff: Duration, leaseTTL: Duration?, holdsWork: Bool) -> Duration {
        guard holdsWork, let leaseTTL else { return backoff }
        return min(backoff, leaseTTL / 4)
    }

    /// Why the server refused this agent's token (revoked, expired, bound to another name),
    /// if that is why `run()` returned.
    public var refusal: GRPCStatus? { state.withLock { $0.refusal } }

    /// Ends the current session, or the wait for the next, so that the next one reads
    /// token_file again (SIGHUP).
    public func reconnect() {
        let (cancel, wake) = state.withLock { ($0.cancelSession, $0.wake) }
        log("reconnecting: token_file is read again")
        wake?.yield()
        if let cancel { Task { await cancel() } }
    }

    /// Cancels every running task and waits until each has ended (its final event is in
    /// the outbox, for the next start to deliver).
    private func cancelRunningTasks(reason: String) async {
        let runners = state.withLock { Array($0.runners.values) }
        for runner in runners { runner.cancel(reason: reason) }
        for runner in runners { _ = await runner.result() }
    }

    /// This agent's instance id: random, made once and kept in state_dir, so the server can
    /// tell this agent reconnecting (which replaces its old session) from a second agent
    /// under the same name (which it refuses).
    static func instanceID(in stateDirectory: String) throws -> String {
        let path = stateDirectory + "/instance-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        let id = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        do {
            try PrivateFiles.createExclusively(path, contents: id + "\n")
        } catch {
            // Another start made it meanwhile (or an empty file is in the way): use what is there.
            let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { throw error }
            return text
        }
        return id
    }

    /// Takes no new leases, says Goodbye, lets running tasks finish and their events be
    /// acknowledged, then ends `run()`.
    public func drain(reason: String) {
        let session = state.withLock { state -> AsyncStream<AgentV1.AgentMessage>.Continuation? in
            guard !state.draining else { return nil }
            state.draining = true
            return state.session
        }
        log("draining: \(reason)")
        session?.yield(Self.goodbye(reason))
        finishIfDrained()
    }

    /// Cancels running tasks (SIGTERM, then SIGKILL after the grace) and ends `run()` once
    /// they have ended, acknowledged or not: their events wait in the outbox for the next start.
    public func stop() {
        state.withLock { $0.stopping = true }
        drain(reason: "stopping")
        for runner in state.withLock({ Array($0.runners.values) }) { runner.cancel(reason: "agent stopping") }
    }

    /// One Connect stream, from Hello to its end.
    private func session() async throws {
        let token: String
        do {
            token = try readToken()
        } catch {
            token = state.withLock { $0.token }
            log("cannot read the token (\(error)); using the one read before")
        }
        state.withLock { $0.token = token }
        var metadata = GRPCMetadata()
        try metadata.addString("Bearer \(token)", forKey: "authorization")
        let call: GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage> =
            try await client.makeCall(AgentV1.AgentService.connect, metadata: metadata)
        state.withLock { $0.cancelSession = { await call.cancel() } }
        defer { state.withLock { $0.cancelSession = nil } }
        var hello = AgentV1.Hello()
        hello.name = configuration.name
        hello.version = "tether-agent"
        hello.queues = configuration.queues
        hello.slots = UInt32(clamping: configuration.slots)
        hello.labels = configuration.labels
        hello.entrypoints = offeredEntrypoints()
        hello.instanceID = instanceID
        // Leases still running, and leases whose end is still in the outbox: the server
        // must keep both live until their final event arrives, or it would call them lost.
        var resumed = state.withLock { $0.runners.values.map { AgentV1.ResumedLease(leaseID: $0.lease.id, epoch: $0.lease.epoch) } }
        for (_, event) in outbox.pending() where event.kind != .started
            && !resumed.contains(where: { $0.leaseID == event.leaseID }) {
            resumed.append(AgentV1.ResumedLease(leaseID: event.leaseID, epoch: event.epoch))
        }
        hello.resumedLeases = resumed.sorted { $0.leaseID < $1.leaseID }
        state.withLock { $0.deadlines.helloSent(at: .now) }
        try await call.send(AgentV1.AgentMessage(.hello(hello)))
        guard let first = try await call.next(), case .welcome(let welcome)? = first.kind else {
            throw await call.status() ?? GRPCStatus(code: .internal, message: "the server's first message was not a Welcome")
        }
        state.withLock { state in
            let running = welcome.confirmedLeaseIds.filter { state.runners[$0] != nil }
            // Without acks (an older server) nothing confirms a lease: no deadline can be kept.
            let ttl: Duration? = welcome.acknowledgesHeartbeats ? .milliseconds(Int64(clamping: welcome.leaseTtlMs)) : nil
            state.deadlines.welcomed(ttl: ttl, confirmedLeaseIDs: running)
            moveKeeperDeadlines(state)
        }
        // Bounded: a server's bogus huge sequence must not push our numbering off the end.
        try outbox.acknowledge(upTo: min(welcome.ackedSequence, UInt64(Int64.max / 2)))
        let confirmed = Set(welcome.confirmedLeaseIds)
        for lease in hello.resumedLeases where !confirmed.contains(lease.leaseID) {
            state.withLock { $0.runners[lease.leaseID] }?.cancel(reason: "the server did not confirm the lease on reconnect")
        }
        log("connected as \(welcome.agentID); \(confirmed.count) of \(hello.resumedLeases.count) resumed leases stand")

        let (outbound, continuation) = AsyncStream.makeStream(of: AgentV1.AgentMessage.self)
        let draining = state.withLock { state -> Bool in
            state.session = continuation
            state.lastSent = welcome.ackedSequence
            return state.draining
        }
        defer {
            state.withLock { $0.session = nil }
            continuation.finish()
        }
        if draining { continuation.yield(Self.goodbye("draining")) }
        flushOutbox()
        let interval = Duration.milliseconds(Int64(clamping: max(100, min(welcome.heartbeatIntervalMs, 3_600_000))))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in outbound { try await call.send(message) }
                await call.finishSending()
            }
            group.addTask { [self] in
                // The first at once: its ack confirms the leases sooner than the Welcome
                // could (a Welcome that arrived late leaves them old).
                while !Task.isCancelled {
                    continuation.yield(heartbeat())
                    try await Task.sleep(for: interval)
                }
            }
            while let message = try await call.next() {
                handle(message)
                if state.withLock({ $0.finished }) { break }
            }
            group.cancelAll()
            continuation.finish()
        }
        if let status = await call.status(), status.code != .ok, !state.withLock({ $0.finished }) { throw status }
    }

    private func handle(_ message: AgentV1.ServerMessage) {
        switch message.kind {
        case .leaseGrant(let grant)?:
            start(Lease(grant), grantedAs: grant)
        case .leaseRevoke(let revoke)?:
            if let runner = state.withLock({ $0.runners[revoke.leaseID] }) {
                log("lease \(revoke.leaseID) revoked (\(revoke.reason))")
                runner.cancel(reason: "revoked by the server")
            }
        case .ack(let ack)?:
            do {
                try outbox.acknowledge(upTo: min(ack.sequence, UInt64(Int64.max / 2)))
            } catch {
                log("outbox: \(error)")
            }
            for rejection in ack.rejections { log("event \(rejection.sequence) rejected: \(rejection.reason)") }
            finishIfDrained()
        case .drain(let drain)?:
            self.drain(reason: "the server asked: \(drain.reason)")
        case .heartbeatAck(let ack)?:
            state.withLock { state in
                state.deadlines.acknowledged(heartbeat: ack.heartbeatID)
                moveKeeperDeadlines(state)
            }
        case .welcome?, nil:
            break
        }
    }

    /// Tells the keeper each running task's deadline (after a confirmation moved them), in
    /// one write.
    private func moveKeeperDeadlines(_ state: borrowing State) {
        let deadlines = state.deadlines
        host.keeper.watch(state.processGroups.compactMap { leaseID, processGroup in
            deadlines.hardDeadline(of: leaseID).map { (processGroup, $0) }
        })
    }

    /// Stops every task whose lease has gone unconfirmed past its budget, before the
    /// server may give it to another agent, and re-arms `timer` for the next check.
    private func stopOverdueLeases(timer: any DispatchSourceTimer) {
        let (overdue, grace, period) = state.withLock { state in
            let overdue = state.deadlines.overdue(at: .now).compactMap { lease in
                state.runners[lease.leaseID].map { ($0, lease.age) }
            }
            for (runner, _) in overdue { state.deadlines.ended(runner.lease.id) }
            // A record the keeper's full pipe refused is lost: send every deadline again.
            let drops = host.keeper.dropCount
            if drops != state.keeperDropsSeen {
                state.keeperDropsSeen = drops
                moveKeeperDeadlines(state)
            }
            return (overdue, state.deadlines.lossGrace, state.deadlines.checkPeriod)
        }
        for (runner, age) in overdue {
            let reason = "lease not confirmed by the server for \(LeaseDeadlines.text(age)); stopped before it may be given to another agent"
            log("lease \(runner.lease.id): \(reason)")
            runner.stopLeaseLost(reason: reason, graceMilliseconds: grace.wholeMilliseconds)
        }
        timer.schedule(deadline: .now() + .nanoseconds(Int(period.wholeNanoseconds)))
    }

    /// Starts `lease` (nil: a grant that names no task), unless it must be refused.
    private func start(_ lease: Lease?, grantedAs grant: AgentV1.LeaseGrant) {
        let refused = state.withLock { state -> String? in
            if state.draining { return "agent is draining" }
            guard let lease else { return "lease grant names no task" }
            if state.runners[lease.id] != nil { return "lease already running" }
            return state.deadlines.granted(lease.id, at: .now)
        }
        guard let lease, refused == nil else {
            let refused = refused ?? ""
            // Tell the server at once, so it re-queues the task (a refusal does not use
            // one of the task's retries) instead of waiting for the lease to expire.
            log("refused lease \(grant.leaseID): \(refused)")
            do {
                try outbox.append(AgentV1.TaskEvent(refusing: grant, reason: refused))
            } catch {
                log("outbox: cannot record the refusal of \(grant.leaseID): \(error)")
            }
            flushOutbox()
            return
        }
        let runner = TaskRunner(lease: lease, configuration: configuration, inheritedEnvironment: environment,
                                reaper: reaper, diesWithStartingThread: true) { [weak self] event in
            self?.record(event, of: lease)
        }
        let alone = state.withLock { state in
            state.runners[lease.id] = runner
            return state.runners.count == 1
        }
        // The only task starts here, on the connection's loop: waking a sleeping thread (on a
        // VM, often on an idle CPU) cost a chain of tasks 6-15% per hop. Beside other tasks,
        // spawns go to the spawner threads, where they run in parallel with the loop's work.
        if alone {
            runner.start()
        } else {
            host.spawner().execute { runner.start() }
        }
        log("lease \(lease.id) (attempt \(lease.attempt)): running \(lease.entrypoint)")
    }

    /// A runner's event: durable in the outbox first, then sent (a `started` event after
    /// `startedEventDelay`, or with the next event sent before then).
    private func record(_ event: TaskRunner.Event, of lease: Lease) {
        do {
            switch event {
            case .started(let start):
                state.withLock { state in
                    state.processGroups[lease.id] = start.processID
                    if let deadline = state.deadlines.hardDeadline(of: lease.id) { host.keeper.watch([(start.processID, deadline)]) }
                }
                try outbox.recordStart(of: RunningLease(lease: lease, start: start), event: AgentV1.TaskEvent(started: start, of: lease))
                flushAfterStartedEventDelay()
            case .finished(let result):
                try outbox.append(AgentV1.TaskEvent(finished: result, of: lease))
                flushOutbox()  // before the bookkeeping: the server waits for this event
                let cpuSeconds = Double((result.usage?.userCPUMilliseconds ?? 0) + (result.usage?.systemCPUMilliseconds ?? 0)) / 1000
                state.withLock { state in
                    _ = state.runners.removeValue(forKey: lease.id)
                    state.deadlines.ended(lease.id)
                    if let processGroup = state.processGroups.removeValue(forKey: lease.id) { host.keeper.forget(processGroup) }
                    state.counters[MetricSeries(name: "tether_agent_tasks_finished_total",
                                                labels: ["outcome": "\(result.outcome)"]), default: 0] += 1
                    state.counters[MetricSeries(name: "tether_agent_task_cpu_seconds_total", labels: [:]), default: 0] += cpuSeconds
                }
                log("lease \(lease.id): \(result.outcome) \(result.message)")
                // Off the loop (a failed spawn, a cancel before start) the Ack of this event
                // may have been handled before the runner left `runners`.
                finishIfDrained()
            }
        } catch {
            log("outbox: cannot record an event of \(lease.id): \(error)")
            flushOutbox()
        }
    }

    private func flushAfterStartedEventDelay() {
        guard state.withLock({ state in
            defer { state.startedFlushScheduled = true }
            return !state.startedFlushScheduled
        }) else { return }
        let loop = client.eventLoop
        loop.execute { [weak self, delay = startedEventDelay] in
            loop.schedule(after: delay) {
                guard let self else { return }
                self.state.withLock { $0.startedFlushScheduled = false }
                self.flushOutbox()
            }
        }
    }

    /// Puts every outbox event the session has not carried yet on the outbound queue.
    private func flushOutbox() {
        state.withLock { state in
            guard let session = state.session else { return }
            for (sequence, var event) in outbox.pending(after: state.lastSent) {
                event.sequence = sequence
                session.yield(AgentV1.AgentMessage(.taskEvent(event)))
                state.lastSent = sequence
            }
        }
    }

    /// Ends `run()` once draining, no task runs and the server acknowledged every event.
    private func finishIfDrained() {
        let session = state.withLock { state -> AsyncStream<AgentV1.AgentMessage>.Continuation?? in
            // Both conditions under the lock: a runner's final event is appended before it
            // leaves `runners`, so no event can slip between the two checks.
            guard state.draining, !state.finished, state.runners.isEmpty else { return nil }
            guard state.stopping || outbox.pending(limit: 1).isEmpty else { return nil }
            state.finished = true
            state.wake?.yield()  // between sessions: end `run()` now, not after the backoff
            return .some(state.session)
        }
        guard let session else { return }
        let waiting = outbox.pending(limit: 1).isEmpty ? "every event acknowledged" : "events not yet acknowledged wait in the outbox for the next start"
        log("drained: every task finished; \(waiting)")
        session?.finish()
    }

    /// Liveness, free slots, and the metric changes since the last heartbeat (a heartbeat
    /// lost with its connection loses its deltas: metrics are best effort).
    private func heartbeat() -> AgentV1.AgentMessage {
        let (leases, counters, id) = state.withLock { state in
            defer { state.counters = [:] }
            let leases = Array(state.runners.keys).sorted()
            return (leases, state.counters, state.deadlines.heartbeatSent(naming: leases, at: .now))
        }
        var heartbeat = AgentV1.Heartbeat()
        heartbeat.heartbeatID = id
        heartbeat.freeSlots = UInt32(clamping: max(0, configuration.slots - leases.count))
        heartbeat.activeLeaseIds = leases
        var running = AgentV1.MetricDelta()
        running.name = "tether_agent_running_tasks"
        running.kind = .gauge
        running.value = Double(leases.count)
        heartbeat.metricDeltas = [running] + counters.sorted { ($0.key.name, "\($0.key.labels)") < ($1.key.name, "\($1.key.labels)") }
            .map { series, value in
                var delta = AgentV1.MetricDelta()
                delta.name = series.name
                delta.labels = series.labels
                delta.kind = .counter
                delta.value = value
                return delta
            }
        heartbeat.sentAtUnixUs = Int64(Date().timeIntervalSince1970 * 1e6)
        // A finished drain may be waiting for a task that ended while disconnected.
        finishIfDrained()
        return AgentV1.AgentMessage(.heartbeat(heartbeat))
    }

    private static func goodbye(_ reason: String) -> AgentV1.AgentMessage {
        var goodbye = AgentV1.Goodbye()
        goodbye.reason = .draining
        goodbye.message = reason
        return AgentV1.AgentMessage(.goodbye(goodbye))
    }
}
