import TetherSyntax

// Leases: grants, agent sessions, reports, expiry and timeouts.

/// What an agent announces when its stream opens.
public struct AgentRegistration: Hashable, Sendable {
    public var agentID: String
    public var queues: Set<String>
    public var entrypoints: Set<String>
    public var slots: Int
    /// Leases the agent still runs and wants to keep.
    public var resumingLeaseIDs: [String]
    /// The host's id for this stream; an `endSession` effect names it, so a newer stream
    /// of the same agent is never ended for an older one's silence.
    public var session: UInt64

    public init(agentID: String, queues: Set<String>, entrypoints: Set<String>, slots: Int, resumingLeaseIDs: [String] = [],
                session: UInt64 = 0) {
        self.agentID = agentID
        self.queues = queues
        self.entrypoints = entrypoints
        self.slots = slots
        self.resumingLeaseIDs = resumingLeaseIDs
        self.session = session
    }
}

/// The scheduler's answer to a registration.
public struct AgentWelcome: Hashable, Sendable {
    /// Resumed leases that stand; every other resumed lease got a revoke.
    public var confirmedLeaseIDs: [String]
    /// The highest event sequence already applied for this agent.
    public var appliedSequence: UInt64
}

/// One event an agent reports about one of its leases.
public struct TaskReport: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// The process started, at the agent's clock.
        case started(at: Instant)
        /// The attempt ended.
        case finished(AttemptOutcome, AttemptUsage, message: String)
    }

    public var leaseID: String
    public var epoch: UInt64
    public var kind: Kind

    public init(leaseID: String, epoch: UInt64, kind: Kind) {
        self.leaseID = leaseID
        self.epoch = epoch
        self.kind = kind
    }
}

/// What became of a report.
public enum ReportResult: Equatable, Sendable {
    case applied
    /// Its sequence number was applied before: nothing changed.
    case duplicate
    /// Refused (stale epoch, unknown lease, another agent's lease, ...): nothing changed
    /// but the agent's sequence, so the agent can drop the event.
    case rejected(SchedulerError)
}

extension Scheduler {
    // MARK: Agents

    /// An agent's stream opened. Its resumed leases that still stand are confirmed and
    /// renewed; the rest get revokes. Leases the scheduler holds for it that it did not
    /// resume are lost (it restarted without them) and fail as `lost` now.
    public func agentConnected(_ registration: AgentRegistration) -> AgentWelcome {
        let now = clock.now()
        let agentID = registration.agentID
        var confirmed: [String] = []
        let resuming = Set(registration.resumingLeaseIDs)
        for leaseID in registration.resumingLeaseIDs.sorted() {
            if let live = leases[leaseID], live.record.agentID == agentID, live.record.revoked == nil {
                confirmed.append(leaseID)
            } else if let live = leases[leaseID], live.record.agentID == agentID, let reason = live.record.revoked {
                output.effects.append(.revoke(agentID: agentID, leaseID: leaseID, epoch: live.record.epoch, reason: reason))
            } else {
                revokeForeign(leaseID, of: agentID)
            }
        }
        for leaseID in (leasesByAgent[agentID] ?? []).sorted() where !resuming.contains(leaseID) {
            endAttempt(leaseID, .lost, AttemptUsage(), message: "agent \(agentID) reconnected without this lease", now: now)
        }
        dispatcher.connect(agentID: agentID, queues: registration.queues, entrypoints: registration.entrypoints,
                           slots: registration.slots)
        agentLiveness[agentID] = AgentLiveness(session: registration.session, lastSeen: now)
        armSilenceTimer(agentID, at: now.adding(milliseconds: configuration.leaseTTLMilliseconds))
        renewLeases(of: agentID, now: now)
        dispatch()
        return AgentWelcome(confirmedLeaseIDs: confirmed, appliedSequence: agentSequences[agentID] ?? 0)
    }

    /// The agent's stream closed. It gets no new grants; its leases live until their
    /// TTL runs out, so it can reconnect and resume them.
    public func agentDisconnected(_ agentID: String) {
        agentLiveness[agentID] = nil
        dispatcher.disconnect(agentID: agentID)
    }

    /// A connected agent's sign of life: renews its leases, those in `activeLeaseIDs`
    /// (what the agent says it runs), or all of them when it is nil, to now + TTL. A
    /// lease the agent no longer mentions is left to expire, so a grant the agent never
    /// ran cannot stay "running" forever; a lease it names but does not hold (ended here,
    /// or never its own) gets a revoke. An agent that is not connected (never said Hello,
    /// or was found silent) renews nothing. Returns whether the heartbeat counted: only then
    /// may the agent be told its leases were renewed.
    @discardableResult
    public func heartbeat(agentID: String, activeLeaseIDs: [String]? = nil) -> Bool {
        guard agentLiveness[agentID] != nil else { return false }
        let now = clock.now()
        agentLiveness[agentID]!.lastSeen = now
        let active = activeLeaseIDs.map(Set.init)
        for leaseID in (active ?? []).sorted() where leases[leaseID]?.record.agentID != agentID {
            revokeForeign(leaseID, of: agentID)
        }
        renewLeases(of: agentID, now: now, only: active)
        return true
    }

    /// Whether the agent has a live stream the scheduler counts as alive.
    public func isConnected(_ agentID: String) -> Bool { agentLiveness[agentID] != nil }

    /// Tells `agentID` to stop `leaseID`, which it named but does not hold.
    private func revokeForeign(_ leaseID: String, of agentID: String) {
        let reason: RevokeReason = leases[leaseID] == nil && currentEpoch(ofLease: leaseID) != nil ? .superseded : .unknownLease
        output.effects.append(.revoke(agentID: agentID, leaseID: leaseID, epoch: Self.epoch(ofLease: leaseID) ?? 0, reason: reason))
    }

    /// The agent was silent for a lease TTL: it may be hung (SIGSTOP, a stalled disk), cut
    /// off, or dead with its connection still open. It gets no more grants and its stream
    /// is ended, so whatever was queued for it is withdrawn. Its leases are left to their
    /// own expiry, never ended earlier: the agent stops their tasks by then on its own.
    func agentSilent(_ agentID: String, now: Instant) {
        guard let liveness = agentLiveness.removeValue(forKey: agentID) else { return }
        dispatcher.disconnect(agentID: agentID)
        let silence = now.millisecondsSinceEpoch - liveness.lastSeen.millisecondsSinceEpoch
        output.effects.append(.endSession(agentID: agentID, session: liveness.session,
                                          reason: "no heartbeat from agent \(agentID) for \(silence) ms"))
    }

    private func armSilenceTimer(_ agentID: String, at instant: Instant) {
        guard !silenceTimers.contains(agentID) else { return }
        silenceTimers.insert(agentID)
        arm(.agentSilence(agentID: agentID), at: instant)
    }

    /// Applies an agent's report once. Sequence numbers must grow; a number seen before
    /// is a duplicate and changes nothing.
    public func report(agentID: String, sequence: UInt64, _ report: TaskReport) -> ReportResult {
        if sequence <= agentSequences[agentID] ?? 0 { return .duplicate }
        agentSequences[agentID] = sequence
        output.changes.append(.agentSequence(agentID: agentID, sequence: sequence))
        let now = clock.now()
        guard let live = leases[report.leaseID] else {
            if let current = currentEpoch(ofLease: report.leaseID), current != report.epoch {
                return .rejected(.staleEpoch(leaseID: report.leaseID, reported: report.epoch, current: current))
            }
            return .rejected(.unknownLease(report.leaseID))
        }
        guard live.record.agentID == agentID else {
            return .rejected(.notLeaseHolder(leaseID: report.leaseID, agentID: agentID))
        }
        guard live.record.epoch == report.epoch else {
            return .rejected(.staleEpoch(leaseID: report.leaseID, reported: report.epoch, current: live.record.epoch))
        }
        switch report.kind {
        case .started(let at):
            leases[report.leaseID]!.attempt.startedAt = at
            if !live.orphaned { output.changes.append(.attempt(leases[report.leaseID]!.attempt)) }
        case .finished(let outcome, let usage, let message):
            guard outcome != .running else {
                return .rejected(.invalidReport("a finished report needs a final outcome, not running"))
            }
            endAttempt(report.leaseID, live.timedOut ? .timedOut : outcome, usage, message: message, now: now)
        }
        dispatch()
        return .applied
    }

    // MARK: Grants

    /// Grants every ready task a free agent slot can take, now.
    func dispatch() {
        guard dispatcher.queuedCount > 0 else { return }
        while let (ready, agentID) = dispatcher.nextGrant() {
            grant(ready, to: agentID)
        }
    }

    private func grant(_ ready: LeaseDispatcher.ReadyTask, to agentID: String) {
        if !callbacks.isEmpty, callbacks[ready.key] != nil { return grantCallback(ready, to: agentID) }
        let now = clock.now()
        let run = runs[ready.key.runID]!
        let spec = run.specs[ready.key.taskID]!
        var task = run.tasks[ready.key.taskID]!
        let (leaseID, attempt) = startAttempt(&task, agentID: agentID, dagID: run.record.dagID, queue: spec.queue, pool: ready.pool,
                                              now: now)
        run.tasks[ready.key.taskID] = task
        output.changes.append(.task(task))
        output.changes.append(.attempt(attempt))
        if let timeout = spec.executionTimeoutMilliseconds {
            arm(.executionTimeout(leaseID: leaseID), at: now.adding(milliseconds: timeout + configuration.timeoutGraceMilliseconds))
        }
        var params = run.dagSpec.params.merging(spec.params) { $1 }
        for (name, value) in run.record.params where params[name] != nil { params[name] = value }
        output.effects.append(.grant(LeaseGrant(
            agentID: agentID, leaseID: leaseID, epoch: task.epoch, key: task.key, dagID: run.record.dagID, dagVersion: run.record.version,
            entrypoint: spec.entrypoint, params: params, timeoutMilliseconds: spec.executionTimeoutMilliseconds,
            attempt: task.tries, grantedAt: now, readyAt: ready.readyAt, logicalDate: run.record.logicalDate,
            dataInterval: run.record.dataInterval)))
    }

    /// Starts an attempt of `task` (a task's or a callback's) on `agentID`: running, one
    /// more try under a new epoch and lease, the live lease registered and its expiry armed.
    /// The caller stores `task` and appends its change, then the attempt's.
    func startAttempt(_ task: inout TaskInstanceRecord, agentID: String, dagID: String, queue: String, pool: PoolClaim?,
                      now: Instant) -> (leaseID: String, attempt: AttemptRecord) {
        task.state = try! task.state.transition(to: .running)
        task.tries += 1
        task.epoch += 1
        let leaseID = Self.leaseID(task.key, epoch: task.epoch, nonce: configuration.leaseIDNonce())
        let lease = LeaseRecord(leaseID: leaseID, agentID: agentID, epoch: task.epoch, attempt: task.tries, grantedAt: now,
                                expiresAt: now.adding(milliseconds: configuration.leaseTTLMilliseconds))
        task.lease = lease
        let attempt = AttemptRecord(key: task.key, attempt: task.tries, leaseID: leaseID, epoch: task.epoch, agentID: agentID,
                                    outcome: .running, grantedAt: now)
        leases[leaseID] = LiveLease(record: lease, dagID: dagID, queue: queue, pool: pool, attempt: attempt)
        leasesByAgent[agentID, default: []].insert(leaseID)
        arm(.leaseExpiry(leaseID: leaseID), at: lease.expiresAt)
        return (leaseID, attempt)
    }

    // MARK: Ending attempts

    /// Ends a live lease's attempt with `outcome`, frees its slot, and moves its task on:
    /// success, a retry, or failure.
    func endAttempt(_ leaseID: String, _ outcome: AttemptOutcome, _ usage: AttemptUsage, message: String, now: Instant) {
        guard var live = leases.removeValue(forKey: leaseID) else { return }
        leasesByAgent[live.record.agentID]?.remove(leaseID)
        if leasesByAgent[live.record.agentID]?.isEmpty == true { leasesByAgent[live.record.agentID] = nil }
        dispatcher.release(agentID: live.record.agentID, dagID: live.dagID, queue: live.queue, pool: live.pool)
        live.attempt.outcome = outcome
        live.attempt.finishedAt = now
        live.attempt.usage = usage
        // A timed-out attempt keeps the backstop's reason, followed by how it ended.
        if !live.timedOut {
            live.attempt.message = message
        } else if !message.isEmpty {
            live.attempt.message += "; then: \(message)"
        }
        if live.orphaned { return }  // its DAG was deleted: nothing of it is written
        if !callbacks.isEmpty, callbacks[live.key] != nil { return endCallbackAttempt(live, outcome, now: now) }

        guard let run = runs[live.key.runID], var task = run.tasks[live.key.taskID], task.lease?.leaseID == leaseID else {
            output.changes.append(.attempt(live.attempt))
            return
        }
        task.lease = nil
        run.tasks[live.key.taskID] = task
        guard task.state == .running else {
            output.changes.append(.attempt(live.attempt))
            output.changes.append(.task(task))  // cancelled earlier; its lease is now gone
            return
        }
        // Lost and rejected attempts are not the task's doing: they never use its retries.
        // They have a budget of their own, so a task that kills every agent it lands on (or
        // that no agent can start) ends instead of cycling forever; it ends failed, saying why.
        let infrastructure = outcome == .lost || outcome == .rejected
        if infrastructure {
            task.infrastructureAttempts += 1
            run.tasks[live.key.taskID] = task
        }
        let outOfBudget = infrastructure && task.infrastructureAttempts >= configuration.maxInfrastructureAttempts
        if outOfBudget {
            live.attempt.message += "; the task fails: \(task.infrastructureAttempts) of its attempts ended lost or rejected, "
                + "the server's limit for one task"
        }
        output.changes.append(.attempt(live.attempt))
        let ownTries = task.ownTries
        if outcome == .succeeded {
            markFinal(run, live.key.taskID, .success, now: now)
        } else if outOfBudget {
            markFinal(run, live.key.taskID, .failed, now: now, callbackReason: live.attempt.message)
        } else if infrastructure || ownTries <= run.specs[live.key.taskID]!.retry.retries {
            // An agent that vanished (lost) leaves at once; one that could not start the task
            // (rejected) backs off, so a broken agent cannot burn attempts in a tight loop.
            let delay = !infrastructure ? run.specs[live.key.taskID]!.retry.delay(beforeRetry: ownTries)
                : outcome == .rejected ? Self.rejectionBackoff(afterInfrastructureAttempts: task.infrastructureAttempts) : 0
            task.state = try! task.state.transition(to: .upForRetry)
            task.nextTryAt = now.adding(milliseconds: delay)
            run.tasks[live.key.taskID] = task
            // on_retry reports the task's own failures, not an agent that vanished.
            if !infrastructure { startTaskCallback(run, live.key.taskID, .upForRetry, reason: live.attempt.message, now: now) }
            if delay > 0 {
                output.changes.append(.task(task))
                arm(.retry(task.key), at: task.nextTryAt!)
            } else {
                makeReady(run, live.key.taskID, now: now)
            }
            return
        } else {
            markFinal(run, live.key.taskID, .failed, now: now, callbackReason: live.attempt.message)
        }
        settle(run, after: [live.key.taskID], now: now)
    }

    /// Extends the agent's leases to now + TTL, exactly: a lease lives a full TTL past its
    /// agent's last heartbeat that names it (an agent relies on that to know how long its
    /// tasks may run, see `HeartbeatAck`). The renewal is stored only once the stored
    /// expiry has aged by a quarter of the TTL, so heartbeats cost a write per lease at
    /// most four times per TTL; only a restart reads it, and gives a full TTL anyway.
    func renewLeases(of agentID: String, now: Instant, only: Set<String>? = nil) {
        let expiresAt = now.adding(milliseconds: configuration.leaseTTLMilliseconds)
        let stale = expiresAt.adding(milliseconds: -configuration.leaseTTLMilliseconds / 4)
        for leaseID in (leasesByAgent[agentID] ?? []).sorted() where only?.contains(leaseID) ?? true {
            guard var live = leases[leaseID], live.record.expiresAt < expiresAt else { continue }
            live.record.expiresAt = expiresAt
            let store = live.storedExpiresAt <= stale
            if store { live.storedExpiresAt = expiresAt }
            leases[leaseID] = live
            if store { storeLease(live) }
        }
    }

    /// Writes `live`'s record into its task instance (and the store), if the task still
    /// holds that lease.
    private func storeLease(_ live: LiveLease) {
        if var callback = callbacks[live.key], callback.instance.lease?.leaseID == live.record.leaseID {
            callback.instance.lease = live.record
            callbacks[live.key] = callback
            output.changes.append(.callback(callback))
            return
        }
        guard let run = runs[live.key.runID], run.tasks[live.key.taskID]?.lease?.leaseID == live.record.leaseID else { return }
        run.tasks[live.key.taskID]!.lease = live.record
        output.changes.append(.task(run.tasks[live.key.taskID]!))
    }

    // MARK: Timers

    func arm(_ kind: SchedulerTimer.Kind, at: Instant) {
        timerSequence += 1
        timers.insert(SchedulerTimer(at: at, sequence: timerSequence, kind: kind))
    }

    func fire(_ timer: SchedulerTimer, now: Instant) {
        switch timer.kind {
        case .retry(let key):
            if let callback = callbacks[key] {
                guard callback.instance.state == .upForRetry, let due = callback.instance.nextTryAt else { return }
                if due > now { return arm(.retry(key), at: due) }
                return readyCallback(key, now: now)
            }
            guard let run = runs[key.runID], let task = run.tasks[key.taskID], task.state == .upForRetry,
                  let due = task.nextTryAt else { return }
            if due > now { return arm(.retry(key), at: due) }
            makeReady(run, key.taskID, now: now)
        case .leaseExpiry(let leaseID):
            guard let live = leases[leaseID] else { return }
            if live.record.expiresAt > now { return arm(.leaseExpiry(leaseID: leaseID), at: live.record.expiresAt) }
            if live.record.revoked == nil {
                output.effects.append(.revoke(agentID: live.record.agentID, leaseID: leaseID, epoch: live.record.epoch, reason: .expired))
            }
            // No heartbeat named the lease for a TTL; if none came from its agent at all, the
            // agent is silent: it must not be handed the task again (nor anything else).
            if let liveness = agentLiveness[live.record.agentID],
               liveness.lastSeen.adding(milliseconds: configuration.leaseTTLMilliseconds) <= now {
                agentSilent(live.record.agentID, now: now)
            }
            let silence = now.millisecondsSinceEpoch - (live.record.expiresAt.millisecondsSinceEpoch - configuration.leaseTTLMilliseconds)
            let outcome: AttemptOutcome = live.timedOut ? .timedOut : live.record.revoked == nil ? .lost : .cancelled
            endAttempt(leaseID, outcome, AttemptUsage(),
                       message: "lease expired: no heartbeat from agent \(live.record.agentID) for \(silence) ms", now: now)
        case .executionTimeout(let leaseID):
            guard var live = leases[leaseID], live.record.revoked == nil else { return }
            // No report within the timeout and its grace. The agent may still run the task (it
            // is alive but did not enforce the timeout, or it is cut off), so the attempt ends,
            // and the task may go elsewhere, only when the agent reports or the lease expires.
            output.effects.append(.revoke(agentID: live.record.agentID, leaseID: leaseID, epoch: live.record.epoch, reason: .cancelled))
            live.record.revoked = .cancelled
            live.timedOut = true
            live.attempt.message = "no report from agent \(live.record.agentID) within execution_timeout + \(configuration.timeoutGraceMilliseconds) ms"
            leases[leaseID] = live
            storeLease(live)
        case .cron(let dagID):
            fireCron(dagID, timer: timer, now: now)
        case .agentSilence(let agentID):
            silenceTimers.remove(agentID)
            guard let liveness = agentLiveness[agentID] else { return }
            let due = liveness.lastSeen.adding(milliseconds: configuration.leaseTTLMilliseconds)
            if due > now { return armSilenceTimer(agentID, at: due) }
            agentSilent(agentID, now: now)
        case .queueTimeout(let key, let readyAt):
            guard let run = runs[key.runID], let task = run.tasks[key.taskID], task.state == .queued, task.readyAt == readyAt,
                  let timeout = run.specs[key.taskID]?.queueTimeoutMilliseconds else { return }
            let waited = waitReason(key).map { " (\($0))" } ?? ""
            dispatcher.remove(key)
            markFinal(run, key.taskID, .failed, now: now,
                      reason: "queued for its queue_timeout of \(DurationText.format(milliseconds: timeout)) without starting\(waited)")
            settle(run, after: [key.taskID], now: now)
        case .runTimeout(let runID, let createdAt):
            guard let run = runs[runID], run.record.createdAt == createdAt, run.record.state == .running,
                  let timeout = run.dagSpec.runTimeoutMilliseconds else { return }
            let reason = "the run's run_timeout of \(DurationText.format(milliseconds: timeout)) passed"
            for taskID in run.dagSpec.tasks.map(\.id) where !run.tasks[taskID]!.state.isFinal {
                cancelTask(run, taskID, now: now, reason: reason)
            }
            run.record.note += (run.record.note.isEmpty ? "" : "\n") + "failed: " + reason
            finishRun(run, as: .failed, now: now)
        case .deadline(let runID, let createdAt):
            fireDeadline(runID: runID, createdAt: createdAt, now: now)
        }
    }

    // MARK: Lease ids

    /// 1 s after a task's first infrastructure attempt, doubling to at most 30 s.
    static func rejectionBackoff(afterInfrastructureAttempts attempts: Int) -> Int64 {
        min(30_000, 1_000 << Int64(min(5, max(0, attempts - 1))))
    }

    /// "RUN/TASK/EPOCH-NONCE": readable for operators, unguessable by its nonce.
    static func leaseID(_ key: TaskKey, epoch: UInt64, nonce: UInt64) -> String {
        let hex = String(nonce, radix: 16)
        return "\(key.runID)/\(key.taskID)/\(epoch)-\(String(repeating: "0", count: 16 - hex.count))\(hex)"
    }

    /// The epoch a lease id names: its last path component, up to its nonce.
    static func epoch(ofLease leaseID: String) -> UInt64? {
        leaseID.split(separator: "/").last.flatMap { UInt64($0.prefix { $0 != "-" }) }
    }

    /// The current epoch of the task a lease id names, if that task is in an active run.
    func currentEpoch(ofLease leaseID: String) -> UInt64? {
        let parts = leaseID.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        if let callback = callbacks[TaskKey(runID: String(parts[0]), taskID: String(parts[1]))] { return callback.instance.epoch }
        guard let run = runs[String(parts[0])], let task = run.tasks[String(parts[1])] else { return nil }
        return task.epoch
    }
}
