import TetherSyntax

// Callbacks, deadlines and deleting a DAG.
//
// A callback is an entrypoint the DAG names (`on_failure: notify`) run as a task instance
// of its own, `<kind>.<n>` in its run, on an agent of the right queue: the agent maps the
// name to a command, so webhook URLs and tokens never reach the server. It goes through
// the same lease path as any task (fencing epochs, at most one execution, a lost attempt
// re-queued without counting), runs once (no retries of its own), and never changes the
// run it reports on: a run is finished when its tasks are, and its callbacks run after,
// as Airflow's do. Callbacks outlive their run's active state, so they are kept apart
// from `runs` (in `callbacks`) and stored in a table of their own.
extension Scheduler {
    // MARK: Starting callbacks

    /// Starts a callback for `run` if `entrypoint` is set: queued at once on `queue`.
    func startCallback(_ kind: CallbackKind, entrypoint: String, queue: String, run: ActiveRun, taskID: String = "",
                       state: String, attempt: Int? = nil, reason: String, now: Instant) {
        guard !entrypoint.isEmpty else { return }
        run.record.callbackCount += 1
        let key = TaskKey(runID: run.record.runID, taskID: "\(kind.rawValue).\(run.record.callbackCount)")
        var params: [String: String] = [
            "callback": kind.rawValue, "dag_id": run.record.dagID, "dag_version": String(run.record.version),
            "run_id": run.record.runID, "state": state, "reason": reason,
            "logical_date": UTCTimestamp.format(unixMicroseconds: run.record.logicalDate.millisecondsSinceEpoch &* 1000),
            "data_interval_start": UTCTimestamp.format(unixMicroseconds: run.record.dataInterval.start.millisecondsSinceEpoch &* 1000),
            "data_interval_end": UTCTimestamp.format(unixMicroseconds: run.record.dataInterval.end.millisecondsSinceEpoch &* 1000),
        ]
        if !taskID.isEmpty { params["task_id"] = taskID }
        if let attempt { params["attempt"] = String(attempt) }
        if let deadline = run.record.deadlineAt, kind == .onDeadlineMiss {
            params["deadline"] = UTCTimestamp.format(unixMicroseconds: deadline.millisecondsSinceEpoch &* 1000)
        }
        // A reason is an attempt's message or the server's: short, but bound it anyway.
        if let value = params["reason"], value.utf8.count > DAGSpecLimits.maxParamValueBytes {
            var cut = ""  // whole characters only, so the cut never splits one
            for character in value {
                guard cut.utf8.count + character.utf8.count <= DAGSpecLimits.maxParamValueBytes - 3 else { break }
                cut.append(character)
            }
            params["reason"] = cut + "..."
        }
        let record = CallbackRecord(
            instance: TaskInstanceRecord(key: key, state: .queued, readyAt: now), kind: kind, dagID: run.record.dagID,
            dagVersion: run.record.version, taskID: taskID, entrypoint: entrypoint, queue: queue, params: params,
            logicalDate: run.record.logicalDate, dataInterval: run.record.dataInterval, createdAt: now)
        callbacks[key] = record
        output.changes.append(.run(run.record))
        output.changes.append(.callback(record))
        dispatcher.enqueue(key, dagID: record.dagID, queue: queue, entrypoint: entrypoint, priority: 0, pool: nil, readyAt: now)
    }

    /// The task callback for a task that just reached `state`, if its spec names one.
    func startTaskCallback(_ run: ActiveRun, _ taskID: String, _ state: TaskState, reason: String, now: Instant) {
        let kind: CallbackKind
        switch state {
        case .success: kind = .onSuccess
        case .failed: kind = .onFailure
        case .upForRetry: kind = .onRetry
        default: return
        }
        guard let spec = run.specs[taskID] else { return }
        let entrypoint = kind == .onSuccess ? spec.onSuccess : kind == .onFailure ? spec.onFailure : spec.onRetry
        guard !entrypoint.isEmpty, let task = run.tasks[taskID] else { return }
        startCallback(kind, entrypoint: entrypoint, queue: spec.queue, run: run, taskID: taskID, state: state.rawValue,
                      attempt: task.tries, reason: reason, now: now)
    }

    /// The run callback for a run that just finished as `state`.
    func startRunCallback(_ run: ActiveRun, _ state: RunState, now: Instant) {
        let entrypoint: String, kind: CallbackKind
        switch state {
        case .success: (kind, entrypoint) = (.onSuccess, run.dagSpec.onSuccess)
        case .failed: (kind, entrypoint) = (.onFailure, run.dagSpec.onFailure)
        default: return
        }
        guard !entrypoint.isEmpty else { return }
        let failed = run.dagSpec.tasks.map(\.id).filter { [.failed, .upstreamFailed, .cancelled].contains(run.tasks[$0]?.state) }
        let reason = state == .failed && !failed.isEmpty ? "failed tasks: " + failed.joined(separator: ", ") : ""
        startCallback(kind, entrypoint: entrypoint, queue: run.dagSpec.callbackQueue, run: run, state: state.rawValue,
                      reason: reason, now: now)
    }

    // MARK: Leasing callbacks

    /// Grants a queued callback to `agentID`, as `grant` does a task.
    func grantCallback(_ ready: LeaseDispatcher.ReadyTask, to agentID: String) {
        let now = clock.now()
        var callback = callbacks[ready.key]!
        var task = callback.instance
        let (leaseID, attempt) = startAttempt(&task, agentID: agentID, dagID: callback.dagID, queue: callback.queue, pool: nil, now: now)
        callback.instance = task
        callbacks[ready.key] = callback
        output.changes.append(.callback(callback))
        output.changes.append(.attempt(attempt))
        output.effects.append(.grant(LeaseGrant(
            agentID: agentID, leaseID: leaseID, epoch: task.epoch, key: task.key, dagID: callback.dagID,
            dagVersion: callback.dagVersion, entrypoint: callback.entrypoint, params: callback.params, timeoutMilliseconds: nil,
            attempt: task.tries, grantedAt: now, readyAt: ready.readyAt, logicalDate: callback.logicalDate,
            dataInterval: callback.dataInterval)))
    }

    /// Ends a callback's attempt (its lease already released): done on success or
    /// failure (a callback is not retried), queued again after a lost or rejected attempt
    /// within the infrastructure budget.
    func endCallbackAttempt(_ live: LiveLease, _ outcome: AttemptOutcome, now: Instant) {
        var attempt = live.attempt
        guard var callback = callbacks[live.key], callback.instance.lease?.leaseID == live.record.leaseID else {
            output.changes.append(.attempt(attempt))
            return
        }
        var task = callback.instance
        task.lease = nil
        let infrastructure = outcome == .lost || outcome == .rejected
        if infrastructure { task.infrastructureAttempts += 1 }
        let outOfBudget = infrastructure && task.infrastructureAttempts >= configuration.maxInfrastructureAttempts
        if outOfBudget {
            attempt.message += "; the callback fails: \(task.infrastructureAttempts) of its attempts ended lost or rejected"
        }
        output.changes.append(.attempt(attempt))
        if infrastructure && !outOfBudget {
            task.state = try! task.state.transition(to: .upForRetry)
            let delay = outcome == .rejected ? Self.rejectionBackoff(afterInfrastructureAttempts: task.infrastructureAttempts) : 0
            task.nextTryAt = now.adding(milliseconds: delay)
            callback.instance = task
            callbacks[live.key] = callback
            if delay > 0 {
                output.changes.append(.callback(callback))
                arm(.retry(task.key), at: task.nextTryAt!)
            } else {
                readyCallback(live.key, now: now)
            }
            return
        }
        task.state = try! task.state.transition(to: outcome == .succeeded ? .success : .failed)
        task.finishedAt = now
        task.reason = outcome == .succeeded ? "" : attempt.message
        callback.instance = task
        callbacks[live.key] = nil
        output.changes.append(.callback(callback))
    }

    /// Queues an up_for_retry callback again.
    func readyCallback(_ key: TaskKey, now: Instant) {
        guard var callback = callbacks[key] else { return }
        callback.instance.state = try! callback.instance.state.transition(to: .queued)
        callback.instance.readyAt = now
        callback.instance.nextTryAt = nil
        callbacks[key] = callback
        output.changes.append(.callback(callback))
        dispatcher.enqueue(key, dagID: callback.dagID, queue: callback.queue, entrypoint: callback.entrypoint, priority: 0,
                           pool: nil, readyAt: now)
    }

    /// Callbacks not yet finished, oldest first.
    public var pendingCallbacks: [CallbackRecord] {
        callbacks.values.sorted { ($0.createdAt, $0.key) < ($1.createdAt, $1.key) }
    }

    /// The unfinished callbacks of a run, by id.
    public func pendingCallbacks(ofRun runID: String) -> [CallbackRecord] {
        pendingCallbacks.filter { $0.key.runID == runID }
    }

    // MARK: Deadlines

    /// Records the run's deadline and arms it (a run created or started again).
    func armDeadline(_ run: ActiveRun, at instant: Instant) {
        guard run.record.deadlineMissedAt == nil else { return }
        arm(.deadline(runID: run.record.runID, createdAt: run.record.createdAt), at: instant)
    }

    func fireDeadline(runID: String, createdAt: Instant, now: Instant) {
        guard let run = runs[runID], run.record.createdAt == createdAt, run.record.deadlineAt != nil,
              run.record.deadlineMissedAt == nil else { return }
        run.record.deadlineMissedAt = now
        output.changes.append(.run(run.record))
        let unfinished = run.dagSpec.tasks.map(\.id).filter { !(run.tasks[$0]?.state.isFinal ?? true) }
        let reason = run.record.state == .queued ? "the run has not started (\(waitReason(ofRun: runID) ?? "waiting"))"
            : "unfinished tasks: " + unfinished.joined(separator: ", ")
        startCallback(.onDeadlineMiss, entrypoint: run.dagSpec.onDeadlineMiss, queue: run.dagSpec.callbackQueue, run: run,
                      state: run.record.state.rawValue, reason: reason, now: now)
    }

    // MARK: Deleting a DAG

    /// Deletes the DAG: its versions, runs, task instances, attempts and callbacks are
    /// removed from memory and store; its schedule never fires again; pools are left as
    /// they are. A later apply of the same id starts afresh (version 1, run 1). Leased
    /// tasks and callbacks get revokes; their agents' late reports change nothing.
    /// Returns the ids of the active runs that were cancelled with it.
    ///
    /// - Throws: `unknownDAG`; `notFinished` while the DAG has queued or running runs,
    ///   unless `cancelRuns`.
    @discardableResult
    public func deleteDAG(_ dagID: String, cancelRuns: Bool) throws(SchedulerError) -> [String] {
        guard dags[dagID] != nil else { throw .unknownDAG(dagID) }
        let active = runs.values.filter { $0.record.dagID == dagID }.map(\.record.runID).sorted()
        if !active.isEmpty && !cancelRuns {
            throw .notFinished("DAG '\(dagID)' has \(active.count) unfinished run(s) (\(active.prefix(5).joined(separator: ", "))"
                               + "\(active.count > 5 ? ", ..." : "")): cancel them first, or delete with cancel_runs")
        }
        for runID in active {
            let run = runs.removeValue(forKey: runID)!
            for task in run.tasks.values where task.state == .queued { dispatcher.remove(task.key) }
        }
        for callback in callbacks.values where callback.dagID == dagID {
            if callback.instance.state == .queued { dispatcher.remove(callback.key) }
            callbacks[callback.key] = nil
        }
        // Leases stay until their agents report or they expire, holding their slots; the
        // revoke stops the task, and nothing of the attempt is written any more.
        for (leaseID, var live) in leases where live.dagID == dagID {
            live.orphaned = true
            if live.record.revoked == nil {
                live.record.revoked = .cancelled
                output.effects.append(.revoke(agentID: live.record.agentID, leaseID: leaseID, epoch: live.record.epoch,
                                              reason: .cancelled))
            }
            leases[leaseID] = live
        }
        dags[dagID] = nil
        backfilled[dagID] = nil
        backfillRunning[dagID] = nil
        idempotencyKeys = idempotencyKeys.filter { $0.key.dagID != dagID }
        dispatcher.setLimit(dagID: dagID, maxActiveTasks: 0)
        output.changes.append(.dagRemoved(dagID: dagID))
        dispatch()
        return active
    }
}
