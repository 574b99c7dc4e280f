// Run and task-instance progression: creating runs, trigger rules, finishing.
extension Scheduler {
    func createRun(_ entry: DAGEntry, trigger: RunTrigger, logicalDate: Instant, dataInterval: DataInterval?,
                   params: [String: String], idempotencyKey: String? = nil, note: String = "", now: Instant,
                   backfill: (id: String, maxActiveRuns: Int)? = nil) -> RunRecord {
        entry.record.runCount += 1
        let spec = entry.latestSpec
        let runID = "\(spec.dagID)-\(entry.record.runCount)"
        var record = RunRecord(runID: runID, dagID: spec.dagID, version: entry.record.latestVersion, number: entry.record.runCount,
                               state: .queued, trigger: trigger, logicalDate: logicalDate, dataInterval: dataInterval,
                               params: params, idempotencyKey: idempotencyKey, note: note, createdAt: now,
                               backfillID: backfill?.id, backfillMaxActiveRuns: backfill?.maxActiveRuns ?? 0)
        record.deadlineAt = spec.deadline?.instant(createdAt: now, intervalEnd: record.dataInterval.end)
        var tasks: [String: TaskInstanceRecord] = [:]
        tasks.reserveCapacity(spec.tasks.count)
        for task in spec.tasks {
            tasks[task.id] = TaskInstanceRecord(key: TaskKey(runID: runID, taskID: task.id), state: .scheduled)
        }
        let run = ActiveRun(record: record, spec: spec, tasks: tasks)
        runs[runID] = run
        if let deadline = record.deadlineAt { armDeadline(run, at: deadline) }
        output.changes.append(.dag(entry.record))
        output.changes.append(.run(record))
        for task in spec.tasks { output.changes.append(.task(tasks[task.id]!)) }
        entry.waitingRuns.append(runID)
        startQueuedRuns(entry)
        return run.record
    }

    /// Starts waiting runs, oldest first, while the DAG is unpaused and under its
    /// max_active_runs.
    func startQueuedRuns(_ entry: DAGEntry) {
        let now = clock.now()
        var index = 0
        while !entry.record.paused, index < entry.waitingRuns.count, entry.runningCount < entry.latestSpec.maxActiveRuns {
            let run = runs[entry.waitingRuns[index]]!
            // A backfill at its own limit holds back its runs, not those behind them.
            if let backfillID = run.record.backfillID {
                guard backfillRunning[run.record.dagID]?[backfillID] ?? 0 < run.record.backfillMaxActiveRuns else {
                    index += 1
                    continue
                }
                backfillRunning[run.record.dagID, default: [:]][backfillID, default: 0] += 1
            }
            entry.waitingRuns.remove(at: index)
            entry.runningCount += 1
            run.record.state = try! run.record.state.transition(to: .running)
            run.record.startedAt = now
            output.changes.append(.run(run.record))
            if let timeout = run.dagSpec.runTimeoutMilliseconds {
                arm(.runTimeout(runID: run.record.runID, createdAt: run.record.createdAt), at: now.adding(milliseconds: timeout))
            }
            for task in run.dagSpec.tasks where task.dependsOn.isEmpty || task.triggerRule == .always {
                evaluate(run, task.id, now: now)
            }
            // Tasks cancelled while the run waited count as finished upstreams now.
            settle(run, after: run.dagSpec.tasks.map(\.id).filter { run.tasks[$0]!.state.isFinal }, now: now)
        }
    }

    /// Applies the trigger rule of a scheduled task; returns true if that made it final.
    @discardableResult
    func evaluate(_ run: ActiveRun, _ taskID: String, now: Instant) -> Bool {
        guard run.tasks[taskID]!.state == .scheduled else { return false }
        var summary = UpstreamSummary()
        for parent in run.upstream[taskID]! {
            summary.total += 1
            summary.count(run.tasks[parent]!.state)
        }
        switch run.specs[taskID]!.triggerRule.decide(summary) {
        case .wait: return false
        case .run: makeReady(run, taskID, now: now); return false
        case .skip: markFinal(run, taskID, .skipped, now: now); return true
        case .upstreamFailed: markFinal(run, taskID, .upstreamFailed, now: now); return true
        }
    }

    /// Re-evaluates everything downstream of tasks that just reached a final state, and
    /// finishes the run once every task has.
    func settle(_ run: ActiveRun, after finished: [String], now: Instant) {
        guard run.record.state == .running else { return }  // a waiting run settles when it starts
        var work = finished
        while let taskID = work.popLast() {
            for child in run.downstream[taskID] ?? [] where evaluate(run, child, now: now) {
                work.append(child)
            }
        }
        guard run.unfinished == 0, !run.record.state.isFinal else { return }
        let failed = run.tasks.values.contains { [.failed, .upstreamFailed, .cancelled].contains($0.state) }
        finishRun(run, as: failed ? .failed : .success, now: now)
    }

    func makeReady(_ run: ActiveRun, _ taskID: String, now: Instant) {
        var task = run.tasks[taskID]!
        task.state = try! task.state.transition(to: .queued)
        task.readyAt = now
        task.nextTryAt = nil
        run.tasks[taskID] = task
        output.changes.append(.task(task))
        let spec = run.specs[taskID]!
        dispatcher.enqueue(task.key, dagID: run.record.dagID, queue: spec.queue, entrypoint: spec.entrypoint,
                           priority: spec.priority, pool: spec.poolClaim, readyAt: now)
        if let timeout = spec.queueTimeoutMilliseconds {
            arm(.queueTimeout(task.key, readyAt: now), at: now.adding(milliseconds: timeout))
        }
    }

    /// - Parameter callbackReason: what a failure callback is told, when not `reason` (the
    ///   failed attempt's message).
    func markFinal(_ run: ActiveRun, _ taskID: String, _ state: TaskState, now: Instant, reason: String = "",
                   callbackReason: String? = nil) {
        var task = run.tasks[taskID]!
        task.state = try! task.state.transition(to: state)
        task.finishedAt = now
        task.nextTryAt = nil
        task.reason = reason
        run.tasks[taskID] = task
        run.unfinished -= 1
        output.changes.append(.task(task))
        startTaskCallback(run, taskID, state, reason: callbackReason ?? reason, now: now)
    }

    /// Cancels one unfinished task: out of its queue, or its lease revoked.
    func cancelTask(_ run: ActiveRun, _ taskID: String, now: Instant, reason: String = "") {
        let task = run.tasks[taskID]!
        if task.state == .queued { dispatcher.remove(task.key) }
        if let lease = task.lease, var live = leases[lease.leaseID], live.record.revoked == nil {
            live.record.revoked = .cancelled
            leases[lease.leaseID] = live
            run.tasks[taskID]!.lease = live.record
            output.effects.append(.revoke(agentID: lease.agentID, leaseID: lease.leaseID, epoch: lease.epoch, reason: .cancelled))
        }
        markFinal(run, taskID, .cancelled, now: now, reason: reason)
    }

    func finishRun(_ run: ActiveRun, as state: RunState, now: Instant) {
        let wasRunning = run.record.state == .running
        run.record.state = try! run.record.state.transition(to: state)
        run.record.finishedAt = now
        output.changes.append(.run(run.record))
        runs[run.record.runID] = nil
        startRunCallback(run, state, now: now)
        guard let entry = dags[run.record.dagID] else { return }
        if wasRunning {
            if let backfillID = run.record.backfillID { backfillRunning[run.record.dagID]?[backfillID]? -= 1 }
            entry.runningCount -= 1
        } else {
            entry.waitingRuns.removeAll { $0 == run.record.runID }
        }
        startQueuedRuns(entry)
        // A catch-up DAG's backlog waits for a free place; this may be it.
        if entry.latestSpec.catchup, entry.nextFireAt == nil { catchUp(entry, now: now) }
    }
}
