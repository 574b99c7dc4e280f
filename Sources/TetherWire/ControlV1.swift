internal import TetherProtoC

/// `tether.control.v1`: the operator API of `tether server` (DAGs, runs, agents,
/// tokens, events). Times are µs since the Unix epoch (0 = not yet/never); durations ms.
public enum ControlV1 {}

// MARK: - Enums

extension ControlV1 {
    /// `tether.control.v1.TriggerRule`: which upstream outcomes let a task run.
    public enum TriggerRule: Int32, WireEnum {
        /// Not set; treated as `allSuccess`.
        case unspecified = 0
        /// Every upstream task succeeded (the default).
        case allSuccess = 1
        /// Every upstream task finished, whatever its outcome.
        case allDone = 2
        /// Every upstream task failed or was upstream_failed.
        case allFailed = 3
        /// At least one upstream task succeeded.
        case oneSuccess = 4
        /// At least one upstream task failed.
        case oneFailed = 5
        /// No upstream task failed (succeeded or skipped).
        case noneFailed = 6
    }

    /// `tether.control.v1.RunState`: run states.
    public enum RunState: Int32, WireEnum {
        /// Not set.
        case unspecified = 0
        /// Waiting for a max_active_runs slot.
        case queued = 1
        /// Tasks are being scheduled.
        case running = 2
        /// Every leaf task succeeded or was skipped.
        case success = 3
        /// Some task failed for good.
        case failed = 4
        /// An operator cancelled it.
        case cancelled = 5
    }

    /// `tether.control.v1.RunTrigger`: what started a run.
    public enum RunTrigger: Int32, WireEnum {
        /// Not set.
        case unspecified = 0
        /// TriggerRun.
        case manual = 1
        /// The DAG's schedule.
        case schedule = 2
    }

    /// `tether.control.v1.TaskState`: task instance states.
    public enum TaskState: Int32, WireEnum {
        /// Not set.
        case unspecified = 0
        /// Waiting for its upstream tasks.
        case scheduled = 1
        /// Ready, waiting for an agent slot.
        case queued = 2
        /// Leased to an agent.
        case running = 3
        /// Finished with success.
        case success = 4
        /// Failed with no retries left.
        case failed = 5
        /// Failed; will be retried at `nextTryAtUnixUs`.
        case upForRetry = 6
        /// Will not run because upstream tasks failed.
        case upstreamFailed = 7
        /// Will not run because its trigger rule can no longer be met.
        case skipped = 8
        /// Cancelled by an operator.
        case cancelled = 9
    }

    /// `tether.control.v1.AttemptOutcome`: how one attempt ended.
    public enum AttemptOutcome: Int32, WireEnum {
        /// Not set.
        case unspecified = 0
        /// Still leased.
        case running = 1
        /// Exited with status 0.
        case succeeded = 2
        /// Exited non-zero or by a signal.
        case failed = 3
        /// Killed at its execution timeout.
        case timedOut = 4
        /// Stopped by a cancel.
        case cancelled = 5
        /// Its lease expired: the agent stopped heartbeating.
        case lost = 6
        /// The agent could not start it.
        case rejected = 7
    }

    /// `tether.control.v1.AgentState`: agent connection states.
    public enum AgentState: Int32, WireEnum {
        /// Not set.
        case unspecified = 0
        /// Connected and taking leases.
        case connected = 1
        /// Connected; finishing its tasks, taking no new leases.
        case draining = 2
        /// Not connected.
        case disconnected = 3
    }

    /// `tether.control.v1.TokenRole`: token roles.
    public enum TokenRole: Int32, WireEnum {
        /// Not set; rejected.
        case unspecified = 0
        /// May call every service.
        case admin = 1
        /// May call AgentService only.
        case agent = 2
    }
}

// MARK: - DAGs

extension ControlV1 {
    /// `tether.control.v1.TaskSpec`: one task of a DAG spec, after defaults are applied.
    public struct TaskSpec: WireMessage {
        /// Unique within the DAG; 1-128 characters of [A-Za-z0-9._-].
        public var taskId = ""
        /// The entrypoint name an agent resolves from its own config; never a command.
        public var entrypoint = ""
        /// The queue whose agents may run it (default "default").
        public var queue = ""
        /// Ids of tasks that must finish first.
        public var dependsOn: [String] = []
        /// When the task may run, given its upstream outcomes.
        public var triggerRule = TriggerRule.unspecified
        /// How many times a failed attempt is retried.
        public var retries: UInt32 = 0
        /// Delay before the first retry.
        public var retryDelayMs: UInt64 = 0
        /// Multiply the delay by 2 per further retry.
        public var retryExponentialBackoff = false
        /// Upper bound of the retry delay.
        public var maxRetryDelayMs: UInt64 = 0
        /// An attempt running longer than this fails as timed out; 0 means no limit.
        public var executionTimeoutMs: UInt64 = 0
        /// Higher runs first among ready tasks of a queue.
        public var priority: Int32 = 0
        /// Task parameters; override the DAG's, overridden by the run's.
        public var params: [String: String] = [:]

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__TaskSpec.self, tether__control__v1__task_spec__init)
        public init(from r: WireReader) throws(WireError) {
            taskId = try r.value(1)
            entrypoint = try r.value(2)
            queue = try r.value(3)
            dependsOn = try r.values(4)
            triggerRule = r.value(5)
            retries = r.value(6)
            retryDelayMs = r.value(7)
            retryExponentialBackoff = r.value(8)
            maxRetryDelayMs = r.value(9)
            executionTimeoutMs = r.value(10)
            priority = r.value(11)
            params = try r.map(12)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, taskId)
            try w.set(2, entrypoint)
            try w.set(3, queue)
            try w.set(4, dependsOn)
            w.set(5, triggerRule)
            w.set(6, retries)
            w.set(7, retryDelayMs)
            w.set(8, retryExponentialBackoff)
            w.set(9, maxRetryDelayMs)
            w.set(10, executionTimeoutMs)
            w.set(11, priority)
            try w.set(12, params)
        }
    }

    /// `tether.control.v1.DagSpec`: a parsed DAG spec, after defaults are applied.
    public struct DagSpec: WireMessage {
        /// The DAG's id; 1-128 characters of [A-Za-z0-9._-].
        public var dagId = ""
        /// Free text.
        public var description = ""
        /// 5-field cron or @hourly/@daily/@weekly/@monthly, in UTC; empty means manual runs only.
        public var schedule = ""
        /// Whether the DAG starts paused when first applied.
        public var paused = false
        /// Most runs of the DAG in queued or running state at once.
        public var maxActiveRuns: UInt32 = 0
        /// Most task instances of the DAG leased at once, across all its runs; 0 means no limit.
        public var maxActiveTasks: UInt32 = 0
        /// DAG-level parameters with their defaults.
        public var params: [String: String] = [:]
        /// The tasks.
        public var tasks: [TaskSpec] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__DagSpec.self, tether__control__v1__dag_spec__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            description = try r.value(2)
            schedule = try r.value(3)
            paused = r.value(4)
            maxActiveRuns = r.value(5)
            maxActiveTasks = r.value(6)
            params = try r.map(7)
            tasks = try r.values(8)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            try w.set(2, description)
            try w.set(3, schedule)
            w.set(4, paused)
            w.set(5, maxActiveRuns)
            w.set(6, maxActiveTasks)
            try w.set(7, params)
            try w.set(8, tasks)
        }
    }

    /// `tether.control.v1.Dag`: a DAG, the latest state of one dag_id.
    public struct Dag: WireMessage {
        /// The DAG's id.
        public var dagId = ""
        /// From the latest version.
        public var description = ""
        /// From the latest version; empty for manual-only DAGs.
        public var schedule = ""
        /// Whether the schedule is paused.
        public var paused = false
        /// The newest version number (versions start at 1).
        public var latestVersion: UInt32 = 0
        /// When the schedule fires next; 0 if paused or unscheduled.
        public var nextRunAtUnixUs: Int64 = 0
        /// When version 1 was applied.
        public var createdAtUnixUs: Int64 = 0
        /// When the newest version was applied, or the DAG was paused or unpaused.
        public var updatedAtUnixUs: Int64 = 0
        /// Runs in queued or running state.
        public var activeRuns: UInt32 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__Dag.self, tether__control__v1__dag__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            description = try r.value(2)
            schedule = try r.value(3)
            paused = r.value(4)
            latestVersion = r.value(5)
            nextRunAtUnixUs = r.value(6)
            createdAtUnixUs = r.value(7)
            updatedAtUnixUs = r.value(8)
            activeRuns = r.value(9)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            try w.set(2, description)
            try w.set(3, schedule)
            w.set(4, paused)
            w.set(5, latestVersion)
            w.set(6, nextRunAtUnixUs)
            w.set(7, createdAtUnixUs)
            w.set(8, updatedAtUnixUs)
            w.set(9, activeRuns)
        }
    }

    /// `tether.control.v1.DagVersion`: one immutable version of a DAG.
    public struct DagVersion: WireMessage {
        /// The DAG's id.
        public var dagId = ""
        /// 1, 2, 3 … in apply order.
        public var version: UInt32 = 0
        /// Hex SHA-256 of the canonical form of the spec.
        public var contentHash = ""
        /// When it was applied.
        public var createdAtUnixUs: Int64 = 0
        /// The spec as parsed, with defaults applied.
        public var spec: DagSpec?
        /// The YAML text as applied.
        public var specYaml = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__DagVersion.self, tether__control__v1__dag_version__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            version = r.value(2)
            contentHash = try r.value(3)
            createdAtUnixUs = r.value(4)
            spec = try r.value(5)
            specYaml = try r.value(6)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            w.set(2, version)
            try w.set(3, contentHash)
            w.set(4, createdAtUnixUs)
            try w.set(5, spec)
            try w.set(6, specYaml)
        }
    }
}

// MARK: - Runs and task instances

extension ControlV1 {
    /// `tether.control.v1.Run`: one run of a DAG, pinned to one version.
    public struct Run: WireMessage {
        /// Unique id.
        public var runId = ""
        /// The DAG's id.
        public var dagId = ""
        /// The version the run is pinned to.
        public var dagVersion: UInt32 = 0
        /// Its state.
        public var state = RunState.unspecified
        /// What started it.
        public var trigger = RunTrigger.unspecified
        /// For scheduled runs the schedule instant it stands for; for manual runs the trigger time.
        public var logicalTimeUnixUs: Int64 = 0
        /// When it was created.
        public var createdAtUnixUs: Int64 = 0
        /// When its first task became ready; 0 while queued.
        public var startedAtUnixUs: Int64 = 0
        /// When it reached a final state; 0 until then.
        public var finishedAtUnixUs: Int64 = 0
        /// Run parameters (merged over the DAG's defaults).
        public var params: [String: String] = [:]
        /// Who or what cancelled or failed it, in a few words.
        public var note = ""
        /// Count of its task instances per TaskState name (e.g. "success": 3).
        public var taskCounts: [String: UInt32] = [:]

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__Run.self, tether__control__v1__run__init)
        public init(from r: WireReader) throws(WireError) {
            runId = try r.value(1)
            dagId = try r.value(2)
            dagVersion = r.value(3)
            state = r.value(4)
            trigger = r.value(5)
            logicalTimeUnixUs = r.value(6)
            createdAtUnixUs = r.value(7)
            startedAtUnixUs = r.value(8)
            finishedAtUnixUs = r.value(9)
            params = try r.map(10)
            note = try r.value(11)
            taskCounts = try r.map(12) { e in e.value(2) }
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, runId)
            try w.set(2, dagId)
            w.set(3, dagVersion)
            w.set(4, state)
            w.set(5, trigger)
            w.set(6, logicalTimeUnixUs)
            w.set(7, createdAtUnixUs)
            w.set(8, startedAtUnixUs)
            w.set(9, finishedAtUnixUs)
            try w.set(10, params)
            try w.set(11, note)
            try w.set(12, taskCounts) { e, v in e.set(2, v) }
        }
    }

    /// `tether.control.v1.TaskAttempt`: one attempt of a task instance, i.e. one lease.
    public struct TaskAttempt: WireMessage {
        /// How the process ended (`oneof exit`).
        public enum Exit: Equatable, Sendable {
            /// Exit code.
            case exitCode(Int32)
            /// Signal number that killed it.
            case signal(Int32)
        }

        /// 1 for the first attempt.
        public var attempt: UInt32 = 0
        /// The lease's id.
        public var leaseId = ""
        /// The lease's fencing epoch.
        public var epoch: UInt64 = 0
        /// The agent that held the lease.
        public var agentId = ""
        /// That agent's name.
        public var agentName = ""
        /// How it ended, or `running`.
        public var outcome = AttemptOutcome.unspecified
        /// How the process ended, when it did; nil otherwise.
        public var exit: Exit?
        /// When the lease was granted.
        public var grantedAtUnixUs: Int64 = 0
        /// When the process started (agent clock); 0 if it never did.
        public var startedAtUnixUs: Int64 = 0
        /// When it ended; 0 while running.
        public var finishedAtUnixUs: Int64 = 0
        /// CPU time in user mode.
        public var userCpuMs: UInt64 = 0
        /// CPU time in kernel mode.
        public var systemCpuMs: UInt64 = 0
        /// Peak resident set size in KiB.
        public var maxRssKib: UInt64 = 0
        /// A short reason from the agent or the server; never task output.
        public var message = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__TaskAttempt.self, tether__control__v1__task_attempt__init)
        public init(from r: WireReader) throws(WireError) {
            attempt = r.value(1)
            leaseId = try r.value(2)
            epoch = r.value(3)
            agentId = try r.value(4)
            agentName = try r.value(5)
            outcome = r.value(6)
            if r.has(7) {
                exit = .exitCode(r.value(7))
            } else if r.has(8) {
                exit = .signal(r.value(8))
            }
            grantedAtUnixUs = r.value(9)
            startedAtUnixUs = r.value(10)
            finishedAtUnixUs = r.value(11)
            userCpuMs = r.value(12)
            systemCpuMs = r.value(13)
            maxRssKib = r.value(14)
            message = try r.value(15)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, attempt)
            try w.set(2, leaseId)
            w.set(3, epoch)
            try w.set(4, agentId)
            try w.set(5, agentName)
            w.set(6, outcome)
            switch exit {
            case .exitCode(let code)?: w.set(7, code)
            case .signal(let number)?: w.set(8, number)
            case nil: break
            }
            w.set(9, grantedAtUnixUs)
            w.set(10, startedAtUnixUs)
            w.set(11, finishedAtUnixUs)
            w.set(12, userCpuMs)
            w.set(13, systemCpuMs)
            w.set(14, maxRssKib)
            try w.set(15, message)
        }
    }

    /// `tether.control.v1.TaskInstance`: one task of one run.
    public struct TaskInstance: WireMessage {
        /// The run's id.
        public var runId = ""
        /// The task's id.
        public var taskId = ""
        /// Its state.
        public var state = TaskState.unspecified
        /// Its queue.
        public var queue = ""
        /// Its entrypoint name.
        public var entrypoint = ""
        /// Attempts made so far.
        public var tries: UInt32 = 0
        /// Attempts allowed in all (retries + 1).
        public var maxTries: UInt32 = 0
        /// When it became ready to run; 0 if not yet.
        public var readyAtUnixUs: Int64 = 0
        /// When an `upForRetry` task becomes ready again; 0 otherwise.
        public var nextTryAtUnixUs: Int64 = 0
        /// When it reached a final state; 0 until then.
        public var finishedAtUnixUs: Int64 = 0
        /// Why a queued task is not running; empty otherwise.
        public var waitingReason = ""
        /// Its attempts, oldest first.
        public var attempts: [TaskAttempt] = []
        /// Of `tries`, those that ended lost or rejected; they use none of the task's retries.
        public var infrastructureAttempts: UInt32 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__TaskInstance.self, tether__control__v1__task_instance__init)
        public init(from r: WireReader) throws(WireError) {
            runId = try r.value(1)
            taskId = try r.value(2)
            state = r.value(3)
            queue = try r.value(4)
            entrypoint = try r.value(5)
            tries = r.value(6)
            maxTries = r.value(7)
            readyAtUnixUs = r.value(8)
            nextTryAtUnixUs = r.value(9)
            finishedAtUnixUs = r.value(10)
            waitingReason = try r.value(11)
            attempts = try r.values(12)
            infrastructureAttempts = r.value(13)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, runId)
            try w.set(2, taskId)
            w.set(3, state)
            try w.set(4, queue)
            try w.set(5, entrypoint)
            w.set(6, tries)
            w.set(7, maxTries)
            w.set(8, readyAtUnixUs)
            w.set(9, nextTryAtUnixUs)
            w.set(10, finishedAtUnixUs)
            try w.set(11, waitingReason)
            try w.set(12, attempts)
            w.set(13, infrastructureAttempts)
        }
    }
}

// MARK: - Agents and tokens

extension ControlV1 {
    /// `tether.control.v1.Agent`: an agent as the server sees it.
    public struct Agent: WireMessage {
        /// Server-assigned id, stable for the agent's name.
        public var agentId = ""
        /// Name from its Hello.
        public var name = ""
        /// Build version from its Hello.
        public var version = ""
        /// Its connection state.
        public var state = AgentState.unspecified
        /// Queues it serves.
        public var queues: [String] = []
        /// Its slot count.
        public var slots: UInt32 = 0
        /// Slots not holding a lease.
        public var freeSlots: UInt32 = 0
        /// Its labels.
        public var labels: [String: String] = [:]
        /// Entrypoint names it offers.
        public var entrypoints: [String] = []
        /// Leases it holds.
        public var leaseIds: [String] = []
        /// When its current (or last) session began.
        public var connectedAtUnixUs: Int64 = 0
        /// When its last heartbeat arrived.
        public var lastHeartbeatAtUnixUs: Int64 = 0
        /// The remote address of its connection, "host:port".
        public var peerAddress = ""
        /// Metrics from its heartbeats since the server started.
        public var metrics: [AgentMetric] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__Agent.self, tether__control__v1__agent__init)
        public init(from r: WireReader) throws(WireError) {
            agentId = try r.value(1)
            name = try r.value(2)
            version = try r.value(3)
            state = r.value(4)
            queues = try r.values(5)
            slots = r.value(6)
            freeSlots = r.value(7)
            labels = try r.map(8)
            entrypoints = try r.values(9)
            leaseIds = try r.values(10)
            connectedAtUnixUs = r.value(11)
            lastHeartbeatAtUnixUs = r.value(12)
            peerAddress = try r.value(13)
            metrics = try r.values(14)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agentId)
            try w.set(2, name)
            try w.set(3, version)
            w.set(4, state)
            try w.set(5, queues)
            w.set(6, slots)
            w.set(7, freeSlots)
            try w.set(8, labels)
            try w.set(9, entrypoints)
            try w.set(10, leaseIds)
            w.set(11, connectedAtUnixUs)
            w.set(12, lastHeartbeatAtUnixUs)
            try w.set(13, peerAddress)
            try w.set(14, metrics)
        }
    }

    /// One metric series of an agent, as the server has aggregated it.
    public struct AgentMetric: WireMessage {
        /// Metric name (Prometheus rules).
        public var name = ""
        /// Label pairs of the series.
        public var labels: [String: String] = [:]
        /// The counter's total, or the gauge's latest value.
        public var value: Double = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__AgentMetric.self, tether__control__v1__agent_metric__init)
        public init(from r: WireReader) throws(WireError) {
            name = try r.value(1)
            labels = try r.map(2)
            value = r.value(3)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, name)
            try w.set(2, labels)
            w.set(3, value)
        }
    }

    /// `tether.control.v1.Token`: a bearer token's metadata; the secret is never stored or returned again.
    public struct Token: WireMessage {
        /// Public id (also the secret's prefix).
        public var tokenId = ""
        /// What it may do.
        public var role = TokenRole.unspecified
        /// Free text, e.g. "eu agents".
        public var description = ""
        /// When it was created.
        public var createdAtUnixUs: Int64 = 0
        /// When it stops working; 0 means never.
        public var expiresAtUnixUs: Int64 = 0
        /// When it was revoked; 0 if it was not.
        public var revokedAtUnixUs: Int64 = 0
        /// When it was last used to authenticate.
        public var lastUsedAtUnixUs: Int64 = 0
        /// For an agent token bound to one agent: that agent's name.
        public var agentName = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__Token.self, tether__control__v1__token__init)
        public init(from r: WireReader) throws(WireError) {
            tokenId = try r.value(1)
            role = r.value(2)
            description = try r.value(3)
            createdAtUnixUs = r.value(4)
            expiresAtUnixUs = r.value(5)
            revokedAtUnixUs = r.value(6)
            lastUsedAtUnixUs = r.value(7)
            agentName = try r.value(8)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, tokenId)
            w.set(2, role)
            try w.set(3, description)
            w.set(4, createdAtUnixUs)
            w.set(5, expiresAtUnixUs)
            w.set(6, revokedAtUnixUs)
            w.set(7, lastUsedAtUnixUs)
            try w.set(8, agentName)
        }
    }
}

// MARK: - Every message

extension ControlV1 {
    /// Every message of the package: resources, then requests and responses in service order.
    static let messageTypes: [any WireMessage.Type] = [
        TaskSpec.self, DagSpec.self, Dag.self, DagVersion.self, Run.self,
        TaskAttempt.self, TaskInstance.self, Agent.self, AgentMetric.self, Token.self,
        ApplyDagRequest.self, ApplyDagResponse.self,
        GetDagRequest.self, GetDagResponse.self,
        ListDagsRequest.self, ListDagsResponse.self,
        ListDagVersionsRequest.self, ListDagVersionsResponse.self,
        PauseDagRequest.self, PauseDagResponse.self,
        UnpauseDagRequest.self, UnpauseDagResponse.self,
        TriggerRunRequest.self, TriggerRunResponse.self,
        GetRunRequest.self, GetRunResponse.self,
        ListRunsRequest.self, ListRunsResponse.self,
        CancelRunRequest.self, CancelRunResponse.self,
        CancelTaskInstanceRequest.self, CancelTaskInstanceResponse.self,
        ListAgentsRequest.self, ListAgentsResponse.self,
        DrainAgentRequest.self, DrainAgentResponse.self,
        UndrainAgentRequest.self, UndrainAgentResponse.self,
        CreateTokenRequest.self, CreateTokenResponse.self,
        ListTokensRequest.self, ListTokensResponse.self,
        RevokeTokenRequest.self, RevokeTokenResponse.self,
        WatchEventsRequest.self, WatchEventsResponse.self,
    ]
}
