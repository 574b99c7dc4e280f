// Rebuilding the in-memory state from a stored snapshot.
//
// Stored deadlines are wall-clock instants, and the wall clock may have been stepped
// while the server was down; durations, though, must hold. So each is re-based on the
// new start: a lease gets exactly a TTL, a retry waits at most its own delay (or the
// rejection backoff), and an execution-timeout backstop fires between one grace and a
// whole timeout plus grace from now. Cron is the exception: it resumes after the last
// instant it ran, so no interval runs twice after a step back.
extension Scheduler {
    func restore(_ snapshot: SchedulerSnapshot) {
        let now = clock.now()
        agentSequences = snapshot.agentSequences
        idempotencyKeys = snapshot.idempotencyKeys
        for pool in snapshot.pools {
            pools[pool.name] = pool
            dispatcher.setPool(pool.name, size: pool.slots)
        }
        for record in snapshot.dags { dags[record.dagID] = DAGEntry(record: record) }
        for version in snapshot.versions {
            guard let entry = dags[version.dagID] else { continue }
            entry.versions[version.version] = version
            if version.version == entry.record.latestVersion {
                entry.setLatest(version)
                dispatcher.setLimit(dagID: version.dagID, maxActiveTasks: version.spec.maxActiveTasks)
            }
        }
        var tasksByRun: [String: [String: TaskInstanceRecord]] = [:]
        for task in snapshot.tasks { tasksByRun[task.key.runID, default: [:]][task.key.taskID] = task }
        let attempts = Dictionary(snapshot.liveAttempts.map { ($0.leaseID, $0) }, uniquingKeysWith: { $1 })

        // Queued tasks go back to their queues after every lease is counted, so none is let
        // into a pool the leases already fill.
        var queuedTasks: [(TaskInstanceRecord, RunRecord, TaskSpec)] = []
        for record in snapshot.activeRuns.sorted(by: { ($0.dagID, $0.number) < ($1.dagID, $1.number) }) {
            guard let entry = dags[record.dagID], let version = entry.versions[record.version] else { continue }
            let run = ActiveRun(record: record, spec: version.spec, tasks: tasksByRun[record.runID] ?? [:])
            runs[record.runID] = run
            if record.state == .running { entry.runningCount += 1 } else { entry.waitingRuns.append(record.runID) }
            if record.state == .running, let backfillID = record.backfillID {
                backfillRunning[record.dagID, default: [:]][backfillID, default: 0] += 1
            }
            // A deadline after creation is a duration: at most that long from now. A time of
            // day is a wall-clock instant and stays one.
            if let deadline = record.deadlineAt, record.deadlineMissedAt == nil {
                if case .afterCreation(let milliseconds)? = version.spec.deadline {
                    armDeadline(run, at: min(deadline, now.adding(milliseconds: milliseconds)))
                } else {
                    armDeadline(run, at: deadline)
                }
            }
            // Queued tasks in their original readiness order.
            for task in run.tasks.values.sorted(by: { ($0.readyAt ?? now, $0.key) < ($1.readyAt ?? now, $1.key) }) {
                let spec = run.specs[task.key.taskID]!
                switch task.state {
                case .queued:
                    queuedTasks.append((task, record, spec))
                case .upForRetry:
                    let ownTries = task.ownTries
                    let longest = max(spec.retry.delay(beforeRetry: max(1, ownTries)),
                                      Self.rejectionBackoff(afterInfrastructureAttempts: task.infrastructureAttempts))
                    let due = min(task.nextTryAt ?? now, now.adding(milliseconds: longest))
                    if due != task.nextTryAt {
                        run.tasks[task.key.taskID]!.nextTryAt = due
                        output.changes.append(.task(run.tasks[task.key.taskID]!))
                    }
                    arm(.retry(task.key), at: due)
                default:
                    break
                }
                guard var lease = task.lease else { continue }
                // Renewals are stored coarsely and the server was down for a while: every
                // lease gets a full TTL from now for its agent to come back and resume it.
                let extended = now.adding(milliseconds: configuration.leaseTTLMilliseconds)
                if extended != lease.expiresAt {
                    lease.expiresAt = extended
                    run.tasks[task.key.taskID]!.lease = lease
                    output.changes.append(.task(run.tasks[task.key.taskID]!))
                }
                let attempt = attempts[lease.leaseID]
                    ?? AttemptRecord(key: task.key, attempt: lease.attempt, leaseID: lease.leaseID, epoch: lease.epoch,
                                     agentID: lease.agentID, outcome: .running, grantedAt: lease.grantedAt)
                leases[lease.leaseID] = LiveLease(record: lease, dagID: record.dagID, queue: spec.queue, pool: spec.poolClaim,
                                                  attempt: attempt)
                leasesByAgent[lease.agentID, default: []].insert(lease.leaseID)
                dispatcher.occupy(agentID: lease.agentID, dagID: record.dagID, queue: spec.queue, pool: spec.poolClaim)
                // Leases past their TTL expire at the first tick; the rest wait for their agent.
                arm(.leaseExpiry(leaseID: lease.leaseID), at: lease.expiresAt)
                if lease.revoked == nil, let timeout = spec.executionTimeoutMilliseconds {
                    let grace = configuration.timeoutGraceMilliseconds
                    let due = lease.grantedAt.adding(milliseconds: timeout + grace)
                    arm(.executionTimeout(leaseID: lease.leaseID),
                        at: min(max(due, now.adding(milliseconds: grace)), now.adding(milliseconds: timeout + grace)))
                }
            }
        }
        // Unfinished callbacks: queued ones back in their queues, leased ones waiting for their
        // agents as tasks' leases do, up_for_retry ones (rejected) within their backoff.
        for var callback in snapshot.callbacks.sorted(by: { ($0.createdAt, $0.key) < ($1.createdAt, $1.key) })
        where dags[callback.dagID] != nil && !callback.instance.state.isFinal {
            let key = callback.key
            if var lease = callback.instance.lease {
                lease.expiresAt = now.adding(milliseconds: configuration.leaseTTLMilliseconds)
                callback.instance.lease = lease
                let attempt = attempts[lease.leaseID]
                    ?? AttemptRecord(key: key, attempt: lease.attempt, leaseID: lease.leaseID, epoch: lease.epoch,
                                     agentID: lease.agentID, outcome: .running, grantedAt: lease.grantedAt)
                leases[lease.leaseID] = LiveLease(record: lease, dagID: callback.dagID, queue: callback.queue, pool: nil, attempt: attempt)
                leasesByAgent[lease.agentID, default: []].insert(lease.leaseID)
                dispatcher.occupy(agentID: lease.agentID, dagID: callback.dagID, queue: callback.queue, pool: nil)
                arm(.leaseExpiry(leaseID: lease.leaseID), at: lease.expiresAt)
                callbacks[key] = callback
                output.changes.append(.callback(callback))
                continue
            }
            callbacks[key] = callback
            switch callback.instance.state {
            case .queued:
                dispatcher.enqueue(key, dagID: callback.dagID, queue: callback.queue, entrypoint: callback.entrypoint, priority: 0,
                                   pool: nil, readyAt: callback.instance.readyAt ?? now)
            case .upForRetry:
                let longest = Self.rejectionBackoff(afterInfrastructureAttempts: callback.instance.infrastructureAttempts)
                arm(.retry(key), at: min(callback.instance.nextTryAt ?? now, now.adding(milliseconds: longest)))
            default:
                // Running without a lease cannot be stored; queue it again.
                callback.instance.state = .queued
                callbacks[key] = callback
                dispatcher.enqueue(key, dagID: callback.dagID, queue: callback.queue, entrypoint: callback.entrypoint, priority: 0,
                                   pool: nil, readyAt: now)
            }
        }
        for (task, record, spec) in queuedTasks {
            let readyAt = task.readyAt ?? now
            dispatcher.enqueue(task.key, dagID: record.dagID, queue: spec.queue, entrypoint: spec.entrypoint,
                               priority: spec.priority, pool: spec.poolClaim, readyAt: readyAt)
            // Re-based: at most a whole timeout from now, whatever the wall clock did.
            if let timeout = spec.queueTimeoutMilliseconds {
                arm(.queueTimeout(task.key, readyAt: readyAt),
                    at: min(readyAt.adding(milliseconds: timeout), now.adding(milliseconds: timeout)))
            }
        }
        for run in runs.values where run.record.state == .running {
            if let timeout = run.dagSpec.runTimeoutMilliseconds {
                let startedAt = run.record.startedAt ?? now
                arm(.runTimeout(runID: run.record.runID, createdAt: run.record.createdAt),
                    at: min(startedAt.adding(milliseconds: timeout), now.adding(milliseconds: timeout)))
            }
        }
        for entry in dags.values.sorted(by: { $0.record.dagID < $1.record.dagID }) {
            // A schedule instant missed while down fires once, at the first tick. Instants
            // before the last unpause (or apply) do not: unpausing does not catch up. A
            // catch-up DAG is owed every instant since its last scheduled one.
            if entry.latestSpec.catchup {
                startQueuedRuns(entry)
                catchUp(entry, now: now)
            } else {
                let since = [entry.record.lastScheduledAt, entry.record.updatedAt].compactMap { $0 }.max() ?? now
                armCron(entry, after: since)
                startQueuedRuns(entry)
            }
        }
    }
}
