@testable import TetherWire

extension Fixtures {
    /// Every `tether.control.v1` message at least once with every field set (one
    /// instance per oneof member), then a few with extreme or empty values.
    static let controlV1: [any WireMessage] = Control.populated + Control.extreme

    /// Builders for the `tether.control.v1` fixtures.
    enum Control {
        static let unicode = "ünïcødé-日本-🚀"
        static let params = ["retries": "3", "": "empty-key", unicode: unicode]

        /// Every message with every field set to a non-default value; a message
        /// with a oneof once per member.
        static var populated: [any WireMessage] {
            [
                taskSpec, dagSpec, dag, dagVersion, run,
                taskAttemptWithExitCode, taskAttemptWithSignal, taskInstance, agent, agentMetric, token,
                applyDagRequest, applyDagResponse, getDagRequest, getDagResponse,
                listDagsRequest, listDagsResponse, listDagVersionsRequest, listDagVersionsResponse,
                pauseDagRequest, pauseDagResponse, unpauseDagRequest, unpauseDagResponse,
                deleteDagRequest, deleteDagResponse, callback,
                triggerRunRequest, triggerRunResponse, getRunRequest, getRunResponse,
                listRunsRequest, listRunsResponse, cancelRunRequest, cancelRunResponse,
                cancelTaskInstanceRequest, cancelTaskInstanceResponse, clearRunRequest, clearRunResponse,
                pool, setPoolRequest, setPoolResponse, deletePoolRequest, ControlV1.DeletePoolResponse(),
                ControlV1.ListPoolsRequest(), listPoolsResponse, backfillRequest, backfillResponse,
                listAgentsRequest, listAgentsResponse, drainAgentRequest, drainAgentResponse,
                undrainAgentRequest, undrainAgentResponse, forgetAgentRequest, forgetAgentResponse,
                createTokenRequest, createTokenResponse, listTokensRequest, listTokensResponse,
                revokeTokenRequest, revokeTokenResponse, auditEntry, listAuditEntriesRequest, listAuditEntriesResponse,
                watchEventsRequest, watchEvent(.dag(dag)), watchEvent(.run(run)),
                watchEvent(.taskInstance(taskInstance)), watchEvent(.agent(agentInOneof)),
            ]
        }

        /// Limits of the integer types, empty strings, lists and maps, empty sub-messages.
        static var extreme: [any WireMessage] {
            [
                extremeTaskSpec, extremeDag, extremeRun, extremeTaskAttempt, extremeToken,
                extremeListRunsRequest, extremeGetRunResponse, extremeCreateTokenRequest,
                extremeWatchEvent,
            ]
        }

        // MARK: Resources

        static var taskSpec: ControlV1.TaskSpec {
            var m = ControlV1.TaskSpec()
            m.taskID = "extract.\(unicode)"
            m.entrypoint = "extract"
            m.queue = "gpu"
            m.dependsOn = ["fetch", "unpack", unicode]
            m.triggerRule = .noneFailed
            m.retries = 3
            m.retryDelayMs = 30_000
            m.retryExponentialBackoff = true
            m.maxRetryDelayMs = 600_000
            m.executionTimeoutMs = 3_600_000
            m.priority = -7
            m.params = params
            m.pool = "warehouse"
            m.poolSlots = 2
            m.queueTimeoutMs = 600_000
            m.onSuccess = "notify_ok"
            m.onFailure = "page-\(unicode)"
            m.onRetry = "log_retry"
            return m
        }

        static var dagSpec: ControlV1.DagSpec {
            var load = taskSpec
            load.taskID = "load"
            load.triggerRule = .allDone
            var train = taskSpec
            train.taskID = "train"
            train.triggerRule = .oneFailed
            var m = ControlV1.DagSpec()
            m.dagID = "etl"
            m.description = "nightly \(unicode)"
            m.schedule = "@daily"
            m.paused = true
            m.catchup = true
            m.runTimeoutMs = 3_600_000
            m.maxActiveRuns = 2
            m.maxActiveTasks = 16
            m.params = params
            m.tasks = [taskSpec, load, train]
            m.onSuccess = "celebrate"
            m.onFailure = "page"
            m.onDeadlineMiss = "late-\(unicode)"
            m.deadline = "06:00"
            m.callbackQueue = "alerts"
            return m
        }

        static var dag: ControlV1.Dag {
            var m = ControlV1.Dag()
            m.dagID = "etl-\(unicode)"
            m.description = "nightly \(unicode)"
            m.schedule = "0 3 * * *"
            m.paused = true
            m.latestVersion = 4
            m.nextRunAtUnixUs = 1_764_126_000_000_000
            m.createdAtUnixUs = 1_700_000_000_000_000
            m.updatedAtUnixUs = 1_764_075_600_000_000
            m.activeRuns = 1
            m.deleted = true
            return m
        }

        static var dagVersion: ControlV1.DagVersion {
            var m = ControlV1.DagVersion()
            m.dagID = "etl"
            m.version = 4
            m.contentHash = String(repeating: "ab", count: 32)
            m.createdAtUnixUs = 1_764_075_600_000_000
            m.spec = dagSpec
            m.specYaml = "dag_id: etl\ndescription: \(unicode)\n"
            return m
        }

        static var run: ControlV1.Run {
            var m = ControlV1.Run()
            m.runID = "r-0193-\(unicode)"
            m.dagID = "etl"
            m.dagVersion = 4
            m.state = .running
            m.trigger = .schedule
            m.logicalTimeUnixUs = 1_764_039_600_000_000
            m.createdAtUnixUs = 1_764_039_600_000_001
            m.startedAtUnixUs = 1_764_039_600_000_002
            m.finishedAtUnixUs = 1_764_043_200_000_000
            m.params = params
            m.note = "cancelled by \(unicode)"
            m.taskCounts = ["success": 3, "": UInt32.max, unicode: 1]
            m.dataIntervalStartUnixUs = 1_763_953_200_000_000
            m.dataIntervalEndUnixUs = 1_764_039_600_000_000
            m.idempotencyKey = "nightly-\(unicode)"
            m.waitReason = "DAG 'etl' is paused; the run starts when it is unpaused"
            m.deadlineAtUnixUs = 1_764_061_200_000_000
            m.deadlineMissedAtUnixUs = 1_764_061_200_000_001
            m.backfillID = "etl-17"
            return m
        }

        static var taskAttemptWithExitCode: ControlV1.TaskAttempt {
            var m = ControlV1.TaskAttempt()
            m.attempt = 2
            m.leaseID = "l-\(unicode)"
            m.epoch = 17
            m.agentID = "a-1"
            m.agentName = "eu-gpu-\(unicode)"
            m.outcome = .failed
            m.exit = .exitCode(3)
            m.grantedAtUnixUs = 1_764_039_600_000_000
            m.startedAtUnixUs = 1_764_039_600_100_000
            m.finishedAtUnixUs = 1_764_039_660_000_000
            m.userCpuMs = 58_000
            m.systemCpuMs = 1_200
            m.maxRssKib = 2_097_152
            m.message = "exit 3: \(unicode)"
            return m
        }

        static var taskAttemptWithSignal: ControlV1.TaskAttempt {
            var m = taskAttemptWithExitCode
            m.outcome = .timedOut
            m.exit = .signal(9)
            return m
        }

        static var taskInstance: ControlV1.TaskInstance {
            var first = taskAttemptWithExitCode
            first.attempt = 1
            var running = taskAttemptWithSignal
            running.attempt = 3
            running.outcome = .running
            var m = ControlV1.TaskInstance()
            m.runID = "r-0193"
            m.taskID = "train-\(unicode)"
            m.state = .upForRetry
            m.queue = "gpu"
            m.entrypoint = "train"
            m.tries = 3
            m.maxTries = 4
            m.infrastructureAttempts = 2
            m.reason = "queued for its queue_timeout of 10m without starting"
            m.readyAtUnixUs = 1_764_039_600_000_000
            m.nextTryAtUnixUs = 1_764_039_690_000_000
            m.finishedAtUnixUs = 1_764_039_700_000_000
            m.waitingReason = "no connected agent on queue 'gpu' offers entrypoint '\(unicode)'"
            m.attempts = [first, taskAttemptWithSignal, running]
            return m
        }

        static var agent: ControlV1.Agent {
            var m = ControlV1.Agent()
            m.agentID = "a-1"
            m.name = "eu-gpu-\(unicode)"
            m.version = "0.1.0"
            m.state = .draining
            m.queues = ["default", "gpu", unicode]
            m.slots = 8
            m.freeSlots = 5
            m.labels = ["region": "eu-west", "": "empty-key", unicode: unicode]
            m.entrypoints = ["extract", "train", unicode]
            m.leaseIds = ["l-1", "l-2", unicode]
            m.connectedAtUnixUs = 1_764_000_000_000_000
            m.lastHeartbeatAtUnixUs = 1_764_039_600_000_000
            m.peerAddress = "[2001:db8::1]:50443"
            m.metrics = [agentMetric, agentMetric]
            m.lastSeenAtUnixUs = 1_764_039_600_000_001
            m.disconnectReason = .serverStopped
            m.disconnectDetail = "server shutting down \(unicode)"
            return m
        }

        /// `agent` without metrics, for the WatchEvents oneof. Swift packs the oneof's case
        /// into spare bits of the payload's last pointer (`metrics`' buffer), where
        /// LeakSanitizer no longer recognises it and reports the buffer as leaked.
        static var agentInOneof: ControlV1.Agent {
            var m = agent
            m.metrics = []
            return m
        }

        static var agentMetric: ControlV1.AgentMetric {
            var m = ControlV1.AgentMetric()
            m.name = "tether_agent_tasks_finished_total"
            m.labels = ["outcome": "succeeded", unicode: unicode]
            m.value = 12.5
            return m
        }

        static var token: ControlV1.Token {
            var m = ControlV1.Token()
            m.tokenID = "tt_4f2a"
            m.role = .agent
            m.description = "eu agents \(unicode)"
            m.createdAtUnixUs = 1_700_000_000_000_000
            m.expiresAtUnixUs = 1_800_000_000_000_000
            m.revokedAtUnixUs = 1_764_000_000_000_000
            m.lastUsedAtUnixUs = 1_763_999_999_000_000
            m.agentName = "eu-gpu-\(unicode)"
            return m
        }

        // MARK: Requests and responses

        static var applyDagRequest: ControlV1.ApplyDagRequest {
            var m = ControlV1.ApplyDagRequest()
            m.specYaml = dagVersion.specYaml
            m.sourceName = "dags/\(unicode).yaml"
            return m
        }

        static var applyDagResponse: ControlV1.ApplyDagResponse {
            var m = ControlV1.ApplyDagResponse()
            m.version = dagVersion
            m.created = true
            return m
        }

        static var getDagRequest: ControlV1.GetDagRequest {
            var m = ControlV1.GetDagRequest()
            m.dagID = unicode
            m.version = 3
            return m
        }

        static var getDagResponse: ControlV1.GetDagResponse {
            var m = ControlV1.GetDagResponse()
            m.dag = dag
            m.version = dagVersion
            return m
        }

        static var listDagsRequest: ControlV1.ListDagsRequest {
            var m = ControlV1.ListDagsRequest()
            m.pageSize = 1000
            m.pageToken = "p-\(unicode)"
            return m
        }

        static var listDagsResponse: ControlV1.ListDagsResponse {
            var second = dag
            second.dagID = "reports"
            var third = dag
            third.dagID = unicode
            third.paused = false
            var m = ControlV1.ListDagsResponse()
            m.dags = [dag, second, third]
            m.nextPageToken = "n-\(unicode)"
            return m
        }

        static var listDagVersionsRequest: ControlV1.ListDagVersionsRequest {
            var m = ControlV1.ListDagVersionsRequest()
            m.dagID = "etl"
            m.pageSize = 25
            m.pageToken = "p-\(unicode)"
            return m
        }

        static var listDagVersionsResponse: ControlV1.ListDagVersionsResponse {
            var v3 = dagVersion
            v3.version = 3
            var v2 = dagVersion
            v2.version = 2
            var m = ControlV1.ListDagVersionsResponse()
            m.versions = [dagVersion, v3, v2]
            m.nextPageToken = "n-\(unicode)"
            return m
        }

        static var pauseDagRequest: ControlV1.PauseDagRequest {
            var m = ControlV1.PauseDagRequest()
            m.dagID = unicode
            return m
        }

        static var pauseDagResponse: ControlV1.PauseDagResponse {
            var m = ControlV1.PauseDagResponse()
            m.dag = dag
            return m
        }

        static var deleteDagRequest: ControlV1.DeleteDagRequest {
            var m = ControlV1.DeleteDagRequest()
            m.dagID = unicode
            m.cancelRuns = true
            return m
        }

        static var deleteDagResponse: ControlV1.DeleteDagResponse {
            var m = ControlV1.DeleteDagResponse()
            m.cancelledRunIds = ["etl-3", unicode]
            return m
        }

        static var callback: ControlV1.Callback {
            var m = ControlV1.Callback()
            m.runID = "etl-3"
            m.callbackID = "on_failure.2"
            m.kind = .onFailure
            m.taskID = "load-\(unicode)"
            m.entrypoint = "notify"
            m.queue = "alerts"
            m.state = .failed
            m.params = params
            m.createdAtUnixUs = 1_764_061_200_000_000
            m.finishedAtUnixUs = 1_764_061_201_000_000
            m.reason = "exit code 1 \(unicode)"
            m.attempts = [taskAttemptWithExitCode]
            return m
        }

        static var unpauseDagRequest: ControlV1.UnpauseDagRequest {
            var m = ControlV1.UnpauseDagRequest()
            m.dagID = unicode
            return m
        }

        static var unpauseDagResponse: ControlV1.UnpauseDagResponse {
            var m = ControlV1.UnpauseDagResponse()
            m.dag = dag
            return m
        }

        static var triggerRunRequest: ControlV1.TriggerRunRequest {
            var m = ControlV1.TriggerRunRequest()
            m.dagID = "etl"
            m.params = params
            m.idempotencyKey = "k-\(unicode)"
            m.note = "backfill \(unicode)"
            m.logicalTimeUnixUs = 1_764_028_800_000_000
            return m
        }

        static var triggerRunResponse: ControlV1.TriggerRunResponse {
            var m = ControlV1.TriggerRunResponse()
            m.run = run
            m.existing = true
            return m
        }

        static var getRunRequest: ControlV1.GetRunRequest {
            var m = ControlV1.GetRunRequest()
            m.runID = "r-\(unicode)"
            return m
        }

        static var getRunResponse: ControlV1.GetRunResponse {
            var load = taskInstance
            load.taskID = "load"
            load.state = .scheduled
            var report = taskInstance
            report.taskID = unicode
            report.state = .upstreamFailed
            var m = ControlV1.GetRunResponse()
            m.run = run
            m.taskInstances = [taskInstance, load, report]
            var retry = callback
            retry.callbackID = "on_retry.1"
            retry.kind = .onRetry
            m.callbacks = [callback, retry]
            return m
        }

        static var listRunsRequest: ControlV1.ListRunsRequest {
            var m = ControlV1.ListRunsRequest()
            m.dagID = unicode
            m.states = [.queued, .failed, .cancelled]
            m.pageSize = 50
            m.pageToken = "p-\(unicode)"
            return m
        }

        static var listRunsResponse: ControlV1.ListRunsResponse {
            var queued = run
            queued.runID = "r-2"
            queued.state = .queued
            var manual = run
            manual.runID = unicode
            manual.trigger = .manual
            manual.state = .success
            var m = ControlV1.ListRunsResponse()
            m.runs = [run, queued, manual]
            m.nextPageToken = "n-\(unicode)"
            return m
        }

        static var cancelRunRequest: ControlV1.CancelRunRequest {
            var m = ControlV1.CancelRunRequest()
            m.runID = "r-1"
            m.reason = "wrong params \(unicode)"
            return m
        }

        static var cancelRunResponse: ControlV1.CancelRunResponse {
            var m = ControlV1.CancelRunResponse()
            m.run = run
            m.run?.state = .cancelled
            return m
        }

        static var cancelTaskInstanceRequest: ControlV1.CancelTaskInstanceRequest {
            var m = ControlV1.CancelTaskInstanceRequest()
            m.runID = "r-1"
            m.taskID = "train"
            m.reason = "stuck \(unicode)"
            return m
        }

        static var cancelTaskInstanceResponse: ControlV1.CancelTaskInstanceResponse {
            var m = ControlV1.CancelTaskInstanceResponse()
            m.taskInstance = taskInstance
            m.taskInstance?.state = .cancelled
            return m
        }

        static var pool: ControlV1.Pool {
            var m = ControlV1.Pool()
            m.name = "warehouse.\(unicode)"
            m.slots = 4
            m.used = 3
            m.waiting = UInt32.max
            m.updatedAtUnixUs = 1_764_039_600_000_000
            return m
        }

        static var setPoolRequest: ControlV1.SetPoolRequest {
            var m = ControlV1.SetPoolRequest()
            m.name = "warehouse"
            m.slots = 100_000
            return m
        }

        static var setPoolResponse: ControlV1.SetPoolResponse {
            var m = ControlV1.SetPoolResponse()
            m.pool = pool
            return m
        }

        static var deletePoolRequest: ControlV1.DeletePoolRequest {
            var m = ControlV1.DeletePoolRequest()
            m.name = "warehouse"
            return m
        }

        static var listPoolsResponse: ControlV1.ListPoolsResponse {
            var m = ControlV1.ListPoolsResponse()
            m.pools = [pool, setPoolResponse.pool!]
            return m
        }

        static var backfillRequest: ControlV1.BackfillRequest {
            var m = ControlV1.BackfillRequest()
            m.dagID = "etl"
            m.fromUnixUs = 1_764_028_800_000_000
            m.toUnixUs = 1_764_633_600_000_000
            m.rerunFailed = true
            m.maxActiveRuns = 2
            return m
        }

        static var backfillResponse: ControlV1.BackfillResponse {
            var m = ControlV1.BackfillResponse()
            var backfilled = run
            backfilled.trigger = .backfill
            m.runs = [run, backfilled]
            m.created = 1
            m.rerunRunIds = [run.runID]
            m.throughUnixUs = 1_764_633_600_000_000
            return m
        }

        static var clearRunRequest: ControlV1.ClearRunRequest {
            var m = ControlV1.ClearRunRequest()
            m.runID = "r-\(unicode)"
            m.taskIds = ["extract", unicode]
            m.downstream = true
            m.failedOnly = true
            return m
        }

        static var clearRunResponse: ControlV1.ClearRunResponse {
            var m = ControlV1.ClearRunResponse()
            m.run = run
            m.clearedTaskIds = ["extract", "load"]
            return m
        }

        static var listAgentsRequest: ControlV1.ListAgentsRequest {
            var m = ControlV1.ListAgentsRequest()
            m.queue = unicode
            m.includeDisconnected = true
            return m
        }

        static var listAgentsResponse: ControlV1.ListAgentsResponse {
            var connected = agent
            connected.name = "eu-cpu-1"
            connected.state = .connected
            var gone = agent
            gone.name = unicode
            gone.state = .disconnected
            var m = ControlV1.ListAgentsResponse()
            m.agents = [agent, connected, gone]
            return m
        }

        static var drainAgentRequest: ControlV1.DrainAgentRequest {
            var m = ControlV1.DrainAgentRequest()
            m.agent = "eu-gpu-1"
            m.reason = "kernel upgrade \(unicode)"
            return m
        }

        static var drainAgentResponse: ControlV1.DrainAgentResponse {
            var m = ControlV1.DrainAgentResponse()
            m.agent = agent
            return m
        }

        static var undrainAgentRequest: ControlV1.UndrainAgentRequest {
            var m = ControlV1.UndrainAgentRequest()
            m.agent = unicode
            return m
        }

        static var undrainAgentResponse: ControlV1.UndrainAgentResponse {
            var m = ControlV1.UndrainAgentResponse()
            m.agent = agent
            m.agent?.state = .connected
            return m
        }

        static var forgetAgentRequest: ControlV1.ForgetAgentRequest {
            var m = ControlV1.ForgetAgentRequest()
            m.agent = unicode
            return m
        }

        static var forgetAgentResponse: ControlV1.ForgetAgentResponse {
            var m = ControlV1.ForgetAgentResponse()
            m.agent = agent
            m.agent?.state = .disconnected
            return m
        }

        static var createTokenRequest: ControlV1.CreateTokenRequest {
            var m = ControlV1.CreateTokenRequest()
            m.role = .admin
            m.description = "ci \(unicode)"
            m.ttlMs = 86_400_000
            m.agentName = "eu-gpu-1"
            return m
        }

        static var createTokenResponse: ControlV1.CreateTokenResponse {
            var m = ControlV1.CreateTokenResponse()
            m.token = token
            m.secret = "tt_4f2a.\(unicode)"
            return m
        }

        static var listTokensRequest: ControlV1.ListTokensRequest {
            var m = ControlV1.ListTokensRequest()
            m.includeInactive = true
            return m
        }

        static var listTokensResponse: ControlV1.ListTokensResponse {
            var admin = token
            admin.tokenID = "tt_0001"
            admin.role = .admin
            var other = token
            other.tokenID = unicode
            var m = ControlV1.ListTokensResponse()
            m.tokens = [token, admin, other]
            return m
        }

        static var revokeTokenRequest: ControlV1.RevokeTokenRequest {
            var m = ControlV1.RevokeTokenRequest()
            m.tokenID = unicode
            return m
        }

        static var revokeTokenResponse: ControlV1.RevokeTokenResponse {
            var m = ControlV1.RevokeTokenResponse()
            m.token = token
            return m
        }

        static var auditEntry: ControlV1.AuditEntry {
            var m = ControlV1.AuditEntry()
            m.id = 18_446_744_073_709_551_615
            m.atUnixUs = 1_764_000_000_123_000
            m.tokenID = "tt_4f2a"
            m.tokenDescription = "on call \(unicode)"
            m.role = .operator
            m.method = "TriggerRun"
            m.target = "dag:nightly_etl"
            m.summary = "params date, note \"\(unicode)\""
            m.peer = "[::1]:50412"
            m.surface = "grpc"
            m.statusCode = 7
            m.statusMessage = "a viewer token may not call TriggerRun"
            return m
        }

        static var listAuditEntriesRequest: ControlV1.ListAuditEntriesRequest {
            var m = ControlV1.ListAuditEntriesRequest()
            m.sinceUnixUs = 1_764_000_000_000_000
            m.tokenID = "tt_4f2a"
            m.method = "CreateToken"
            m.pageSize = 1_000
            m.pageToken = "42"
            return m
        }

        static var listAuditEntriesResponse: ControlV1.ListAuditEntriesResponse {
            var viewer = auditEntry
            viewer.role = .viewer
            viewer.surface = "dashboard"
            var m = ControlV1.ListAuditEntriesResponse()
            m.entries = [auditEntry, viewer]
            m.nextPageToken = "41"
            return m
        }

        static var watchEventsRequest: ControlV1.WatchEventsRequest {
            var m = ControlV1.WatchEventsRequest()
            m.dagID = "etl"
            m.runID = unicode
            m.includeAgents = true
            m.afterCursor = 123_456
            return m
        }

        static func watchEvent(_ subject: ControlV1.WatchEventsResponse.Subject) -> ControlV1.WatchEventsResponse {
            var m = ControlV1.WatchEventsResponse()
            m.cursor = 123_457
            m.committedAtUnixUs = 1_764_039_600_000_000
            m.subject = subject
            return m
        }

        // MARK: Extreme values

        static var extremeTaskSpec: ControlV1.TaskSpec {
            var m = ControlV1.TaskSpec()
            m.triggerRule = .allFailed
            m.retries = .max
            m.retryDelayMs = .max
            m.retryExponentialBackoff = true
            m.maxRetryDelayMs = .max
            m.executionTimeoutMs = .max
            m.priority = .min
            return m
        }

        static var extremeDag: ControlV1.Dag {
            var m = ControlV1.Dag()
            m.latestVersion = .max
            m.nextRunAtUnixUs = .max
            m.createdAtUnixUs = .min
            m.updatedAtUnixUs = -1
            m.activeRuns = .max
            return m
        }

        static var extremeRun: ControlV1.Run {
            var m = ControlV1.Run()
            m.dagVersion = .max
            m.state = .failed
            m.logicalTimeUnixUs = .min
            m.createdAtUnixUs = .max
            m.startedAtUnixUs = .min
            m.finishedAtUnixUs = .max
            m.taskCounts = ["": 0, "failed": .max]
            m.dataIntervalStartUnixUs = .min
            m.dataIntervalEndUnixUs = .max
            return m
        }

        static var extremeTaskAttempt: ControlV1.TaskAttempt {
            var m = ControlV1.TaskAttempt()
            m.attempt = .max
            m.epoch = .max
            m.outcome = .rejected
            m.exit = .exitCode(.min)
            m.grantedAtUnixUs = .min
            m.startedAtUnixUs = .max
            m.finishedAtUnixUs = .min
            m.userCpuMs = .max
            m.systemCpuMs = .max
            m.maxRssKib = .max
            return m
        }

        static var extremeToken: ControlV1.Token {
            var m = ControlV1.Token()
            m.role = .admin
            m.createdAtUnixUs = .min
            m.expiresAtUnixUs = .max
            m.revokedAtUnixUs = .min
            m.lastUsedAtUnixUs = .max
            return m
        }

        static var extremeListRunsRequest: ControlV1.ListRunsRequest {
            var m = ControlV1.ListRunsRequest()
            m.pageSize = .max
            return m
        }

        static var extremeGetRunResponse: ControlV1.GetRunResponse {
            var m = ControlV1.GetRunResponse()
            m.run = ControlV1.Run()
            return m
        }

        static var extremeCreateTokenRequest: ControlV1.CreateTokenRequest {
            var m = ControlV1.CreateTokenRequest()
            m.role = .agent
            m.ttlMs = .max
            return m
        }

        static var extremeWatchEvent: ControlV1.WatchEventsResponse {
            var m = ControlV1.WatchEventsResponse()
            m.cursor = .max
            m.committedAtUnixUs = .min
            m.subject = .agent(ControlV1.Agent())
            return m
        }
    }
}
