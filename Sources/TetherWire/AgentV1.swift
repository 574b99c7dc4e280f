internal import TetherProtoC

/// `tether.agent.v1`: the stream between an agent and the server (`AgentService.Connect`).
/// Times are Unix-epoch microseconds (`…UnixUs`), durations milliseconds (`…Ms`).
public enum AgentV1 {}

// MARK: - Agent -> server

extension AgentV1 {
    /// `AgentMessage`: one message from an agent to the server.
    public struct AgentMessage: WireMessage {
        /// Which message it is; `nil` if the sender set none.
        public enum Kind: Equatable, Sendable {
            case hello(Hello)
            case heartbeat(Heartbeat)
            case taskEvent(TaskEvent)
            case goodbye(Goodbye)
        }

        public var kind: Kind?

        public init() {}
        public init(_ kind: Kind) { self.kind = kind }
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__AgentMessage.self, tether__agent__v1__agent_message__init)
        public init(from r: WireReader) throws(WireError) {
            if let m: Hello = try r.value(1) {
                kind = .hello(m)
            } else if let m: Heartbeat = try r.value(2) {
                kind = .heartbeat(m)
            } else if let m: TaskEvent = try r.value(3) {
                kind = .taskEvent(m)
            } else if let m: Goodbye = try r.value(4) {
                kind = .goodbye(m)
            }
        }
        public func write(to w: WireWriter) throws(WireError) {
            switch kind {
            case .hello(let m)?: try w.set(1, m)
            case .heartbeat(let m)?: try w.set(2, m)
            case .taskEvent(let m)?: try w.set(3, m)
            case .goodbye(let m)?: try w.set(4, m)
            case nil: break
            }
        }
    }

    /// `Hello`: registers the agent and what it can run. First message of a stream.
    public struct Hello: WireMessage {
        /// Unique agent name, 1-128 characters of [A-Za-z0-9._-].
        public var name = ""
        /// The agent's build version.
        public var version = ""
        /// Queues the agent takes work from.
        public var queues: [String] = []
        /// Tasks the agent runs at once.
        public var slots: UInt32 = 0
        /// Free-form labels shown to operators.
        public var labels: [String: String] = [:]
        /// Entrypoint names the agent's config defines; never command lines.
        public var entrypoints: [String] = []
        /// Leases still running from an earlier connection.
        public var resumedLeases: [ResumedLease] = []
        /// Random per agent process start.
        public var instanceId = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__Hello.self, tether__agent__v1__hello__init)
        public init(from r: WireReader) throws(WireError) {
            name = try r.value(1)
            version = try r.value(2)
            queues = try r.values(3)
            slots = r.value(4)
            labels = try r.map(5)
            entrypoints = try r.values(6)
            resumedLeases = try r.values(7)
            instanceId = try r.value(8)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, name)
            try w.set(2, version)
            try w.set(3, queues)
            w.set(4, slots)
            try w.set(5, labels)
            try w.set(6, entrypoints)
            try w.set(7, resumedLeases)
            try w.set(8, instanceId)
        }
    }

    /// `ResumedLease`: a lease the agent held before it reconnected.
    public struct ResumedLease: WireMessage {
        /// The lease id from the grant.
        public var leaseId = ""
        /// The fencing epoch from the grant.
        public var epoch: UInt64 = 0

        public init() {}
        public init(leaseId: String, epoch: UInt64) {
            self.leaseId = leaseId
            self.epoch = epoch
        }
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__ResumedLease.self, tether__agent__v1__resumed_lease__init)
        public init(from r: WireReader) throws(WireError) {
            leaseId = try r.value(1)
            epoch = r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, leaseId)
            w.set(2, epoch)
        }
    }

    /// `Heartbeat`: liveness plus what changed since the last one; renews leases.
    public struct Heartbeat: WireMessage {
        /// Slots not running a task.
        public var freeSlots: UInt32 = 0
        /// Leases the agent is running; each one's TTL is renewed.
        public var activeLeaseIds: [String] = []
        /// Metric changes since the previous heartbeat.
        public var metricDeltas: [MetricDelta] = []
        /// When the agent sent it, by its own clock.
        public var sentAtUnixUs: Int64 = 0
        /// Grows by one per heartbeat on a stream; the server's HeartbeatAck carries it.
        public var heartbeatId: UInt64 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__Heartbeat.self, tether__agent__v1__heartbeat__init)
        public init(from r: WireReader) throws(WireError) {
            freeSlots = r.value(1)
            activeLeaseIds = try r.values(2)
            metricDeltas = try r.values(3)
            sentAtUnixUs = r.value(4)
            heartbeatId = r.value(5)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, freeSlots)
            try w.set(2, activeLeaseIds)
            try w.set(3, metricDeltas)
            w.set(4, sentAtUnixUs)
            w.set(5, heartbeatId)
        }
    }

    /// `MetricKind`: how a metric sample applies.
    public enum MetricKind: Int32, WireEnum {
        /// Not set; ignored.
        case unspecified = 0
        /// The value is an increment.
        case counter = 1
        /// The value replaces the current one.
        case gauge = 2
    }

    /// `MetricDelta`: one numeric sample; never a log line.
    public struct MetricDelta: WireMessage {
        /// Metric name (Prometheus rules).
        public var name = ""
        /// Label pairs of the series.
        public var labels: [String: String] = [:]
        /// Counter or gauge.
        public var kind = MetricKind.unspecified
        /// The increment or the new value.
        public var value: Double = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__MetricDelta.self, tether__agent__v1__metric_delta__init)
        public init(from r: WireReader) throws(WireError) {
            name = try r.value(1)
            labels = try r.map(2)
            kind = r.value(3)
            value = r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, name)
            try w.set(2, labels)
            w.set(3, kind)
            w.set(4, value)
        }
    }

    /// `TaskEventKind`: what happened to a task attempt.
    public enum TaskEventKind: Int32, WireEnum {
        /// Not set; rejected by the server.
        case unspecified = 0
        /// The process started.
        case started = 1
        /// The process exited 0.
        case succeeded = 2
        /// The process exited non-zero or by a signal.
        case failed = 3
        /// The agent killed it at its timeout.
        case timedOut = 4
        /// The agent stopped it after a revoke or its own shutdown.
        case cancelled = 5
        /// The agent could not start it (or the grant came too late to start).
        case rejected = 6
        /// The agent stopped it: the server had not confirmed its lease for too long.
        case lost = 7
    }

    /// `TaskEvent`: a change in one task attempt, kept in the agent's outbox until acked.
    public struct TaskEvent: WireMessage {
        /// Per-agent sequence number, from 1, never reused.
        public var sequence: UInt64 = 0
        /// The lease the event is about.
        public var leaseId = ""
        /// The lease's fencing epoch.
        public var epoch: UInt64 = 0
        /// What happened.
        public var kind = TaskEventKind.unspecified
        /// When it happened, by the agent's clock.
        public var occurredAtUnixUs: Int64 = 0
        /// How the process ended, once it has.
        public var exitStatus: ExitStatus?
        /// Resources the process used, once it has ended.
        public var resourceUsage: ResourceUsage?
        /// When the process started; 0 if it never did.
        public var startedAtUnixUs: Int64 = 0
        /// When the process ended; 0 while it runs.
        public var finishedAtUnixUs: Int64 = 0
        /// A short reason for operators; never task output.
        public var message = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__TaskEvent.self, tether__agent__v1__task_event__init)
        public init(from r: WireReader) throws(WireError) {
            sequence = r.value(1)
            leaseId = try r.value(2)
            epoch = r.value(3)
            kind = r.value(4)
            occurredAtUnixUs = r.value(5)
            exitStatus = try r.value(6)
            resourceUsage = try r.value(7)
            startedAtUnixUs = r.value(8)
            finishedAtUnixUs = r.value(9)
            message = try r.value(10)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, sequence)
            try w.set(2, leaseId)
            w.set(3, epoch)
            w.set(4, kind)
            w.set(5, occurredAtUnixUs)
            try w.set(6, exitStatus)
            try w.set(7, resourceUsage)
            w.set(8, startedAtUnixUs)
            w.set(9, finishedAtUnixUs)
            try w.set(10, message)
        }
    }

    /// `ExitStatus`: how a process ended.
    public struct ExitStatus: WireMessage {
        /// Exit code or signal; `nil` if the sender set neither.
        public enum Status: Equatable, Sendable {
            /// The process exited with this code.
            case exitCode(Int32)
            /// The process was killed by this signal number.
            case signal(Int32)
        }

        public var status: Status?

        public init() {}
        public init(_ status: Status) { self.status = status }
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__ExitStatus.self, tether__agent__v1__exit_status__init)
        public init(from r: WireReader) {
            if r.has(1) {
                status = .exitCode(r.value(1))
            } else if r.has(2) {
                status = .signal(r.value(2))
            }
        }
        public func write(to w: WireWriter) {
            switch status {
            case .exitCode(let code)?: w.set(1, code)
            case .signal(let signal)?: w.set(2, signal)
            case nil: break
            }
        }
    }

    /// `ResourceUsage`: resources used by a task's process group.
    public struct ResourceUsage: WireMessage {
        /// Wall-clock run time.
        public var wallMs: UInt64 = 0
        /// CPU time in user mode.
        public var userCpuMs: UInt64 = 0
        /// CPU time in kernel mode.
        public var systemCpuMs: UInt64 = 0
        /// Peak resident set size in KiB.
        public var maxRssKib: UInt64 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__ResourceUsage.self, tether__agent__v1__resource_usage__init)
        public init(from r: WireReader) {
            wallMs = r.value(1)
            userCpuMs = r.value(2)
            systemCpuMs = r.value(3)
            maxRssKib = r.value(4)
        }
        public func write(to w: WireWriter) {
            w.set(1, wallMs)
            w.set(2, userCpuMs)
            w.set(3, systemCpuMs)
            w.set(4, maxRssKib)
        }
    }

    /// `GoodbyeReason`: why an agent is leaving.
    public enum GoodbyeReason: Int32, WireEnum {
        /// Not given.
        case unspecified = 0
        /// Finishing running tasks, then closing.
        case draining = 1
        /// Stopping now; running tasks were cancelled.
        case shuttingDown = 2
    }

    /// `Goodbye`: the agent takes no new leases from now on.
    public struct Goodbye: WireMessage {
        /// Why.
        public var reason = GoodbyeReason.unspecified
        /// Free text for operators.
        public var message = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__Goodbye.self, tether__agent__v1__goodbye__init)
        public init(from r: WireReader) throws(WireError) {
            reason = r.value(1)
            message = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, reason)
            try w.set(2, message)
        }
    }
}

// MARK: - Server -> agent

extension AgentV1 {
    /// `ServerMessage`: one message from the server to an agent.
    public struct ServerMessage: WireMessage {
        /// Which message it is; `nil` if the sender set none.
        public enum Kind: Equatable, Sendable {
            case welcome(Welcome)
            case leaseGrant(LeaseGrant)
            case leaseRevoke(LeaseRevoke)
            case ack(Ack)
            case drain(Drain)
            case heartbeatAck(HeartbeatAck)
        }

        public var kind: Kind?

        public init() {}
        public init(_ kind: Kind) { self.kind = kind }
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__ServerMessage.self, tether__agent__v1__server_message__init)
        public init(from r: WireReader) throws(WireError) {
            if let m: Welcome = try r.value(1) {
                kind = .welcome(m)
            } else if let m: LeaseGrant = try r.value(2) {
                kind = .leaseGrant(m)
            } else if let m: LeaseRevoke = try r.value(3) {
                kind = .leaseRevoke(m)
            } else if let m: Ack = try r.value(4) {
                kind = .ack(m)
            } else if let m: Drain = try r.value(5) {
                kind = .drain(m)
            } else if let m: HeartbeatAck = try r.value(6) {
                kind = .heartbeatAck(m)
            }
        }
        public func write(to w: WireWriter) throws(WireError) {
            switch kind {
            case .welcome(let m)?: try w.set(1, m)
            case .leaseGrant(let m)?: try w.set(2, m)
            case .leaseRevoke(let m)?: try w.set(3, m)
            case .ack(let m)?: try w.set(4, m)
            case .drain(let m)?: try w.set(5, m)
            case .heartbeatAck(let m)?: try w.set(6, m)
            case nil: break
            }
        }
    }

    /// `Welcome`: accepts the agent's Hello.
    public struct Welcome: WireMessage {
        /// The server's id for this agent.
        public var agentId = ""
        /// How often to heartbeat.
        public var heartbeatIntervalMs: UInt64 = 0
        /// A lease not renewed for this long expires.
        public var leaseTtlMs: UInt64 = 0
        /// Resumed leases that stand; the others get a LeaseRevoke.
        public var confirmedLeaseIds: [String] = []
        /// Highest event sequence number already durable on the server.
        public var ackedSequence: UInt64 = 0
        /// The server's build version.
        public var serverVersion = ""
        /// The server acknowledges every heartbeat (`HeartbeatAck`).
        public var acknowledgesHeartbeats = false

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__Welcome.self, tether__agent__v1__welcome__init)
        public init(from r: WireReader) throws(WireError) {
            agentId = try r.value(1)
            heartbeatIntervalMs = r.value(2)
            leaseTtlMs = r.value(3)
            confirmedLeaseIds = try r.values(4)
            ackedSequence = r.value(5)
            serverVersion = try r.value(6)
            acknowledgesHeartbeats = r.value(7)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agentId)
            w.set(2, heartbeatIntervalMs)
            w.set(3, leaseTtlMs)
            try w.set(4, confirmedLeaseIds)
            w.set(5, ackedSequence)
            try w.set(6, serverVersion)
            w.set(7, acknowledgesHeartbeats)
        }
    }

    /// `TaskRef`: the task instance a lease is for.
    public struct TaskRef: WireMessage {
        /// The DAG's id.
        public var dagId = ""
        /// The DAG version the run is pinned to.
        public var dagVersion: UInt32 = 0
        /// The run's id.
        public var runId = ""
        /// The task's id within the DAG.
        public var taskId = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__TaskRef.self, tether__agent__v1__task_ref__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            dagVersion = r.value(2)
            runId = try r.value(3)
            taskId = try r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            w.set(2, dagVersion)
            try w.set(3, runId)
            try w.set(4, taskId)
        }
    }

    /// `LeaseGrant`: one task attempt for the agent to run.
    public struct LeaseGrant: WireMessage {
        /// Unique lease id.
        public var leaseId = ""
        /// Fencing epoch; events must carry it.
        public var epoch: UInt64 = 0
        /// Which task instance.
        public var task: TaskRef?
        /// Entrypoint name, resolved by the agent's own config.
        public var entrypoint = ""
        /// Task parameters as text.
        public var params: [String: String] = [:]
        /// Kill the task after this long; 0 means no limit.
        public var timeoutMs: UInt64 = 0
        /// 1 for the first attempt.
        public var attempt: UInt32 = 0
        /// When the server granted it.
        public var grantedAtUnixUs: Int64 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__LeaseGrant.self, tether__agent__v1__lease_grant__init)
        public init(from r: WireReader) throws(WireError) {
            leaseId = try r.value(1)
            epoch = r.value(2)
            task = try r.value(3)
            entrypoint = try r.value(4)
            params = try r.map(5)
            timeoutMs = r.value(6)
            attempt = r.value(7)
            grantedAtUnixUs = r.value(8)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, leaseId)
            w.set(2, epoch)
            try w.set(3, task)
            try w.set(4, entrypoint)
            try w.set(5, params)
            w.set(6, timeoutMs)
            w.set(7, attempt)
            w.set(8, grantedAtUnixUs)
        }
    }

    /// `RevokeReason`: why a lease was taken back.
    public enum RevokeReason: Int32, WireEnum {
        /// Not given.
        case unspecified = 0
        /// An operator cancelled the run or task.
        case cancelled = 1
        /// The lease's TTL ran out.
        case expired = 2
        /// The task was granted again with a higher epoch.
        case superseded = 3
        /// The server does not know the lease.
        case unknownLease = 4
    }

    /// `LeaseRevoke`: stop a task (SIGTERM, then SIGKILL after a grace period).
    public struct LeaseRevoke: WireMessage {
        /// The lease to stop.
        public var leaseId = ""
        /// Its fencing epoch.
        public var epoch: UInt64 = 0
        /// Why.
        public var reason = RevokeReason.unspecified
        /// Free text for operators.
        public var message = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__LeaseRevoke.self, tether__agent__v1__lease_revoke__init)
        public init(from r: WireReader) throws(WireError) {
            leaseId = try r.value(1)
            epoch = r.value(2)
            reason = r.value(3)
            message = try r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, leaseId)
            w.set(2, epoch)
            w.set(3, reason)
            try w.set(4, message)
        }
    }

    /// `Ack`: events up to `sequence` are durable on the server.
    public struct Ack: WireMessage {
        /// Every event with sequence <= this is durable.
        public var sequence: UInt64 = 0
        /// Covered events that were not applied, and why.
        public var rejections: [EventRejection] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__Ack.self, tether__agent__v1__ack__init)
        public init(from r: WireReader) throws(WireError) {
            sequence = r.value(1)
            rejections = try r.values(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, sequence)
            try w.set(2, rejections)
        }
    }

    /// `EventRejection`: an event the server refused to apply.
    public struct EventRejection: WireMessage {
        /// The event's sequence number.
        public var sequence: UInt64 = 0
        /// The event's lease id.
        public var leaseId = ""
        /// Why.
        public var reason = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__EventRejection.self, tether__agent__v1__event_rejection__init)
        public init(from r: WireReader) throws(WireError) {
            sequence = r.value(1)
            leaseId = try r.value(2)
            reason = try r.value(3)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, sequence)
            try w.set(2, leaseId)
            try w.set(3, reason)
        }
    }

    /// `Drain`: take no new leases, finish running tasks, say Goodbye, close.
    public struct Drain: WireMessage {
        /// Free text for operators.
        public var reason = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__Drain.self, tether__agent__v1__drain__init)
        public init(from r: WireReader) throws(WireError) {
            reason = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, reason)
        }
    }

    /// `HeartbeatAck`: the leases a heartbeat named are renewed.
    public struct HeartbeatAck: WireMessage {
        /// The heartbeat's `heartbeatId`.
        public var heartbeatId: UInt64 = 0

        public init() {}
        public init(heartbeatId: UInt64) { self.heartbeatId = heartbeatId }
        public static let wireDescriptor = WireDescriptor(Tether__Agent__V1__HeartbeatAck.self, tether__agent__v1__heartbeat_ack__init)
        public init(from r: WireReader) throws(WireError) {
            heartbeatId = r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, heartbeatId)
        }
    }

    /// Every message of the package.
    static let messageTypes: [any WireMessage.Type] = [
        AgentMessage.self, Hello.self, ResumedLease.self, Heartbeat.self, MetricDelta.self,
        TaskEvent.self, ExitStatus.self, ResourceUsage.self, Goodbye.self,
        ServerMessage.self, Welcome.self, TaskRef.self, LeaseGrant.self, LeaseRevoke.self,
        Ack.self, EventRejection.self, Drain.self, HeartbeatAck.self,
    ]
}
