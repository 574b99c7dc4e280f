internal import TetherProtoC

// The request and response of every `tether.control.v1.ControlService` call, in
// service order. List calls page: `pageSize` 0 means 100, at most 1000; pass
// `nextPageToken` back as `pageToken` until it is empty.

// MARK: - DAGs

extension ControlV1 {
    /// `tether.control.v1.ApplyDagRequest`: ApplyDag input.
    public struct ApplyDagRequest: WireMessage {
        /// The DAG spec in YAML (see docs/dag-format.md).
        public var specYaml = ""
        /// Where the spec came from, used in error messages (e.g. "dags/etl.yaml").
        public var sourceName = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ApplyDagRequest.self, tether__control__v1__apply_dag_request__init)
        public init(from r: WireReader) throws(WireError) {
            specYaml = try r.value(1)
            sourceName = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, specYaml)
            try w.set(2, sourceName)
        }
    }

    /// `tether.control.v1.ApplyDagResponse`: ApplyDag result.
    public struct ApplyDagResponse: WireMessage {
        /// The stored version: the new one, or the existing identical one.
        public var version: DagVersion?
        /// True if this call created a new version; false if the spec was identical.
        public var created = false

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ApplyDagResponse.self, tether__control__v1__apply_dag_response__init)
        public init(from r: WireReader) throws(WireError) {
            version = try r.value(1)
            created = r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, version)
            w.set(2, created)
        }
    }

    /// `tether.control.v1.GetDagRequest`: GetDag input.
    public struct GetDagRequest: WireMessage {
        /// The DAG's id.
        public var dagId = ""
        /// The version to return; 0 means the latest.
        public var version: UInt32 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__GetDagRequest.self, tether__control__v1__get_dag_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            version = r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            w.set(2, version)
        }
    }

    /// `tether.control.v1.GetDagResponse`: GetDag result.
    public struct GetDagResponse: WireMessage {
        /// The DAG.
        public var dag: Dag?
        /// The version asked for.
        public var version: DagVersion?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__GetDagResponse.self, tether__control__v1__get_dag_response__init)
        public init(from r: WireReader) throws(WireError) {
            dag = try r.value(1)
            version = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dag)
            try w.set(2, version)
        }
    }

    /// `tether.control.v1.ListDagsRequest`: ListDags input.
    public struct ListDagsRequest: WireMessage {
        /// Page size; 0 means 100, at most 1000.
        public var pageSize: UInt32 = 0
        /// From a previous response's `nextPageToken`; empty for the first page.
        public var pageToken = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListDagsRequest.self, tether__control__v1__list_dags_request__init)
        public init(from r: WireReader) throws(WireError) {
            pageSize = r.value(1)
            pageToken = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, pageSize)
            try w.set(2, pageToken)
        }
    }

    /// `tether.control.v1.ListDagsResponse`: ListDags result.
    public struct ListDagsResponse: WireMessage {
        /// One page of DAGs, ordered by dag_id.
        public var dags: [Dag] = []
        /// Token for the next page; empty on the last page.
        public var nextPageToken = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListDagsResponse.self, tether__control__v1__list_dags_response__init)
        public init(from r: WireReader) throws(WireError) {
            dags = try r.values(1)
            nextPageToken = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dags)
            try w.set(2, nextPageToken)
        }
    }

    /// `tether.control.v1.ListDagVersionsRequest`: ListDagVersions input.
    public struct ListDagVersionsRequest: WireMessage {
        /// The DAG's id.
        public var dagId = ""
        /// Page size; 0 means 100, at most 1000.
        public var pageSize: UInt32 = 0
        /// From a previous response's `nextPageToken`; empty for the first page.
        public var pageToken = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListDagVersionsRequest.self, tether__control__v1__list_dag_versions_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            pageSize = r.value(2)
            pageToken = try r.value(3)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            w.set(2, pageSize)
            try w.set(3, pageToken)
        }
    }

    /// `tether.control.v1.ListDagVersionsResponse`: ListDagVersions result.
    public struct ListDagVersionsResponse: WireMessage {
        /// One page of versions, newest first.
        public var versions: [DagVersion] = []
        /// Token for the next page; empty on the last page.
        public var nextPageToken = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListDagVersionsResponse.self, tether__control__v1__list_dag_versions_response__init)
        public init(from r: WireReader) throws(WireError) {
            versions = try r.values(1)
            nextPageToken = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, versions)
            try w.set(2, nextPageToken)
        }
    }

    /// `tether.control.v1.PauseDagRequest`: PauseDag input.
    public struct PauseDagRequest: WireMessage {
        /// The DAG's id.
        public var dagId = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__PauseDagRequest.self, tether__control__v1__pause_dag_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
        }
    }

    /// `tether.control.v1.PauseDagResponse`: PauseDag result.
    public struct PauseDagResponse: WireMessage {
        /// The DAG after the change.
        public var dag: Dag?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__PauseDagResponse.self, tether__control__v1__pause_dag_response__init)
        public init(from r: WireReader) throws(WireError) {
            dag = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dag)
        }
    }

    /// `tether.control.v1.UnpauseDagRequest`: UnpauseDag input.
    public struct UnpauseDagRequest: WireMessage {
        /// The DAG's id.
        public var dagId = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__UnpauseDagRequest.self, tether__control__v1__unpause_dag_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
        }
    }

    /// `tether.control.v1.UnpauseDagResponse`: UnpauseDag result.
    public struct UnpauseDagResponse: WireMessage {
        /// The DAG after the change.
        public var dag: Dag?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__UnpauseDagResponse.self, tether__control__v1__unpause_dag_response__init)
        public init(from r: WireReader) throws(WireError) {
            dag = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dag)
        }
    }
}

// MARK: - Runs

extension ControlV1 {
    /// `tether.control.v1.TriggerRunRequest`: TriggerRun input.
    public struct TriggerRunRequest: WireMessage {
        /// The DAG to run (its latest version).
        public var dagId = ""
        /// Parameter overrides; each key must be a DAG or task parameter.
        public var params: [String: String] = [:]
        /// If set, a second TriggerRun with the same key and DAG returns the first run.
        public var idempotencyKey = ""
        /// Free text stored on the run.
        public var note = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__TriggerRunRequest.self, tether__control__v1__trigger_run_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            params = try r.map(2)
            idempotencyKey = try r.value(3)
            note = try r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            try w.set(2, params)
            try w.set(3, idempotencyKey)
            try w.set(4, note)
        }
    }

    /// `tether.control.v1.TriggerRunResponse`: TriggerRun result.
    public struct TriggerRunResponse: WireMessage {
        /// The new (or, for a repeated idempotency key, the existing) run.
        public var run: Run?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__TriggerRunResponse.self, tether__control__v1__trigger_run_response__init)
        public init(from r: WireReader) throws(WireError) {
            run = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, run)
        }
    }

    /// `tether.control.v1.GetRunRequest`: GetRun input.
    public struct GetRunRequest: WireMessage {
        /// The run's id.
        public var runId = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__GetRunRequest.self, tether__control__v1__get_run_request__init)
        public init(from r: WireReader) throws(WireError) {
            runId = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, runId)
        }
    }

    /// `tether.control.v1.GetRunResponse`: GetRun result.
    public struct GetRunResponse: WireMessage {
        /// The run.
        public var run: Run?
        /// Its task instances, in the DAG's task order.
        public var taskInstances: [TaskInstance] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__GetRunResponse.self, tether__control__v1__get_run_response__init)
        public init(from r: WireReader) throws(WireError) {
            run = try r.value(1)
            taskInstances = try r.values(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, run)
            try w.set(2, taskInstances)
        }
    }

    /// `tether.control.v1.ListRunsRequest`: ListRuns input.
    public struct ListRunsRequest: WireMessage {
        /// Only runs of this DAG; empty for all.
        public var dagId = ""
        /// Only runs in these states; empty for all.
        public var states: [RunState] = []
        /// Page size; 0 means 100, at most 1000.
        public var pageSize: UInt32 = 0
        /// From a previous response's `nextPageToken`; empty for the first page.
        public var pageToken = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListRunsRequest.self, tether__control__v1__list_runs_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            states = r.values(2)
            pageSize = r.value(3)
            pageToken = try r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            try w.set(2, states)
            w.set(3, pageSize)
            try w.set(4, pageToken)
        }
    }

    /// `tether.control.v1.ListRunsResponse`: ListRuns result.
    public struct ListRunsResponse: WireMessage {
        /// One page of runs, newest first.
        public var runs: [Run] = []
        /// Token for the next page; empty on the last page.
        public var nextPageToken = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListRunsResponse.self, tether__control__v1__list_runs_response__init)
        public init(from r: WireReader) throws(WireError) {
            runs = try r.values(1)
            nextPageToken = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, runs)
            try w.set(2, nextPageToken)
        }
    }

    /// `tether.control.v1.CancelRunRequest`: CancelRun input.
    public struct CancelRunRequest: WireMessage {
        /// The run's id.
        public var runId = ""
        /// Stored on the run as its note.
        public var reason = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__CancelRunRequest.self, tether__control__v1__cancel_run_request__init)
        public init(from r: WireReader) throws(WireError) {
            runId = try r.value(1)
            reason = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, runId)
            try w.set(2, reason)
        }
    }

    /// `tether.control.v1.CancelRunResponse`: CancelRun result.
    public struct CancelRunResponse: WireMessage {
        /// The run after the change.
        public var run: Run?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__CancelRunResponse.self, tether__control__v1__cancel_run_response__init)
        public init(from r: WireReader) throws(WireError) {
            run = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, run)
        }
    }

    /// `tether.control.v1.CancelTaskInstanceRequest`: CancelTaskInstance input.
    public struct CancelTaskInstanceRequest: WireMessage {
        /// The run's id.
        public var runId = ""
        /// The task's id.
        public var taskId = ""
        /// Stored on the attempt as its message.
        public var reason = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__CancelTaskInstanceRequest.self, tether__control__v1__cancel_task_instance_request__init)
        public init(from r: WireReader) throws(WireError) {
            runId = try r.value(1)
            taskId = try r.value(2)
            reason = try r.value(3)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, runId)
            try w.set(2, taskId)
            try w.set(3, reason)
        }
    }

    /// `tether.control.v1.CancelTaskInstanceResponse`: CancelTaskInstance result.
    public struct CancelTaskInstanceResponse: WireMessage {
        /// The task instance after the change.
        public var taskInstance: TaskInstance?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__CancelTaskInstanceResponse.self, tether__control__v1__cancel_task_instance_response__init)
        public init(from r: WireReader) throws(WireError) {
            taskInstance = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, taskInstance)
        }
    }
}

// MARK: - Agents

extension ControlV1 {
    /// `tether.control.v1.ListAgentsRequest`: ListAgents input.
    public struct ListAgentsRequest: WireMessage {
        /// Only agents serving this queue; empty for all.
        public var queue = ""
        /// Include disconnected agents.
        public var includeDisconnected = false

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListAgentsRequest.self, tether__control__v1__list_agents_request__init)
        public init(from r: WireReader) throws(WireError) {
            queue = try r.value(1)
            includeDisconnected = r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, queue)
            w.set(2, includeDisconnected)
        }
    }

    /// `tether.control.v1.ListAgentsResponse`: ListAgents result.
    public struct ListAgentsResponse: WireMessage {
        /// The agents, ordered by name.
        public var agents: [Agent] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListAgentsResponse.self, tether__control__v1__list_agents_response__init)
        public init(from r: WireReader) throws(WireError) {
            agents = try r.values(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agents)
        }
    }

    /// `tether.control.v1.DrainAgentRequest`: DrainAgent input.
    public struct DrainAgentRequest: WireMessage {
        /// The agent's id or name.
        public var agent = ""
        /// Sent to the agent in its Drain message.
        public var reason = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__DrainAgentRequest.self, tether__control__v1__drain_agent_request__init)
        public init(from r: WireReader) throws(WireError) {
            agent = try r.value(1)
            reason = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agent)
            try w.set(2, reason)
        }
    }

    /// `tether.control.v1.DrainAgentResponse`: DrainAgent result.
    public struct DrainAgentResponse: WireMessage {
        /// The agent after the change.
        public var agent: Agent?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__DrainAgentResponse.self, tether__control__v1__drain_agent_response__init)
        public init(from r: WireReader) throws(WireError) {
            agent = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agent)
        }
    }

    /// `tether.control.v1.UndrainAgentRequest`: UndrainAgent input.
    public struct UndrainAgentRequest: WireMessage {
        /// The agent's id or name.
        public var agent = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__UndrainAgentRequest.self, tether__control__v1__undrain_agent_request__init)
        public init(from r: WireReader) throws(WireError) {
            agent = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agent)
        }
    }

    /// `tether.control.v1.UndrainAgentResponse`: UndrainAgent result.
    public struct UndrainAgentResponse: WireMessage {
        /// The agent after the change.
        public var agent: Agent?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__UndrainAgentResponse.self, tether__control__v1__undrain_agent_response__init)
        public init(from r: WireReader) throws(WireError) {
            agent = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, agent)
        }
    }
}

// MARK: - Tokens

extension ControlV1 {
    /// `tether.control.v1.CreateTokenRequest`: CreateToken input.
    public struct CreateTokenRequest: WireMessage {
        /// What the token may do; required.
        public var role = TokenRole.unspecified
        /// Free text, e.g. "eu agents".
        public var description = ""
        /// Lifetime; 0 means it never expires; over 10 years is clamped to 10 years.
        public var ttlMs: UInt64 = 0
        /// For an agent token: the only agent name it may connect as; empty allows any.
        public var agentName = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__CreateTokenRequest.self, tether__control__v1__create_token_request__init)
        public init(from r: WireReader) throws(WireError) {
            role = r.value(1)
            description = try r.value(2)
            ttlMs = r.value(3)
            agentName = try r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, role)
            try w.set(2, description)
            w.set(3, ttlMs)
            try w.set(4, agentName)
        }
    }

    /// `tether.control.v1.CreateTokenResponse`: CreateToken result.
    public struct CreateTokenResponse: WireMessage {
        /// The token's metadata.
        public var token: Token?
        /// The bearer secret. Shown only here; store it now.
        public var secret = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__CreateTokenResponse.self, tether__control__v1__create_token_response__init)
        public init(from r: WireReader) throws(WireError) {
            token = try r.value(1)
            secret = try r.value(2)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, token)
            try w.set(2, secret)
        }
    }

    /// `tether.control.v1.ListTokensRequest`: ListTokens input.
    public struct ListTokensRequest: WireMessage {
        /// Include revoked and expired tokens.
        public var includeInactive = false

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListTokensRequest.self, tether__control__v1__list_tokens_request__init)
        public init(from r: WireReader) throws(WireError) {
            includeInactive = r.value(1)
        }
        public func write(to w: WireWriter) {
            w.set(1, includeInactive)
        }
    }

    /// `tether.control.v1.ListTokensResponse`: ListTokens result.
    public struct ListTokensResponse: WireMessage {
        /// The tokens, oldest first.
        public var tokens: [Token] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__ListTokensResponse.self, tether__control__v1__list_tokens_response__init)
        public init(from r: WireReader) throws(WireError) {
            tokens = try r.values(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, tokens)
        }
    }

    /// `tether.control.v1.RevokeTokenRequest`: RevokeToken input.
    public struct RevokeTokenRequest: WireMessage {
        /// The token's id.
        public var tokenId = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__RevokeTokenRequest.self, tether__control__v1__revoke_token_request__init)
        public init(from r: WireReader) throws(WireError) {
            tokenId = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, tokenId)
        }
    }

    /// `tether.control.v1.RevokeTokenResponse`: RevokeToken result.
    public struct RevokeTokenResponse: WireMessage {
        /// The token after the change.
        public var token: Token?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__RevokeTokenResponse.self, tether__control__v1__revoke_token_response__init)
        public init(from r: WireReader) throws(WireError) {
            token = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, token)
        }
    }
}

// MARK: - Events

extension ControlV1 {
    /// `tether.control.v1.WatchEventsRequest`: WatchEvents input; filters combine with AND.
    public struct WatchEventsRequest: WireMessage {
        /// Only events about this DAG (its runs and task instances too); empty for all.
        public var dagId = ""
        /// Only events about this run and its task instances; empty for all.
        public var runId = ""
        /// Include agent events.
        public var includeAgents = false
        /// Replay events after this cursor first; 0 streams only new events. Too old: OUT_OF_RANGE.
        public var afterCursor: UInt64 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__WatchEventsRequest.self, tether__control__v1__watch_events_request__init)
        public init(from r: WireReader) throws(WireError) {
            dagId = try r.value(1)
            runId = try r.value(2)
            includeAgents = r.value(3)
            afterCursor = r.value(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, dagId)
            try w.set(2, runId)
            w.set(3, includeAgents)
            w.set(4, afterCursor)
        }
    }

    /// `tether.control.v1.WatchEventsResponse`: one change, streamed as it commits.
    public struct WatchEventsResponse: WireMessage {
        /// The changed resource, as it is after the change (`oneof subject`).
        public enum Subject: Equatable, Sendable {
            /// A DAG was applied, paused or unpaused.
            case dag(Dag)
            /// A run changed state.
            case run(Run)
            /// A task instance changed state or got an attempt.
            case taskInstance(TaskInstance)
            /// An agent connected, drained or disconnected.
            case agent(Agent)
        }

        /// Position in the server's event log; pass it as `afterCursor` to resume.
        public var cursor: UInt64 = 0
        /// When the change committed.
        public var committedAtUnixUs: Int64 = 0
        /// The changed resource; exactly one is set by the server.
        public var subject: Subject?

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Control__V1__WatchEventsResponse.self, tether__control__v1__watch_events_response__init)
        public init(from r: WireReader) throws(WireError) {
            cursor = r.value(1)
            committedAtUnixUs = r.value(2)
            if r.has(3), let dag: Dag = try r.value(3) {
                subject = .dag(dag)
            } else if r.has(4), let run: Run = try r.value(4) {
                subject = .run(run)
            } else if r.has(5), let taskInstance: TaskInstance = try r.value(5) {
                subject = .taskInstance(taskInstance)
            } else if r.has(6), let agent: Agent = try r.value(6) {
                subject = .agent(agent)
            }
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, cursor)
            w.set(2, committedAtUnixUs)
            switch subject {
            case .dag(let dag)?: try w.set(3, dag)
            case .run(let run)?: try w.set(4, run)
            case .taskInstance(let taskInstance)?: try w.set(5, taskInstance)
            case .agent(let agent)?: try w.set(6, agent)
            case nil: break
            }
        }
    }
}
