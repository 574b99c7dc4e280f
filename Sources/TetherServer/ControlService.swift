import GRPC
import TetherDAGFile
import TetherScheduler
import TetherSyntax
import TetherSchedulerSQLite
import TetherWire

/// `tether.control.v1.ControlService`: the operator API. Handlers validate and route;
/// the scheduler decides. Which role each method needs, and which calls are audited, is
/// `ControlAccess`'s table; `unary` applies it and records writes in `audit`. The
/// dashboard's JSON API (`Dashboard`) calls the read handlers and a few writes directly,
/// after its own session check (and records its writes with `record`), so both surfaces
/// answer from one implementation.
struct ControlService: Sendable {
    static let maxPageSize = 1_000
    static let defaultPageSize = 100
    /// The most characters of a status message the audit log keeps.
    static let maxAuditedMessage = 1_000

    let scheduler: SchedulerService
    let store: SQLiteSchedulerStore
    let sessions: AgentSessions
    let tokens: TokenStore
    let authenticator: Authenticator
    /// What `WatchEvents` streams.
    let events: EventLog
    let audit: AuditLog
    /// Says that an audit entry could not be written (the call itself stands).
    let log: @Sendable (String) -> Void

    func register(in router: inout GRPCRouter) {
        unary(&router, ControlV1.ControlService.applyDag, applyDag)
        unary(&router, ControlV1.ControlService.getDag, getDag)
        unary(&router, ControlV1.ControlService.listDags, listDags)
        unary(&router, ControlV1.ControlService.listDagVersions, listDagVersions)
        unary(&router, ControlV1.ControlService.pauseDag) { (request: ControlV1.PauseDagRequest) in
            var response = ControlV1.PauseDagResponse()
            response.dag = try await setPaused(request.dagID, true)
            return response
        }
        unary(&router, ControlV1.ControlService.unpauseDag) { (request: ControlV1.UnpauseDagRequest) in
            var response = ControlV1.UnpauseDagResponse()
            response.dag = try await setPaused(request.dagID, false)
            return response
        }
        unary(&router, ControlV1.ControlService.deleteDag, deleteDag)
        unary(&router, ControlV1.ControlService.triggerRun, triggerRun)
        unary(&router, ControlV1.ControlService.getRun, getRun)
        unary(&router, ControlV1.ControlService.listRuns, listRuns)
        unary(&router, ControlV1.ControlService.cancelRun, cancelRun)
        unary(&router, ControlV1.ControlService.cancelTaskInstance, cancelTaskInstance)
        unary(&router, ControlV1.ControlService.clearRun, clearRun)
        unary(&router, ControlV1.ControlService.backfill, backfill)
        unary(&router, ControlV1.ControlService.setPool) { (request: ControlV1.SetPoolRequest) in
            let status = try await scheduler.perform { scheduler in
                try scheduler.setPool(request.name, slots: Int(request.slots))
                return scheduler.poolStatuses.first { $0.pool.name == request.name }!
            }
            var response = ControlV1.SetPoolResponse()
            response.pool = ControlV1.Pool(status)
            return response
        }
        unary(&router, ControlV1.ControlService.deletePool) { (request: ControlV1.DeletePoolRequest) in
            try await scheduler.perform { try $0.deletePool(request.name) }
            return ControlV1.DeletePoolResponse()
        }
        unary(&router, ControlV1.ControlService.listPools) { (_: ControlV1.ListPoolsRequest) in
            var response = ControlV1.ListPoolsResponse()
            response.pools = scheduler.read { $0.poolStatuses }.map(ControlV1.Pool.init)
            return response
        }
        unary(&router, ControlV1.ControlService.listAgents, listAgents)
        unary(&router, ControlV1.ControlService.drainAgent) { (request: ControlV1.DrainAgentRequest) in
            var response = ControlV1.DrainAgentResponse()
            response.agent = try await drain(request.agent, reason: request.reason)
            return response
        }
        unary(&router, ControlV1.ControlService.undrainAgent) { (request: ControlV1.UndrainAgentRequest) in
            var response = ControlV1.UndrainAgentResponse()
            response.agent = try await undrain(request.agent)
            return response
        }
        unary(&router, ControlV1.ControlService.forgetAgent, forgetAgent)
        unary(&router, ControlV1.ControlService.createToken, createToken)
        unary(&router, ControlV1.ControlService.listTokens, listTokens)
        unary(&router, ControlV1.ControlService.revokeToken, revokeToken)
        unary(&router, ControlV1.ControlService.listAuditEntries, listAuditEntries)
        router.serverStreaming(ControlV1.ControlService.watchEvents) {
            (request: ControlV1.WatchEventsRequest, writer: GRPCResponseWriter<ControlV1.WatchEventsResponse>, context) in
            try authenticator.require(ControlAccess.of(ControlV1.ControlService.watchEvents), context)
            try await watchEvents(request, writer)
        }
    }

    /// Registers a unary method: the caller's token must satisfy the method's
    /// `ControlAccess`; a write is recorded in the audit log with its outcome, and so is a
    /// write refused for the token's role.
    private func unary<Request: WireMessage, Response: WireMessage>(
        _ router: inout GRPCRouter, _ method: RPCMethod<Request, Response, RPCShape.Unary>,
        _ body: @escaping @Sendable (Request) async throws -> Response
    ) {
        let access = ControlAccess.of(method)
        let roles = Authenticator.roles(satisfying: access.least)
        router.unary(method) { (request: Request, context) in
            let caller: TokenRecord
            do throws(Authenticator.Refusal) {
                caller = try authenticator.authenticate(
                    authorization: context.head.metadata.firstString(forKey: "authorization"), roles, what: "metadata")
            } catch {
                let status = Authenticator.status(error, method: context.head.path.method)
                if case .permissionDenied(let token) = error, access.kind == .write {
                    await record(token, context, request, nil, status)
                }
                throw status
            }
            do {
                let response = try await body(request)
                if access.kind == .write { await record(caller, context, request, response, nil) }
                return response
            } catch {
                let thrown = Self.status(forThrown: error)
                if access.kind == .write { await record(caller, context, request, nil, thrown) }
                throw thrown
            }
        }
    }

    /// Records a gRPC write made (or refused) with `caller`'s token.
    private func record(_ caller: TokenRecord, _ context: GRPCServerContext, _ request: any WireMessage,
                        _ response: (any WireMessage)?, _ thrown: (any Error)?) async {
        let (target, summary) = AuditText.describe(request, response)
        await record(caller: caller, method: context.head.path.method, target: target, summary: summary,
                     peer: context.peer, surface: .grpc, thrown: thrown)
    }

    /// Appends an audit entry for a call `caller` made, ended by `thrown` (nil: OK), and
    /// waits for it to be durable (off the event loop). A failing audit log is logged; the
    /// call's outcome stands.
    func record(caller: TokenRecord, method: String, target: String, summary: String, peer: String,
                surface: AuditEntry.Surface, thrown: (any Error)?) async {
        let status = thrown.map { ($0 as? GRPCStatus) ?? GRPCStatus(code: .unknown, message: "\($0)") }
        let message = status?.message ?? ""
        let entry = AuditEntry(
            atMilliseconds: scheduler.clock.now().millisecondsSinceEpoch, tokenID: caller.tokenID,
            tokenDescription: caller.description, role: caller.role, method: method, target: target, summary: summary,
            peer: peer, surface: surface, statusCode: status?.code.rawValue ?? 0,
            statusMessage: message.count <= Self.maxAuditedMessage ? message : String(message.prefix(Self.maxAuditedMessage - 1)) + "…")
        let audit = self.audit
        do {
            _ = try await offLoop { try audit.append(entry) }
        } catch {
            log("audit log: cannot record \(method) by token \(caller.tokenID): \(error)")
        }
    }

    /// What a handler threw, as the caller sees it: scheduler errors become their status
    /// (`status(for:)`), a failing store UNAVAILABLE; anything else is passed on as it is.
    /// The dashboard's JSON API maps the handlers' errors with this too.
    static func status(forThrown error: any Error) -> any Error {
        switch error {
        case let error as SchedulerError: status(for: error)
        case let error as SchedulerServiceError: GRPCStatus(code: .unavailable, message: "\(error)")
        default: error
        }
    }

    /// Runs blocking work (DAG parsing, token writes with their fsync) off the event loop
    /// the handler runs on. Store reads need no help: they are async (`SQLiteReadPool`).
    private func offLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await Task.detached { try body() }.value
    }

    static func status(for error: SchedulerError) -> GRPCStatus {
        let code: GRPCStatusCode
        switch error {
        case .unknownDAG, .unknownVersion, .unknownRun, .unknownTask, .unknownAgent, .unknownPool: code = .notFound
        case .unknownParam, .invalidSpec, .invalidReport, .invalidArgument: code = .invalidArgument
        case .alreadyFinished, .notFinished, .illegalTransition: code = .failedPrecondition
        case .notYetStored: code = .unavailable
        case .unknownLease, .notLeaseHolder, .staleEpoch: code = .failedPrecondition
        }
        return GRPCStatus(code: code, message: "\(error)")
    }

    // MARK: DAGs

    private func applyDag(_ request: ControlV1.ApplyDagRequest) async throws -> ControlV1.ApplyDagResponse {
        let source = request.sourceName.isEmpty ? "<request>" : request.sourceName
        let yaml = request.specYaml
        let spec: DAGSpec
        do {
            // Parsing is bounded (DAGFile's size cap and expansion budget) but still up to
            // milliseconds per MiB: not on the loop that serves agents' heartbeats.
            spec = try await offLoop { try DAGFile.parse(yaml: yaml, sourceName: source) }
        } catch let error as DAGFileError {
            throw GRPCStatus(code: .invalidArgument, message: "\(error)")
        }
        let (version, created) = try await scheduler.perform { try $0.apply(spec, specYAML: yaml) }
        var response = ControlV1.ApplyDagResponse()
        response.version = ControlV1.DagVersion(version)
        response.created = created
        return response
    }

    private func dagMessage(_ dagID: String) throws(GRPCStatus) -> ControlV1.Dag {
        let dag = scheduler.read { scheduler -> ControlV1.Dag? in
            guard let record = scheduler.dag(dagID) else { return nil }
            return ControlV1.Dag(record, latest: scheduler.version(dagID, record.latestVersion),
                                 nextRunAt: scheduler.nextScheduledRun(dagID), activeRuns: scheduler.activeRunCount(ofDAG: dagID))
        }
        guard let dag else { throw GRPCStatus(code: .notFound, message: "unknown DAG '\(dagID)'") }
        return dag
    }

    func getDag(_ request: ControlV1.GetDagRequest) async throws -> ControlV1.GetDagResponse {
        var response = ControlV1.GetDagResponse()
        response.dag = try dagMessage(request.dagID)
        let wanted = request.version == 0 ? Int(response.dag!.latestVersion) : Int(request.version)
        guard let version = scheduler.read({ $0.version(request.dagID, wanted) }) else {
            throw GRPCStatus(code: .notFound, message: "DAG '\(request.dagID)' has no version \(wanted)")
        }
        response.version = ControlV1.DagVersion(version)
        return response
    }

    func listDags(_ request: ControlV1.ListDagsRequest) async throws -> ControlV1.ListDagsResponse {
        let size = try Self.pageSize(request.pageSize)
        let after = request.pageToken
        let page = scheduler.read { scheduler in
            scheduler.allDAGs.filter { $0.dagID > after }.prefix(size + 1).map { record in
                ControlV1.Dag(record, latest: scheduler.version(record.dagID, record.latestVersion),
                              nextRunAt: scheduler.nextScheduledRun(record.dagID), activeRuns: scheduler.activeRunCount(ofDAG: record.dagID))
            }
        }
        var response = ControlV1.ListDagsResponse()
        var budget = ListResponseBudget()
        var last: String?
        for (index, dag) in page.enumerated() {
            guard index < size else { break }
            switch budget.admit(dag, slim: { $0.slimForList() }) {
            case .send(let row): response.dags.append(row)
            case .leftOut: break
            case .full:
                response.nextPageToken = last ?? ""
                return response
            }
            last = dag.dagID
        }
        if page.count > size { response.nextPageToken = last ?? "" }
        return response
    }

    func listDagVersions(_ request: ControlV1.ListDagVersionsRequest) async throws -> ControlV1.ListDagVersionsResponse {
        let size = try Self.pageSize(request.pageSize)
        _ = try dagMessage(request.dagID)
        let after = Int(request.pageToken) ?? 0
        guard request.pageToken.isEmpty || after > 0 else {
            throw GRPCStatus(code: .invalidArgument, message: "bad page_token '\(request.pageToken)'")
        }
        // Newest first, as the contract says; a page token is the last version sent.
        let versions = scheduler.read { $0.versions(of: request.dagID) }
            .filter { request.pageToken.isEmpty || $0.version < after }.sorted { $0.version > $1.version }
        var response = ControlV1.ListDagVersionsResponse()
        (response.versions, response.nextPageToken) = await ListResponseBudget.page(
            versions.prefix(size), more: versions.count > size, cursor: { String($0.version) },
            row: { ControlV1.DagVersion($0) }, slim: { $0.slimForList() })
        return response
    }

    func setPaused(_ dagID: String, _ paused: Bool) async throws -> ControlV1.Dag {
        try await scheduler.perform { try $0.setPaused(dagID, paused) }
        return try dagMessage(dagID)
    }

    /// Deletes the DAG (see `Scheduler.deleteDAG`): durable once this returns, as every
    /// change a handler waits for.
    func deleteDag(_ request: ControlV1.DeleteDagRequest) async throws -> ControlV1.DeleteDagResponse {
        let cancelled = try await scheduler.perform { try $0.deleteDAG(request.dagID, cancelRuns: request.cancelRuns) }
        var response = ControlV1.DeleteDagResponse()
        response.cancelledRunIds = cancelled
        return response
    }

    // MARK: Runs

    func triggerRun(_ request: ControlV1.TriggerRunRequest) async throws -> ControlV1.TriggerRunResponse {
        let params = request.params
        let problems = DAGSpec.runParamsProblems(params)
        guard problems.isEmpty else {
            throw GRPCStatus(code: .invalidArgument, message: "field 'params': " + problems.joined(separator: "; "))
        }
        var trigger = TriggerRequest(params: params, note: try Self.freeText(request.note, field: "note"))
        if !request.idempotencyKey.isEmpty {
            trigger.idempotencyKey = try Self.freeText(request.idempotencyKey, field: "idempotency_key", limit: 256)
        }
        if request.logicalTimeUnixUs != 0 {
            guard UTCTimestamp.unixMicrosecondsRange.contains(request.logicalTimeUnixUs) else {
                throw GRPCStatus(code: .invalidArgument,
                                 message: "field 'logical_time_unix_us': \(request.logicalTimeUnixUs) is outside years 1970-9999")
            }
            trigger.logicalDate = Instant(millisecondsSinceEpoch: request.logicalTimeUnixUs / 1000)
        }
        let outcome = try await scheduler.perform { [trigger] in try $0.trigger(dagID: request.dagID, trigger) }
        var response = ControlV1.TriggerRunResponse()
        switch outcome {
        case .created(let run):
            response.run = try await runMessage(run)
        case .existing(let runID):
            var run = scheduler.read { $0.activeRun(runID) }
            if run == nil { run = try await store.run(runID) }
            guard let run else {
                throw GRPCStatus(code: .internal, message: "run '\(runID)' of idempotency key '\(request.idempotencyKey)' is not stored")
            }
            response.run = try await runMessage(run)
            response.existing = true
        }
        return response
    }

    /// Free text from a caller (a note, a reason, a key): at most `limit` bytes and no NUL.
    static func freeText(_ text: String, field: String, limit: Int = 4096) throws -> String {
        guard text.utf8.count <= limit else {
            throw GRPCStatus(code: .invalidArgument, message: "field '\(field)': \(text.utf8.count) bytes, more than the limit of \(limit)")
        }
        guard !text.utf8.contains(0) else {
            throw GRPCStatus(code: .invalidArgument, message: "field '\(field)': contains a NUL character")
        }
        return text
    }

    private func runMessage(_ record: RunRecord) async throws -> ControlV1.Run {
        let (active, waitReason) = scheduler.read { ($0.taskInstances(ofRun: record.runID), $0.waitReason(ofRun: record.runID)) }
        var counts: [TetherScheduler.TaskState: Int] = [:]
        if let active {
            for task in active.values { counts[task.state, default: 0] += 1 }
        } else {
            counts = try await store.taskStateCounts(ofRun: record.runID)
        }
        return ControlV1.Run(record, taskCounts: counts, waitReason: waitReason)
    }

    func getRun(_ request: ControlV1.GetRunRequest) async throws -> ControlV1.GetRunResponse {
        // Active runs from memory (current to the last decision), finished ones from the store.
        let live = scheduler.read { scheduler -> (RunRecord, [TaskInstanceRecord], DAGSpec?, [String: String], String?)? in
            guard let run = scheduler.activeRun(request.runID), let tasks = scheduler.taskInstances(ofRun: request.runID) else { return nil }
            var reasons: [String: String] = [:]
            for task in tasks.values where task.state == .queued { reasons[task.key.taskID] = scheduler.waitReason(task.key) }
            return (run, Array(tasks.values), scheduler.version(run.dagID, run.version)?.spec, reasons,
                    scheduler.waitReason(ofRun: request.runID))
        }
        let run: RunRecord, tasks: [TaskInstanceRecord], spec: DAGSpec?, reasons: [String: String], runWaitReason: String?
        if let live {
            (run, tasks, spec, reasons, runWaitReason) = live
        } else {
            guard let stored = try await store.run(request.runID) else {
                throw GRPCStatus(code: .notFound, message: "unknown run '\(request.runID)'")
            }
            run = stored
            tasks = try await store.tasks(ofRun: request.runID)
            spec = scheduler.read { $0.version(stored.dagID, stored.version)?.spec }
            reasons = [:]
            runWaitReason = nil
        }
        var response = ControlV1.GetRunResponse()
        var counts: [TetherScheduler.TaskState: Int] = [:]
        for task in tasks { counts[task.state, default: 0] += 1 }
        response.run = ControlV1.Run(run, taskCounts: counts, waitReason: runWaitReason)
        let specs = Dictionary((spec?.tasks ?? []).map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        let order = Dictionary((spec?.tasks ?? []).enumerated().map { ($1.id, $0) }, uniquingKeysWith: { $1 })
        let attempts = try await store.attempts(ofRun: run.runID)
        // Unfinished callbacks from memory, the rest from the store.
        var callbacks = Dictionary(try await store.callbacks(ofRun: run.runID).map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        for callback in scheduler.read({ $0.pendingCallbacks(ofRun: request.runID) }) { callbacks[callback.key] = callback }
        response.callbacks = callbacks.values.sorted { ($0.createdAt, $0.key) < ($1.createdAt, $1.key) }.map {
            ControlV1.Callback($0, attempts: attempts[$0.key.taskID] ?? [])
        }
        response.taskInstances = tasks.sorted { (order[$0.key.taskID] ?? .max, $0.key.taskID) < (order[$1.key.taskID] ?? .max, $1.key.taskID) }
            .map { task in
                ControlV1.TaskInstance(task, spec: specs[task.key.taskID], attempts: attempts[task.key.taskID] ?? [],
                                       waitingReason: reasons[task.key.taskID])
            }
        return response
    }

    func listRuns(_ request: ControlV1.ListRunsRequest) async throws -> ControlV1.ListRunsResponse {
        let size = try Self.pageSize(request.pageSize)
        var states: [TetherScheduler.RunState] = []
        for state in request.states {
            guard let known = state.schedulerState else {
                throw GRPCStatus(code: .invalidArgument, message: "unknown run state \(state.rawValue)")
            }
            states.append(known)
        }
        var cursor: Int64?
        if !request.pageToken.isEmpty {
            guard let value = Int64(request.pageToken), value > 0 else {
                throw GRPCStatus(code: .invalidArgument, message: "bad page_token '\(request.pageToken)'")
            }
            cursor = value
        }
        let page = try await store.runPage(dagID: request.dagID.isEmpty ? nil : request.dagID, states: states, limit: size, after: cursor)
        var response = ControlV1.ListRunsResponse()
        (response.runs, response.nextPageToken) = try await ListResponseBudget.page(
            page, more: page.count == size, cursor: { String($0.1) },
            // The store may lag the scheduler by the commit in flight; prefer memory.
            row: { stored, _ in try await runMessage(scheduler.read { $0.activeRun(stored.runID) } ?? stored) },
            slim: { $0.slimForList() })
        return response
    }

    /// A finished run or task cannot be cancelled: FAILED_PRECONDITION, not NOT_FOUND
    /// (the scheduler only holds active runs).
    private func requireActive(_ runID: String) async throws {
        guard scheduler.read({ $0.activeRun(runID) }) == nil else { return }
        if let stored = try await store.run(runID) {
            throw GRPCStatus(code: .failedPrecondition, message: "run '\(runID)' already finished (\(stored.state.rawValue))")
        }
    }

    func cancelRun(_ request: ControlV1.CancelRunRequest) async throws -> ControlV1.CancelRunResponse {
        try await requireActive(request.runID)
        let reason = try Self.freeText(request.reason, field: "reason")
        try await scheduler.perform { try $0.cancelRun(request.runID, reason: reason) }
        var response = ControlV1.CancelRunResponse()
        guard let run = try await store.run(request.runID) else { throw GRPCStatus(code: .notFound, message: "unknown run '\(request.runID)'") }
        response.run = try await runMessage(run)
        return response
    }

    private func cancelTaskInstance(_ request: ControlV1.CancelTaskInstanceRequest) async throws -> ControlV1.CancelTaskInstanceResponse {
        try await requireActive(request.runID)
        try await scheduler.perform { try $0.cancelTask(runID: request.runID, taskID: request.taskID) }
        let key = TaskKey(runID: request.runID, taskID: request.taskID)
        guard let task = try await store.tasks(ofRun: request.runID).first(where: { $0.key == key }),
              let run = try await store.run(request.runID) else {
            throw GRPCStatus(code: .notFound, message: "unknown task \(key)")
        }
        let spec = scheduler.read { $0.version(run.dagID, run.version)?.spec.tasks.first { $0.id == request.taskID } }
        var response = ControlV1.CancelTaskInstanceResponse()
        response.taskInstance = ControlV1.TaskInstance(task, spec: spec, attempts: try await store.attempts(of: key), waitingReason: nil)
        return response
    }

    private func backfill(_ request: ControlV1.BackfillRequest) async throws -> ControlV1.BackfillResponse {
        for (field, value) in [("from_unix_us", request.fromUnixUs), ("to_unix_us", request.toUnixUs)]
        where !UTCTimestamp.unixMicrosecondsRange.contains(value) {
            throw GRPCStatus(code: .invalidArgument, message: "field '\(field)': \(value) is outside years 1970-9999")
        }
        let from = Instant(millisecondsSinceEpoch: request.fromUnixUs / 1000)
        let through = Instant(millisecondsSinceEpoch: request.toUnixUs / 1000)
        // The store's runs of the range (off the loop); failed ones with their tasks, to clear.
        var existing: [StoredRun] = []
        for run in try await store.intervalRuns(dagID: request.dagID, from: from, through: through) {
            let tasks = request.rerunFailed && run.state == .failed ? try await store.tasks(ofRun: run.runID) : []
            existing.append(StoredRun(run: run, tasks: tasks))
        }
        let outcome = try await scheduler.perform { [existing] in
            try $0.backfill(dagID: request.dagID, from: from, through: through, rerunFailed: request.rerunFailed, existing: existing,
                            maxActiveRuns: Int(request.maxActiveRuns))
        }
        var byID = Dictionary(existing.map { ($0.run.runID, $0.run) }, uniquingKeysWith: { $1 })
        for run in outcome.created { byID[run.runID] = run }
        var response = ControlV1.BackfillResponse()
        for runID in outcome.created.map(\.runID) + outcome.existing {
            var record = scheduler.read { $0.activeRun(runID) } ?? byID[runID]
            if record == nil { record = try await store.run(runID) }
            if let record { response.runs.append(try await runMessage(record)) }
        }
        response.runs.sort { $0.logicalTimeUnixUs < $1.logicalTimeUnixUs }
        response.created = UInt32(clamping: outcome.created.count)
        response.rerunRunIds = outcome.rerun
        response.throughUnixUs = outcome.through.unixMicroseconds
        return response
    }

    private func clearRun(_ request: ControlV1.ClearRunRequest) async throws -> ControlV1.ClearRunResponse {
        let clear = ClearRequest(taskIDs: request.taskIds, downstream: request.downstream, failedOnly: request.failedOnly)
        // A finished run lives in the store only: read it (off the loop) for the scheduler.
        var stored: StoredRun?
        if scheduler.read({ $0.activeRun(request.runID) }) == nil, let run = try await store.run(request.runID) {
            stored = StoredRun(run: run, tasks: try await store.tasks(ofRun: request.runID))
        }
        let cleared = try await scheduler.perform { [stored] in try $0.clear(runID: request.runID, clear, stored: stored) }
        var response = ControlV1.ClearRunResponse()
        var run = scheduler.read { $0.activeRun(request.runID) }
        if run == nil { run = try await store.run(request.runID) }
        guard let run else {
            throw GRPCStatus(code: .notFound, message: "unknown run '\(request.runID)'")
        }
        response.run = try await runMessage(run)
        response.clearedTaskIds = cleared
        return response
    }

    // MARK: Agents

    private func agentMessage(_ session: AgentSession) -> ControlV1.Agent { sessions.agentMessage(session, scheduler) }

    /// Connected agents, and with `include_disconnected` those known from earlier sessions,
    /// by name.
    func listAgents(_ request: ControlV1.ListAgentsRequest) async throws -> ControlV1.ListAgentsResponse {
        func serves(_ queues: [String]) -> Bool { request.queue.isEmpty || queues.contains(request.queue) }
        let live = sessions.all
        var agents = live.filter { serves($0.hello.queues) }.map(agentMessage)
        if request.includeDisconnected {
            let connected = Set(live.map(\.name))
            agents += sessions.directory.disconnectedAgents().filter { !connected.contains($0.name) && serves($0.queues) }
            agents.sort { $0.name < $1.name }
        }
        // Unpaged (agents are few): past one message's worth the rest are left out.
        var response = ControlV1.ListAgentsResponse()
        response.agents = await ListResponseBudget.page(agents, more: false, cursor: { _ in "" }, row: { $0 },
                                                        slim: { $0.slimForList() }).rows
        return response
    }

    private func connectedSession(_ name: String) throws(GRPCStatus) -> AgentSession {
        guard let session = sessions.session(name) else { throw GRPCStatus(code: .notFound, message: "no connected agent '\(name)'") }
        return session
    }

    /// Stops new grants to the agent and tells it to drain: it finishes its tasks, says
    /// Goodbye and exits.
    private func drain(_ name: String, reason: String) async throws -> ControlV1.Agent {
        let session = try connectedSession(name)
        session.setDraining(true)
        try await scheduler.perform { $0.agentDisconnected(name) }
        var message = AgentV1.Drain()
        message.reason = reason.isEmpty ? "drained by an operator" : reason
        session.send(AgentV1.ServerMessage(.drain(message)))
        return agentMessage(session)
    }

    /// Forgets a disconnected agent: it leaves `ListAgents`, its metrics are dropped.
    private func forgetAgent(_ request: ControlV1.ForgetAgentRequest) async throws -> ControlV1.ForgetAgentResponse {
        guard sessions.session(request.agent) == nil else {
            throw GRPCStatus(code: .failedPrecondition, message: "agent '\(request.agent)' is connected; drain it first, "
                             + "and forget it once it has disconnected")
        }
        guard let agent = sessions.directory.forget(request.agent) else {
            throw GRPCStatus(code: .notFound, message: "no agent '\(request.agent)' is known")
        }
        sessions.metrics.remove(agent: request.agent)
        let directory = sessions.directory
        try await offLoop { try directory.flush() }
        var response = ControlV1.ForgetAgentResponse()
        response.agent = agent
        return response
    }

    private func undrain(_ name: String) async throws -> ControlV1.Agent {
        let session = try connectedSession(name)
        session.setDraining(false)
        let hello = session.hello
        let registration = AgentRegistration(agentID: name, queues: Set(hello.queues), entrypoints: Set(hello.entrypoints),
                                             slots: Int(hello.slots), resumingLeaseIDs: scheduler.read { $0.leaseIDs(ofAgent: name) })
        _ = try await scheduler.perform { $0.agentConnected(registration) }
        return agentMessage(session)
    }

    // MARK: Events

    /// Streams the log's events matching the request: first those kept after
    /// `after_cursor`, then new ones as they commit, until the client goes, the server
    /// stops (UNAVAILABLE) or the client falls too far behind (RESOURCE_EXHAUSTED; it may
    /// resume from the last cursor it got).
    private func watchEvents(_ request: ControlV1.WatchEventsRequest,
                             _ writer: GRPCResponseWriter<ControlV1.WatchEventsResponse>) async throws {
        for (name, id) in [("dag_id", request.dagID), ("run_id", request.runID)] where !id.isEmpty && id.utf8.count > 512 {
            throw GRPCStatus(code: .invalidArgument, message: "\(name) is longer than 512 bytes")
        }
        let subscription = try events.subscribe(
            after: request.afterCursor,
            EventLog.Filter(dagID: request.dagID, runID: request.runID, includeAgents: request.includeAgents))
        defer { events.unsubscribe(subscription) }
        while true {
            let batch = await subscription.next()
            if batch.isEmpty { break }
            // At most 256 KiB a write, so a long replay waits for the client's window in steps.
            var start = batch.startIndex
            while start < batch.endIndex {
                var end = start, bytes = 0
                while end < batch.endIndex && (end == start || bytes + batch[end].bytes.count <= 256 << 10) {
                    bytes += batch[end].bytes.count
                    end += 1
                }
                try await writer.write(serialized: batch[start..<end].map(\.bytes))
                start = end
            }
        }
        if let status = subscription.endStatus { throw status }
    }

    // MARK: Tokens

    private func createToken(_ request: ControlV1.CreateTokenRequest) async throws -> ControlV1.CreateTokenResponse {
        guard let role = request.role.tokenRole else {
            throw GRPCStatus(code: .invalidArgument, message: "role must be VIEWER, OPERATOR, ADMIN or AGENT")
        }
        guard request.agentName.isEmpty || (role == .agent && Identifier.isValid(request.agentName)) else {
            throw GRPCStatus(code: .invalidArgument, message: "agent_name must be a valid agent name, on an AGENT token")
        }
        // An agent token that could connect under any name could take over any agent's leases.
        guard role != .agent || !request.agentName.isEmpty else {
            throw GRPCStatus(code: .invalidArgument,
                             message: "an AGENT token must be bound to the one agent name it connects as: set agent_name (--agent-name)")
        }
        guard request.description.utf8.count <= 256 else {
            throw GRPCStatus(code: .invalidArgument, message: "description is longer than 256 bytes")
        }
        let tokens = tokens, now = scheduler.clock.now().millisecondsSinceEpoch
        let (record, secret) = try await offLoop {
            try tokens.create(role: role, description: request.description,
                              ttlMilliseconds: Int64(clamping: request.ttlMs),  // clamped to 10 years
                              agentName: request.agentName, now: now)
        }
        var response = ControlV1.CreateTokenResponse()
        response.token = ControlV1.Token(record)
        response.secret = secret
        return response
    }

    private func listTokens(_ request: ControlV1.ListTokensRequest) async throws -> ControlV1.ListTokensResponse {
        var response = ControlV1.ListTokensResponse()
        // Unpaged (tokens are few): past one message's worth the rest are left out.
        var budget = ListResponseBudget()
        for record in tokens.list(includeInactive: request.includeInactive, now: scheduler.clock.now().millisecondsSinceEpoch) {
            switch budget.admit(ControlV1.Token(record), slim: { $0.slimForList() }) {
            case .send(let row): response.tokens.append(row)
            case .leftOut: continue
            case .full: return response
            }
        }
        return response
    }

    private func revokeToken(_ request: ControlV1.RevokeTokenRequest) async throws -> ControlV1.RevokeTokenResponse {
        var response = ControlV1.RevokeTokenResponse()
        do {
            let tokens = tokens, now = scheduler.clock.now().millisecondsSinceEpoch
            response.token = ControlV1.Token(try await offLoop { try tokens.revoke(tokenID: request.tokenID, now: now) })
            sessions.endSessions(ofToken: request.tokenID)
        } catch TokenStoreError.unknownToken(let id) {
            throw GRPCStatus(code: .notFound, message: "no token '\(id)'")
        }
        return response
    }

    // MARK: Audit

    func listAuditEntries(_ request: ControlV1.ListAuditEntriesRequest) async throws -> ControlV1.ListAuditEntriesResponse {
        let size = try Self.pageSize(request.pageSize)
        let before = Int64(request.pageToken)
        guard request.pageToken.isEmpty || (before ?? 0) > 0 else {
            throw GRPCStatus(code: .invalidArgument, message: "bad page_token '\(request.pageToken)'")
        }
        // Entries are stamped in milliseconds: the first one at or after since_unix_us.
        let since = request.sinceUnixUs <= 0 ? 0 : request.sinceUnixUs / 1000 + (request.sinceUnixUs % 1000 == 0 ? 0 : 1)
        let audit = self.audit, tokenID = request.tokenID, method = request.method
        let page = try await offLoop { try audit.entries(since: since, tokenID: tokenID, method: method, before: before, limit: size + 1) }
        var response = ControlV1.ListAuditEntriesResponse()
        (response.entries, response.nextPageToken) = await ListResponseBudget.page(
            page.prefix(size), more: page.count > size, cursor: { String($0.id) },
            row: { ControlV1.AuditEntry($0) }, slim: { _ in })
        return response
    }

    private static func pageSize(_ requested: UInt32) throws(GRPCStatus) -> Int {
        guard requested <= maxPageSize else {
            throw GRPCStatus(code: .invalidArgument, message: "page_size must be at most \(maxPageSize)")
        }
        return requested == 0 ? defaultPageSize : Int(requested)
    }
}
