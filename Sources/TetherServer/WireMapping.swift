import TetherScheduler
import TetherWire

// The server's side of the wire mapping: scheduler records -> tether.control.v1 messages,
// scheduler effects -> tether.agent.v1 messages, agents' events -> scheduler reports. The
// scheduler counts milliseconds; the wire counts microseconds.

extension Instant {
    var unixMicroseconds: Int64 { millisecondsSinceEpoch &* 1000 }
}

extension Optional where Wrapped == Instant {
    var unixMicroseconds: Int64 { self?.unixMicroseconds ?? 0 }
}

extension ControlV1.TriggerRule {
    init(_ rule: TetherScheduler.TriggerRule) {
        switch rule {
        case .allSuccess: self = .allSuccess
        case .allDone: self = .allDone
        case .allFailed: self = .allFailed
        case .oneSuccess: self = .oneSuccess
        case .oneFailed: self = .oneFailed
        case .noneFailed: self = .noneFailed
        case .allDoneMinOneSuccess: self = .allDoneMinOneSuccess
        case .allSkipped: self = .allSkipped
        case .oneDone: self = .oneDone
        case .noneFailedMinOneSuccess: self = .noneFailedMinOneSuccess
        case .noneSkipped: self = .noneSkipped
        case .always: self = .always
        }
    }
}

extension ControlV1.RunState {
    init(_ state: TetherScheduler.RunState) {
        switch state {
        case .queued: self = .queued
        case .running: self = .running
        case .success: self = .success
        case .failed: self = .failed
        case .cancelled: self = .cancelled
        }
    }

    /// The scheduler's state, or nil for UNSPECIFIED and numbers it does not know.
    var schedulerState: TetherScheduler.RunState? {
        switch self {
        case .queued: return .queued
        case .running: return .running
        case .success: return .success
        case .failed: return .failed
        case .cancelled: return .cancelled
        default: return nil
        }
    }
}

extension ControlV1.TaskState {
    init(_ state: TetherScheduler.TaskState) {
        switch state {
        case .scheduled: self = .scheduled
        case .queued: self = .queued
        case .running: self = .running
        case .success: self = .success
        case .failed: self = .failed
        case .upForRetry: self = .upForRetry
        case .upstreamFailed: self = .upstreamFailed
        case .skipped: self = .skipped
        case .cancelled: self = .cancelled
        }
    }
}

extension ControlV1.AttemptOutcome {
    init(_ outcome: TetherScheduler.AttemptOutcome) {
        switch outcome {
        case .running: self = .running
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .timedOut: self = .timedOut
        case .cancelled: self = .cancelled
        case .lost: self = .lost
        case .rejected: self = .rejected
        }
    }
}

extension ControlV1.DagSpec {
    init(_ spec: DAGSpec) {
        self.init()
        dagID = spec.dagID
        description = spec.description
        schedule = spec.schedule
        paused = spec.paused
        catchup = spec.catchup
        runTimeoutMs = UInt64(clamping: spec.runTimeoutMilliseconds ?? 0)
        maxActiveRuns = UInt32(clamping: spec.maxActiveRuns)
        maxActiveTasks = UInt32(clamping: spec.maxActiveTasks)
        params = spec.params
        onSuccess = spec.onSuccess
        onFailure = spec.onFailure
        onDeadlineMiss = spec.onDeadlineMiss
        deadline = spec.deadline?.text ?? ""
        callbackQueue = spec.callbackQueue
        tasks = spec.tasks.map { task in
            var wire = ControlV1.TaskSpec()
            wire.taskID = task.id
            wire.entrypoint = task.entrypoint
            wire.queue = task.queue
            wire.dependsOn = task.dependsOn
            wire.triggerRule = ControlV1.TriggerRule(task.triggerRule)
            wire.retries = UInt32(clamping: task.retry.retries)
            wire.retryDelayMs = UInt64(clamping: task.retry.delayMilliseconds)
            wire.retryExponentialBackoff = task.retry.exponentialBackoff
            wire.maxRetryDelayMs = UInt64(clamping: task.retry.maxDelayMilliseconds)
            wire.executionTimeoutMs = UInt64(clamping: task.executionTimeoutMilliseconds ?? 0)
            wire.priority = Int32(clamping: task.priority)
            wire.params = task.params
            wire.pool = task.pool
            wire.poolSlots = UInt32(clamping: task.poolSlots)
            wire.queueTimeoutMs = UInt64(clamping: task.queueTimeoutMilliseconds ?? 0)
            wire.onSuccess = task.onSuccess
            wire.onFailure = task.onFailure
            wire.onRetry = task.onRetry
            return wire
        }
    }
}

extension ControlV1.DagVersion {
    init(_ version: DAGVersionRecord) {
        self.init()
        dagID = version.dagID
        self.version = UInt32(clamping: version.version)
        contentHash = version.contentHash
        createdAtUnixUs = version.appliedAt.unixMicroseconds
        spec = ControlV1.DagSpec(version.spec)
        specYaml = version.specYAML
    }
}

extension ControlV1.Dag {
    init(_ record: DAGRecord, latest: DAGVersionRecord?, nextRunAt: Instant?, activeRuns: Int) {
        self.init()
        dagID = record.dagID
        description = latest?.spec.description ?? ""
        schedule = latest?.spec.schedule ?? ""
        paused = record.paused
        latestVersion = UInt32(clamping: record.latestVersion)
        nextRunAtUnixUs = nextRunAt.unixMicroseconds
        createdAtUnixUs = record.createdAt.unixMicroseconds
        updatedAtUnixUs = record.updatedAt.unixMicroseconds
        self.activeRuns = UInt32(clamping: activeRuns)
    }
}

extension ControlV1.Run {
    init(_ record: RunRecord, taskCounts: [TetherScheduler.TaskState: Int], waitReason: String? = nil) {
        self.init()
        runID = record.runID
        dagID = record.dagID
        dagVersion = UInt32(clamping: record.version)
        state = ControlV1.RunState(record.state)
        trigger = switch record.trigger {
        case .manual: .manual
        case .schedule: .schedule
        case .backfill: .backfill
        }
        logicalTimeUnixUs = record.logicalDate.unixMicroseconds
        createdAtUnixUs = record.createdAt.unixMicroseconds
        startedAtUnixUs = record.startedAt.unixMicroseconds
        finishedAtUnixUs = record.finishedAt.unixMicroseconds
        params = record.params
        self.taskCounts = Dictionary(uniqueKeysWithValues: taskCounts.map { ($0.key.rawValue, UInt32(clamping: $0.value)) })
        dataIntervalStartUnixUs = record.dataInterval.start.unixMicroseconds
        dataIntervalEndUnixUs = record.dataInterval.end.unixMicroseconds
        idempotencyKey = record.idempotencyKey ?? ""
        note = record.note
        self.waitReason = waitReason ?? ""
        deadlineAtUnixUs = record.deadlineAt.unixMicroseconds
        deadlineMissedAtUnixUs = record.deadlineMissedAt.unixMicroseconds
        backfillID = record.backfillID ?? ""
    }
}

extension ControlV1.Callback {
    init(_ record: CallbackRecord, attempts: [AttemptRecord]) {
        self.init()
        runID = record.key.runID
        callbackID = record.key.taskID
        kind = switch record.kind {
        case .onSuccess: .onSuccess
        case .onFailure: .onFailure
        case .onRetry: .onRetry
        case .onDeadlineMiss: .onDeadlineMiss
        }
        taskID = record.taskID
        entrypoint = record.entrypoint
        queue = record.queue
        state = ControlV1.TaskState(record.instance.state)
        params = record.params
        createdAtUnixUs = record.createdAt.unixMicroseconds
        finishedAtUnixUs = record.instance.finishedAt.unixMicroseconds
        reason = record.instance.reason
        self.attempts = attempts.map(ControlV1.TaskAttempt.init)
    }
}

extension ControlV1.TaskAttempt {
    init(_ attempt: AttemptRecord) {
        self.init()
        self.attempt = UInt32(clamping: attempt.attempt)
        leaseID = attempt.leaseID
        epoch = attempt.epoch
        agentID = attempt.agentID
        agentName = attempt.agentID
        outcome = ControlV1.AttemptOutcome(attempt.outcome)
        if let code = attempt.usage.exitCode { exit = .exitCode(code) } else if let signal = attempt.usage.signal { exit = .signal(signal) }
        grantedAtUnixUs = attempt.grantedAt.unixMicroseconds
        startedAtUnixUs = attempt.startedAt.unixMicroseconds
        finishedAtUnixUs = attempt.finishedAt.unixMicroseconds
        userCpuMs = attempt.usage.userCPUMilliseconds
        systemCpuMs = attempt.usage.systemCPUMilliseconds
        maxRssKib = attempt.usage.maxRSSKiB
        message = attempt.message
    }
}

extension ControlV1.TaskInstance {
    init(_ record: TaskInstanceRecord, spec: TetherScheduler.TaskSpec?, attempts: [AttemptRecord], waitingReason: String?) {
        self.init()
        runID = record.key.runID
        taskID = record.key.taskID
        state = ControlV1.TaskState(record.state)
        queue = spec?.queue ?? ""
        entrypoint = spec?.entrypoint ?? ""
        tries = UInt32(clamping: record.tries - record.triesBeforeClear)
        maxTries = UInt32(clamping: (spec?.retry.retries ?? 0) + 1)
        infrastructureAttempts = UInt32(clamping: record.infrastructureAttempts)
        readyAtUnixUs = record.readyAt.unixMicroseconds
        nextTryAtUnixUs = record.nextTryAt.unixMicroseconds
        finishedAtUnixUs = record.finishedAt.unixMicroseconds
        self.waitingReason = waitingReason ?? ""
        self.attempts = attempts.map(ControlV1.TaskAttempt.init)
        reason = record.reason
    }
}

extension ControlV1.Token {
    init(_ record: TokenRecord) {
        self.init()
        tokenID = record.tokenID
        role = ControlV1.TokenRole(record.role)
        description = record.description
        createdAtUnixUs = record.createdAtMilliseconds &* 1000
        expiresAtUnixUs = record.expiresAtMilliseconds &* 1000
        revokedAtUnixUs = record.revokedAtMilliseconds &* 1000
        lastUsedAtUnixUs = record.lastUsedAtMilliseconds &* 1000
        agentName = record.agentName
    }
}

extension ControlV1.TokenRole {
    init(_ role: TokenRole) {
        self = switch role {
        case .admin: .admin
        case .agent: .agent
        case .viewer: .viewer
        case .operator: .operator
        }
    }

    /// The role a caller asked for; nil for UNSPECIFIED or a number this version does not know.
    var tokenRole: TokenRole? {
        switch self {
        case .admin: .admin
        case .agent: .agent
        case .viewer: .viewer
        case .operator: .operator
        default: nil
        }
    }
}

extension ControlV1.AuditEntry {
    init(_ entry: AuditEntry) {
        self.init()
        id = UInt64(clamping: entry.id)
        atUnixUs = entry.atMilliseconds &* 1000
        tokenID = entry.tokenID
        tokenDescription = entry.tokenDescription
        role = ControlV1.TokenRole(entry.role)
        method = entry.method
        target = entry.target
        summary = entry.summary
        peer = entry.peer
        surface = entry.surface.rawValue
        statusCode = UInt32(clamping: entry.statusCode)
        statusMessage = entry.statusMessage
    }
}

extension ControlV1.Agent {
    /// A connected agent as operators see it: what it announced, the leases it holds and
    /// the metric series its heartbeats reported.
    init(_ session: AgentSession, leaseIDs: [String], metrics: [ControlV1.AgentMetric]) {
        self.init()
        agentID = session.name
        name = session.name
        version = session.hello.version
        state = session.isDraining ? .draining : .connected
        queues = session.hello.queues
        slots = session.hello.slots
        labels = session.hello.labels
        entrypoints = session.hello.entrypoints
        leaseIds = leaseIDs
        freeSlots = UInt32(max(0, Int(session.hello.slots) - leaseIDs.count))
        connectedAtUnixUs = session.connectedAt.unixMicroseconds
        lastHeartbeatAtUnixUs = session.lastHeartbeat.unixMicroseconds
        lastSeenAtUnixUs = max(lastHeartbeatAtUnixUs, connectedAtUnixUs)
        peerAddress = session.peer
        self.metrics = metrics
        if let previous = session.tookOverFrom {
            disconnectReason = .replaced
            disconnectDetail = "this session took over from one still open from \(previous)"
        }
    }
}

// MARK: - tether.agent.v1

extension AgentV1.LeaseGrant {
    init(_ grant: LeaseGrant) {
        self.init()
        var task = AgentV1.TaskRef()
        task.dagID = grant.dagID
        task.dagVersion = UInt32(clamping: grant.dagVersion)
        task.runID = grant.key.runID
        task.taskID = grant.key.taskID
        leaseID = grant.leaseID
        epoch = grant.epoch
        self.task = task
        entrypoint = grant.entrypoint
        params = grant.params
        timeoutMs = UInt64(clamping: grant.timeoutMilliseconds ?? 0)
        attempt = UInt32(clamping: grant.attempt)
        grantedAtUnixUs = grant.grantedAt.unixMicroseconds
        logicalTimeUnixUs = grant.logicalDate.unixMicroseconds
        dataIntervalStartUnixUs = grant.dataInterval.start.unixMicroseconds
        dataIntervalEndUnixUs = grant.dataInterval.end.unixMicroseconds
    }
}

extension AgentV1.LeaseRevoke {
    init(leaseID: String, epoch: UInt64, reason: RevokeReason) {
        self.init()
        self.leaseID = leaseID
        self.epoch = epoch
        self.reason = switch reason {
        case .cancelled: .cancelled
        case .expired: .expired
        case .superseded: .superseded
        case .unknownLease: .unknownLease
        }
    }
}

extension TaskReport {
    /// The scheduler's view of an agent's event. An UNSPECIFIED kind becomes a report
    /// the scheduler rejects (and so acknowledges without applying).
    init(_ event: AgentV1.TaskEvent) {
        let usage = AttemptUsage(
            exitCode: { if case .exitCode(let code)? = event.exitStatus?.status { code } else { nil } }(),
            signal: { if case .signal(let signal)? = event.exitStatus?.status { signal } else { nil } }(),
            userCPUMilliseconds: event.resourceUsage?.userCpuMs ?? 0,
            systemCPUMilliseconds: event.resourceUsage?.systemCpuMs ?? 0,
            maxRSSKiB: event.resourceUsage?.maxRssKib ?? 0)
        let outcome: AttemptOutcome
        switch event.kind {
        case .started:
            let at = event.startedAtUnixUs != 0 ? event.startedAtUnixUs : event.occurredAtUnixUs
            self.init(leaseID: event.leaseID, epoch: event.epoch, kind: .started(at: Instant(millisecondsSinceEpoch: at / 1000)))
            return
        case .succeeded: outcome = .succeeded
        case .failed: outcome = .failed
        case .timedOut: outcome = .timedOut
        case .cancelled: outcome = .cancelled
        case .rejected: outcome = .rejected
        case .lost: outcome = .lost
        default: outcome = .running  // refused by the scheduler as an invalid report
        }
        self.init(leaseID: event.leaseID, epoch: event.epoch, kind: .finished(outcome, usage, message: String(event.message.prefix(1024))))
    }
}

extension ControlV1.Pool {
    init(_ status: PoolStatus) {
        self.init()
        name = status.pool.name
        slots = UInt32(clamping: status.pool.slots)
        used = UInt32(clamping: status.used)
        waiting = UInt32(clamping: status.waiting)
        updatedAtUnixUs = status.pool.updatedAt.unixMicroseconds
    }
}
