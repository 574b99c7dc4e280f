import GRPC
internal import Synchronization
import TetherScheduler
import TetherSyntax
import TetherWire

/// `tether.agent.v1.AgentService.Connect`: one session per connected agent. The handler
/// validates and routes only; the scheduler decides.
///
/// Order on the stream: the Welcome goes first, then grants, revokes and acks in the
/// order their commits completed. Every server message of a session passes through its
/// outbound queue, written by one pump task, so the stream has a single writer. The
/// queue is bounded: an agent that sends but stops reading has its call ended with
/// RESOURCE_EXHAUSTED once `outboundLimit` messages wait for it.
struct AgentService: Sendable {

    let scheduler: SchedulerService
    let sessions: AgentSessions
    let authenticator: Authenticator
    let heartbeatIntervalMilliseconds: UInt64
    let leaseTTLMilliseconds: UInt64
    let serverVersion: String
    /// Messages a session may have waiting for its agent to read.
    let outboundLimit: Int

    func register(in router: inout GRPCRouter) {
        router.bidirectionalStreaming(AgentV1.AgentService.connect) {
            (requests: GRPCRequestStream<AgentV1.AgentMessage>, writer: GRPCResponseWriter<AgentV1.ServerMessage>, context) in
            try await connect(requests, writer, context)
        }
    }

    private func connect(_ requests: GRPCRequestStream<AgentV1.AgentMessage>, _ writer: GRPCResponseWriter<AgentV1.ServerMessage>,
                         _ context: GRPCServerContext) async throws {
        let token = try authenticator.require([.agent, .admin], context)
        var incoming = requests.makeAsyncIterator()
        guard let first = try await incoming.next() else { return }
        guard case .hello(let hello)? = first.kind else {
            throw GRPCStatus(code: .invalidArgument, message: "the first message of a Connect stream must be a Hello")
        }
        try Self.validate(hello)
        // Admin tokens may connect as any agent; an agent token only as the agent it is bound
        // to (tokens made before binding was required are refused outright).
        if token.role == .agent && token.agentName.isEmpty {
            throw GRPCStatus(code: .permissionDenied,
                             message: "token \(token.tokenID) is bound to no agent name; create one with --agent-name \(hello.name)")
        }
        guard token.agentName.isEmpty || token.agentName == hello.name else {
            throw GRPCStatus(code: .permissionDenied,
                             message: "token \(token.tokenID) may only connect as agent '\(token.agentName)', not '\(hello.name)'")
        }
        let (outbound, continuation) = AsyncStream.makeStream(of: AgentV1.ServerMessage.self)
        let session = AgentSession(hello: hello, tokenID: token.tokenID, peer: context.peer, connectedAt: scheduler.clock.now(),
                                   outbound: continuation, limit: outboundLimit, end: { writer.end($0) })
        // The same agent instance reconnecting replaces its old session: after a NAT drops a
        // connection, the agent redials long before keepalive would notice the old one.
        // Another instance under a live agent's name is refused.
        try sessions.register(session)
        var ended: (any Error)? = nil
        defer {
            continuation.finish()
            // Only the name's current session may mark the agent gone.
            if sessions.unregister(session) {
                scheduler.perform({ $0.agentDisconnected(hello.name) }, completion: { _ in })
                let (reason, detail) = session.endCause(thrown: ended)
                sessions.directory.disconnected(agentMessage(session), reason: reason, detail: detail,
                                                at: scheduler.clock.now().unixMicroseconds)
            }
        }
        do {
            try await serve(session, hello: hello, incoming: &incoming, outbound: (outbound, continuation), writer: writer)
        } catch {
            ended = error
            throw error
        }
    }

    private func agentMessage(_ session: AgentSession) -> ControlV1.Agent { sessions.agentMessage(session, scheduler) }

    /// The session after its registration: Welcome, then the agent's messages until it
    /// closes its side.
    private func serve(_ session: AgentSession, hello: AgentV1.Hello, incoming: inout GRPCRequestStream<AgentV1.AgentMessage>.AsyncIterator,
                       outbound: (stream: AsyncStream<AgentV1.ServerMessage>, continuation: AsyncStream<AgentV1.ServerMessage>.Continuation),
                       writer: GRPCResponseWriter<AgentV1.ServerMessage>) async throws {
        let (outbound, continuation) = outbound

        let registration = AgentRegistration(agentID: hello.name, queues: Set(hello.queues), entrypoints: Set(hello.entrypoints),
                                             slots: Int(hello.slots), resumingLeaseIDs: hello.resumedLeases.map(\.leaseID),
                                             session: session.id)
        let welcome: AgentWelcome
        do {
            welcome = try await scheduler.perform { $0.agentConnected(registration) }
        } catch {
            throw GRPCStatus(code: .unavailable, message: "\(error)")
        }
        session.noteSequence(welcome.appliedSequence)  // jumps are measured from here
        var message = AgentV1.Welcome()
        message.agentID = hello.name
        message.heartbeatIntervalMs = heartbeatIntervalMilliseconds
        message.leaseTtlMs = leaseTTLMilliseconds
        message.confirmedLeaseIds = welcome.confirmedLeaseIDs
        message.ackedSequence = welcome.appliedSequence
        message.serverVersion = serverVersion
        message.acknowledgesHeartbeats = true
        try await writer.write(AgentV1.ServerMessage(.welcome(message)))
        sessions.directory.connected(agentMessage(session))

        try await withThrowingTaskGroup(of: Void.self) { group in
            // The pump: the only writer of the stream from here on.
            group.addTask {
                for await message in outbound {
                    session.dequeued()
                    try await writer.write(message)
                }
            }
            while let message = try await incoming.next() {
                // Messages that arrived together are handled together: their task events
                // share one scheduler call, one commit and one Ack.
                var batch = [message]
                var undecodable: (any Error)?
                do {
                    while batch.count < Self.maxBatch, let next = try incoming.nextIfReceived() { batch.append(next) }
                } catch {
                    undecodable = error  // ends the call, after the messages before it
                }
                try handle(batch, from: session)
                if let undecodable { throw undecodable }
            }
            // The agent closed its side: stop pumping and end the call.
            continuation.finish()
            try await group.waitForAll()
        }
    }

    /// The most messages handled as one batch.
    static let maxBatch = 256
    /// The most lease ids one heartbeat may name (an agent runs at most 10,000 slots).
    static let maxLeasesPerHeartbeat = 10_000

    /// Handles `messages` in order; each run of consecutive task events goes to the
    /// scheduler in one call.
    private func handle(_ messages: [AgentV1.AgentMessage], from session: AgentSession) throws(GRPCStatus) {
        var events: [AgentV1.TaskEvent] = []
        for message in messages {
            // A newer session of this name took over (this connection may be half-open, or
            // a second process uses the name): the old one was ended; this is a message that
            // was already on its way.
            guard !session.isReplaced else { throw session.replacedStatus }
            if case .taskEvent(let event)? = message.kind {
                // The largest sequence jump accepted: an agent's outbox numbers grow by one
                // per event, so a far jump is a bug or an attack that would silence its
                // later events.
                let maxSequenceJump: UInt64 = 1_000_000
                guard event.sequence <= session.lastSequence &+ maxSequenceJump else {
                    report(events, from: session)  // the ones before it stand
                    throw GRPCStatus(code: .invalidArgument,
                                     message: "event sequence \(event.sequence) jumps more than \(maxSequenceJump) past \(session.lastSequence)")
                }
                session.noteSequence(event.sequence)
                events.append(event)
                continue
            }
            report(events, from: session)
            events = []
            try handle(message, from: session)
        }
        report(events, from: session)
    }

    /// Applies `events` in one scheduler call; once that is durable, one Ack covers them all
    /// and names those rejected. A failed commit sends no Ack: the agent sends them again.
    private func report(_ events: [AgentV1.TaskEvent], from session: AgentSession) {
        guard let last = events.map(\.sequence).max() else { return }
        let agentID = session.name
        scheduler.perform({ scheduler in
            events.map { scheduler.report(agentID: agentID, sequence: $0.sequence, TaskReport($0)) }
        }) { result in
            guard case .success(let results) = result else { return }
            var ack = AgentV1.Ack()
            ack.sequence = last
            for (event, result) in zip(events, results) {
                guard case .rejected(let error) = result else { continue }
                var rejection = AgentV1.EventRejection()
                rejection.sequence = event.sequence
                rejection.leaseID = event.leaseID
                rejection.reason = "\(error)"
                ack.rejections.append(rejection)
            }
            session.send(AgentV1.ServerMessage(.ack(ack)))
        }
    }

    /// One message; `handle(_:from:)` of a batch brings task events to the scheduler itself
    /// and calls this for the others.
    private func handle(_ message: AgentV1.AgentMessage, from session: AgentSession) throws(GRPCStatus) {
        let agentID = session.name
        switch message.kind {
        case .hello?:
            throw GRPCStatus(code: .invalidArgument, message: "Hello is only valid as the first message")
        case .heartbeat(let heartbeat)?:
            // A token that expired (or was revoked) since the stream opened ends it here.
            guard authenticator.tokens.isActive(tokenID: session.tokenID, now: scheduler.clock.now().millisecondsSinceEpoch) else {
                let status = AgentSession.tokenEnded(session.tokenID)
                session.end(status, reason: .revoked)
                throw status
            }
            let active = heartbeat.activeLeaseIds
            guard active.count <= Self.maxLeasesPerHeartbeat else {
                throw GRPCStatus(code: .invalidArgument,
                                 message: "a heartbeat names \(active.count) leases; at most \(Self.maxLeasesPerHeartbeat) are allowed")
            }
            session.heartbeat(at: scheduler.clock.now())
            sessions.metrics.apply(heartbeat.metricDeltas, agent: agentID)
            // Answered once the renewals are applied (after any revoke it caused): the agent
            // counts its leases safe for a TTL from when it sent the heartbeat.
            let id = heartbeat.heartbeatID
            scheduler.perform({ $0.heartbeat(agentID: agentID, activeLeaseIDs: active) }) { result in
                guard case .success(true) = result else { return }
                session.send(AgentV1.ServerMessage(.heartbeatAck(AgentV1.HeartbeatAck(heartbeatID: id))))
            }
        case .taskEvent?:
            try handle([message], from: session)   // a batch of one (batches route events before this)
        case .goodbye?:
            session.setDraining(true)
            scheduler.perform({ $0.agentDisconnected(agentID) }, completion: { _ in })
        case nil:
            throw GRPCStatus(code: .invalidArgument, message: "an AgentMessage must set one of hello, heartbeat, task_event, goodbye")
        }
    }

    /// What one Hello may carry: a session's Hello is kept for as long as it lives and
    /// listed to operators, so a peer must not grow the server's memory or its listings.
    enum HelloLimits {
        static let queues = 64
        static let entrypoints = 1_024
        static let labels = 64
        static let labelKeyBytes = 128
        static let labelValueBytes = 1_024
        static let labelBytes = 16 << 10
        static let resumedLeases = 10_000
        static let textBytes = 128
    }

    static func validate(_ hello: AgentV1.Hello) throws(GRPCStatus) {
        func bad(_ text: String) -> GRPCStatus { GRPCStatus(code: .invalidArgument, message: "invalid Hello: \(text)") }
        if let problem = Identifier.problem(hello.name) { throw bad("name \(problem)") }
        guard hello.slots >= 1, hello.slots <= 10_000 else { throw bad("slots must be 1...10000") }
        guard !hello.queues.isEmpty else { throw bad("at least one queue is needed") }
        guard hello.queues.count <= HelloLimits.queues else { throw bad("\(hello.queues.count) queues; at most \(HelloLimits.queues)") }
        guard hello.entrypoints.count <= HelloLimits.entrypoints else {
            throw bad("\(hello.entrypoints.count) entrypoints; at most \(HelloLimits.entrypoints)")
        }
        guard hello.resumedLeases.count <= HelloLimits.resumedLeases else {
            throw bad("\(hello.resumedLeases.count) resumed leases; at most \(HelloLimits.resumedLeases)")
        }
        guard hello.version.utf8.count <= HelloLimits.textBytes, hello.instanceID.utf8.count <= HelloLimits.textBytes else {
            throw bad("version and instance_id may have at most \(HelloLimits.textBytes) bytes each")
        }
        guard hello.labels.count <= HelloLimits.labels else { throw bad("\(hello.labels.count) labels; at most \(HelloLimits.labels)") }
        var labelBytes = 0
        for (key, value) in hello.labels {
            guard (1...HelloLimits.labelKeyBytes).contains(key.utf8.count), value.utf8.count <= HelloLimits.labelValueBytes else {
                throw bad("label '\(key.prefix(64))': keys must have 1-\(HelloLimits.labelKeyBytes) bytes, values at most \(HelloLimits.labelValueBytes)")
            }
            labelBytes += key.utf8.count + value.utf8.count
        }
        guard labelBytes <= HelloLimits.labelBytes else { throw bad("labels take \(labelBytes) bytes; at most \(HelloLimits.labelBytes)") }
        for queue in hello.queues where !Identifier.isValid(queue) { throw bad("queue '\(queue)' is not a valid name") }
        for entrypoint in hello.entrypoints where !Identifier.isValid(entrypoint) {
            throw bad("entrypoint '\(entrypoint)' is not a valid name")
        }
    }

}

/// One connected agent's session: what it announced and its outbound queue.
final class AgentSession: Sendable {
    private static let lastID = Atomic<UInt64>(0)

    /// Unique in this process; the scheduler names it when it ends a silent agent's stream.
    let id = AgentSession.lastID.add(1, ordering: .relaxed).newValue
    let hello: AgentV1.Hello
    /// The token the stream authenticated with.
    let tokenID: String
    let peer: String
    let connectedAt: Instant
    private let outbound: AsyncStream<AgentV1.ServerMessage>.Continuation
    private let limit: Int
    private let endCall: @Sendable (GRPCStatus) -> Void
    private let live = Mutex(LiveState())
    /// Messages queued and not yet taken by the pump. Not under `live`: the pump, woken by
    /// a `send` that still holds that lock, would otherwise block on it at once.
    private let queued = Atomic<Int>(0)

    private struct LiveState {
        var lastHeartbeat: Instant?
        var draining = false
        /// Why the server ended the call, when it did (the first reason given).
        var endedBy: (AgentDisconnectReason, String)?
        var lastSequence: UInt64 = 0
        var isReplaced = false
        /// The session this one replaced, still open when this one registered: its peer.
        var tookOverFrom: String?
        /// The queue was closed (overflow, replacement); nothing more is queued.
        var closed = false
    }

    var name: String { hello.name }

    /// - Parameters:
    ///   - limit: messages that may wait for the pump; one more ends the call.
    ///   - end: ends the call with a status (`GRPCResponseWriter.end`).
    init(hello: AgentV1.Hello, tokenID: String, peer: String, connectedAt: Instant,
         outbound: AsyncStream<AgentV1.ServerMessage>.Continuation, limit: Int, end: @escaping @Sendable (GRPCStatus) -> Void) {
        self.hello = hello
        self.tokenID = tokenID
        self.peer = peer
        self.connectedAt = connectedAt
        self.outbound = outbound
        self.limit = limit
        self.endCall = end
    }

    /// Queues a message for the agent, in call order. Any thread. When `limit` messages
    /// already wait (the agent stopped reading), ends the call with RESOURCE_EXHAUSTED
    /// instead: what it misses is re-sent or re-decided after it reconnects (grants
    /// expire, events are resent and acknowledged again).
    func send(_ message: AgentV1.ServerMessage) {
        let overflowed = live.withLock { state -> Bool in
            guard !state.closed else { return false }
            guard queued.load(ordering: .relaxed) < limit else {
                state.closed = true
                return true
            }
            queued.add(1, ordering: .relaxed)
            outbound.yield(message)
            return false
        }
        if overflowed {
            end(GRPCStatus(code: .resourceExhausted,
                           message: "agent '\(name)' is not reading its stream: \(limit) messages wait for it"))
        }
    }

    /// The pump took a message off the queue.
    func dequeued() { queued.subtract(1, ordering: .relaxed) }

    /// Ends the call now with `status`; its handler's reads and writes throw it.
    /// `reason` is what the agent directory records.
    func end(_ status: GRPCStatus, reason: AgentDisconnectReason = .lost) {
        live.withLock { state in
            state.closed = true
            if state.endedBy == nil { state.endedBy = (reason, status.message) }
            outbound.finish()
        }
        endCall(status)
    }

    /// Why the session ended: as the server ended it, or else drained (it was told to drain
    /// or said Goodbye: an agent that drained exits, and may close its connection before its
    /// Goodbye is read, so how the stream ended does not matter then) or lost.
    func endCause(thrown: (any Error)?) -> (AgentDisconnectReason, String) {
        live.withLock { state in
            if let endedBy = state.endedBy { return endedBy }
            if state.draining { return (.drained, thrown == nil ? "drained and closed its stream" : "drained, then its connection closed") }
            if let status = thrown as? GRPCStatus { return (.lost, status.message) }
            return (.lost, thrown.map { "\($0)" } ?? "closed its stream without saying Goodbye")
        }
    }

    /// How a stream ends when its token stops being valid.
    static func tokenEnded(_ tokenID: String) -> GRPCStatus {
        GRPCStatus(code: .unauthenticated, message: "token \(tokenID) was revoked or has expired")
    }

    func heartbeat(at instant: Instant) { live.withLock { $0.lastHeartbeat = instant } }

    func setDraining(_ draining: Bool) { live.withLock { $0.draining = draining } }

    /// The highest event sequence seen on this session (starts at the Welcome's).
    var lastSequence: UInt64 { live.withLock { $0.lastSequence } }
    func noteSequence(_ sequence: UInt64) { live.withLock { $0.lastSequence = max($0.lastSequence, sequence) } }

    /// Whether a newer session of the same name took over.
    var isReplaced: Bool { live.withLock { $0.isReplaced } }

    /// The peer of the session this one replaced (nil: it replaced none).
    var tookOverFrom: String? { live.withLock { $0.tookOverFrom } }

    func noteTookOver(from old: AgentSession) { live.withLock { $0.tookOverFrom = old.peer } }

    /// Ends this session's call: a newer one of the same name took over.
    func markReplaced() {
        live.withLock { $0.isReplaced = true }
        end(replacedStatus)
    }

    /// How a session's call ends once a newer one of its name took over.
    var replacedStatus: GRPCStatus {
        GRPCStatus(code: .aborted, message: "replaced by a newer session of agent '\(name)'")
    }

    var isDraining: Bool { live.withLock { $0.draining } }
    var lastHeartbeat: Instant? { live.withLock { $0.lastHeartbeat } }
}

/// The live sessions, by agent name, and the route from scheduler effects to them.
final class AgentSessions: Sendable {
    private let sessions = Mutex<[String: AgentSession]>([:])
    /// Agents' metrics, kept across their reconnects and (through the directory) restarts.
    let metrics = AgentMetrics()
    /// Every agent known, connected or not.
    let directory: AgentDirectory

    init(directory: AgentDirectory) {
        self.directory = directory
        for (agent, series) in directory.metrics() { metrics.restore(series, agent: agent) }
    }

    /// Makes `session` the name's session; an older one of the same agent instance (the
    /// same `instance_id`, kept in the agent's state_dir) is told it was replaced.
    /// - Throws: ALREADY_EXISTS if a session of another instance holds the name: a second
    ///   agent may not take a live agent's name (and with it its leases).
    func register(_ session: AgentSession) throws(GRPCStatus) {
        let old = try sessions.withLock { sessions throws(GRPCStatus) -> AgentSession? in
            let old = sessions[session.name]
            if let old, old.hello.instanceID != session.hello.instanceID {
                throw GRPCStatus(code: .alreadyExists, message: "agent '\(session.name)' is already connected from \(old.peer) "
                    + "(another instance); give each agent its own name. The name frees up when that session ends, "
                    + "at most a lease TTL after it goes silent")
            }
            sessions[session.name] = session
            return old
        }
        guard let old else { return }
        session.noteTookOver(from: old)
        old.markReplaced()
    }

    /// Removes `session` if it is still its name's session; returns whether it was.
    @discardableResult
    func unregister(_ session: AgentSession) -> Bool {
        sessions.withLock { sessions in
            guard sessions[session.name] === session else { return false }
            sessions[session.name] = nil
            return true
        }
    }

    func session(_ name: String) -> AgentSession? { sessions.withLock { $0[name] } }

    /// A connected agent as `ListAgents` shows it.
    func agentMessage(_ session: AgentSession, _ scheduler: SchedulerService) -> ControlV1.Agent {
        ControlV1.Agent(session, leaseIDs: scheduler.read { $0.leaseIDs(ofAgent: session.name) },
                        metrics: metrics.snapshot(agent: session.name))
    }

    /// Writes the directory, with connected agents' last-seen times and metrics as they are
    /// now. Blocking (SQLite): call it off the event loops.
    func saveDirectory(_ scheduler: SchedulerService) throws {
        directory.refresh(all.map { agentMessage($0, scheduler) })
        try directory.flush()
    }

    /// Ends every session that authenticated with `tokenID` (it was just revoked).
    func endSessions(ofToken tokenID: String) {
        for session in sessions.withLock({ Array($0.values) }) where session.tokenID == tokenID {
            session.end(AgentSession.tokenEnded(tokenID), reason: .revoked)
        }
    }

    var all: [AgentSession] { sessions.withLock { Array($0.values) }.sorted { $0.name < $1.name } }

    /// Sends each effect to its agent's session; effects for agents that are gone are
    /// dropped (their leases expire). Called after the commit that made them durable.
    func deliver(_ effects: [SchedulerEffect]) {
        for effect in effects {
            switch effect {
            case .grant(let grant):
                session(grant.agentID)?.send(AgentV1.ServerMessage(.leaseGrant(AgentV1.LeaseGrant(grant))))
            case .revoke(let agentID, let leaseID, let epoch, let reason):
                session(agentID)?.send(AgentV1.ServerMessage(.leaseRevoke(AgentV1.LeaseRevoke(leaseID: leaseID, epoch: epoch, reason: reason))))
            case .endSession(let agentID, let id, let reason):
                guard let session = session(agentID), session.id == id else { continue }
                session.end(GRPCStatus(code: .unavailable, message: "\(reason): session ended; its leases expire unless it reconnects"))
            }
        }
    }
}

/// Agents' metric series from their heartbeats, in memory since the server started:
/// counters summed, gauges replaced. Malformed deltas are dropped; each agent keeps at
/// most `maxSeriesPerAgent` series, so a peer cannot grow this without bound.
final class AgentMetrics: Sendable {
    static let maxSeriesPerAgent = 256
    static let maxLabels = 16

    private struct Series: Hashable {
        var name: String
        var labels: [String: String]
    }

    private let series = Mutex<[String: [Series: Double]]>([:])

    /// Sets an agent's series to what was saved (at start).
    func restore(_ saved: [ControlV1.AgentMetric], agent: String) {
        let mine = Dictionary(saved.prefix(Self.maxSeriesPerAgent).map { (Series(name: $0.name, labels: $0.labels), $0.value) },
                              uniquingKeysWith: { $1 })
        series.withLock { $0[agent] = mine }
    }

    /// Drops an agent's series (it was forgotten).
    func remove(agent: String) {
        series.withLock { _ = $0.removeValue(forKey: agent) }
    }

    func apply(_ deltas: [AgentV1.MetricDelta], agent: String) {
        series.withLock { all in
            var mine = all[agent] ?? [:]
            for delta in deltas where Self.isValid(delta) {
                let key = Series(name: delta.name, labels: delta.labels)
                guard mine[key] != nil || mine.count < Self.maxSeriesPerAgent else { continue }
                switch delta.kind {
                case .counter: mine[key, default: 0] += max(0, delta.value)
                case .gauge: mine[key] = delta.value
                default: break
                }
            }
            all[agent] = mine
        }
    }

    /// An agent's series, by name then labels.
    func snapshot(agent: String) -> [ControlV1.AgentMetric] {
        let mine = series.withLock { $0[agent] ?? [:] }
        return mine.map { key, value in
            var metric = ControlV1.AgentMetric()
            metric.name = key.name
            metric.labels = key.labels
            metric.value = value
            return metric
        }.sorted { ($0.name, $0.labels.sorted { $0.key < $1.key }.description) < ($1.name, $1.labels.sorted { $0.key < $1.key }.description) }
    }

    private static func isValid(_ delta: AgentV1.MetricDelta) -> Bool {
        guard delta.value.isFinite, delta.labels.count <= maxLabels, isMetricName(delta.name) else { return false }
        return delta.labels.allSatisfy { isMetricName($0.key) && $0.value.utf8.count <= 256 }
    }

    /// Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, at most 128 bytes here.
    private static func isMetricName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x3A }
        return letter(first) && bytes.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}
