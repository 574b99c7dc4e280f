import Testing
import TetherScheduler

@Suite struct LeaseTests {
    private func oneTask(_ configure: (inout TaskSpec) -> Void = { _ in }) throws -> (SchedulerHarness, RunRecord) {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["t"]) { task in
            task.entrypoint = "work"
            configure(&task)
        })
        return (h, try h.trigger("d"))
    }

    @Test func expiredLeaseIsOfferedToAnotherAgent() throws {
        let (h, run) = try oneTask { $0.retry = RetryPolicy(retries: 1) }
        h.connect("eu", entrypoints: ["work"])
        h.connect("us", entrypoints: ["work"])
        let first = h.grants[0]
        let other = first.agentID == "eu" ? "us" : "eu"
        h.scheduler.agentDisconnected(first.agentID)
        // Heartbeats from the other agent do not keep the first agent's lease alive.
        h.clock.advance(milliseconds: 6_000)
        h.scheduler.heartbeat(agentID: other)
        #expect(h.advance(3_999).isEmpty)
        let effects = h.advance(1)
        #expect(effects.contains(.revoke(agentID: first.agentID, leaseID: first.leaseID, epoch: 1, reason: .expired)))
        #expect(h.store.attempts(of: first.key).first?.outcome == .lost)
        // Retry delay 0: re-leased at once to the agent still there, with a higher epoch.
        let second = h.grants.last!
        #expect(second.agentID == other && second.epoch == 2 && second.attempt == 2)
        h.finish(second)
        #expect(h.runState(run.runID) == .success)
    }

    @Test func heartbeatsKeepALeaseAlivePastItsTTL() throws {
        let (h, run) = try oneTask()
        h.connect("a", entrypoints: ["work"])
        for _ in 0..<5 {
            h.clock.advance(milliseconds: 9_000)
            h.scheduler.heartbeat(agentID: "a")
            h.scheduler.tick()
            h.flush()
        }
        #expect(h.taskState(run.runID, "t") == .running)
        #expect(h.revokes.isEmpty)
        #expect(h.store.task(TaskKey(runID: run.runID, taskID: "t"))?.lease?.expiresAt == h.clock.now().adding(milliseconds: 10_000))
    }

    @Test func staleEpochReportIsRejectedAndChangesNothing() throws {
        let (h, run) = try oneTask { $0.retry = RetryPolicy(retries: 3) }
        h.connect("a", entrypoints: ["work"])
        let first = h.grants[0]
        h.clock.advance(milliseconds: 5_000)
        h.scheduler.heartbeat(agentID: "a", activeLeaseIDs: [])  // alive, but not running it
        _ = h.advance(5_000)  // expires; re-granted to "a" with epoch 2
        let second = h.grants.last!
        #expect(second.epoch == 2)
        let before = h.store.task(first.key)
        let result = h.finish(first, .succeeded)
        #expect(result == .rejected(.staleEpoch(leaseID: first.leaseID, reported: 1, current: 2)))
        #expect(h.store.task(first.key) == before)
        #expect(h.taskState(run.runID, "t") == .running)
        // A report naming the live lease with an old epoch is rejected too.
        #expect(h.finish(second, epoch: 1) == .rejected(.staleEpoch(leaseID: second.leaseID, reported: 1, current: 2)))
        #expect(h.finish(second) == .applied)
    }

    @Test func anotherAgentsLeaseIsRejected() throws {
        let (h, run) = try oneTask()
        h.connect("a", entrypoints: ["work"])
        h.connect("b", entrypoints: ["other"])
        let grant = h.grants[0]
        #expect(h.finish(grant, agentID: "b") == .rejected(.notLeaseHolder(leaseID: grant.leaseID, agentID: "b")))
        #expect(h.taskState(run.runID, "t") == .running)
        #expect(h.report("a", TaskReport(leaseID: "nope/t/1", epoch: 1, kind: .started(at: h.clock.now())))
            == .rejected(.unknownLease("nope/t/1")))
    }

    @Test func duplicateSequenceNumberIsAppliedOnce() throws {
        let (h, run) = try oneTask { $0.retry = RetryPolicy(retries: 5) }
        h.connect("a", entrypoints: ["work"])
        let grant = h.grants[0]
        let failed = TaskReport(leaseID: grant.leaseID, epoch: 1, kind: .finished(.failed, AttemptUsage(exitCode: 3), message: ""))
        #expect(h.scheduler.report(agentID: "a", sequence: 7, failed) == .applied)
        h.flush()
        #expect(h.scheduler.report(agentID: "a", sequence: 7, failed) == .duplicate)
        #expect(h.scheduler.report(agentID: "a", sequence: 6, failed) == .duplicate)
        h.flush()
        #expect(h.store.attempts(of: grant.key).count == 2)  // the failed one and the retry's
        #expect(h.store.task(grant.key)?.tries == 2)
        #expect(h.taskState(run.runID, "t") == .running)
    }

    @Test func retriesBackOffExponentiallyUpToTheCap() throws {
        let (h, run) = try oneTask {
            $0.retry = RetryPolicy(retries: 4, delayMilliseconds: 1_000, exponentialBackoff: true, maxDelayMilliseconds: 3_000)
        }
        h.connect("a", entrypoints: ["work"])
        for (attempt, delay) in [(1, Int64(1_000)), (2, 2_000), (3, 3_000), (4, 3_000)] {
            let grant = h.grants.last!
            #expect(grant.attempt == attempt)
            h.finish(grant, .failed)
            #expect(h.taskState(run.runID, "t") == .upForRetry)
            #expect(h.advance(delay - 1).isEmpty)
            #expect(h.taskState(run.runID, "t") == .upForRetry)
            _ = h.advance(1)
            #expect(h.grants.last!.attempt == attempt + 1)
        }
        h.finish(h.grants.last!, .failed)
        #expect(h.taskState(run.runID, "t") == .failed)
        #expect(h.runState(run.runID) == .failed)
        #expect(h.store.attempts(of: h.grants[0].key).map(\.outcome) == [.failed, .failed, .failed, .failed, .failed])
    }

    @Test func executionTimeoutBackstopFailsTheAttemptAndRevokes() throws {
        let (h, run) = try oneTask { $0.executionTimeoutMilliseconds = 20_000 }
        h.connect("a", entrypoints: ["work"])
        let grant = h.grants[0]
        #expect(grant.timeoutMilliseconds == 20_000)
        for _ in 0..<2 {  // heartbeats keep the lease; the timeout still applies
            h.clock.advance(milliseconds: 9_000)
            h.scheduler.heartbeat(agentID: "a")
            h.flush()
        }
        h.clock.advance(milliseconds: 7_000)  // 25 s: timeout + grace
        h.scheduler.heartbeat(agentID: "a")
        h.scheduler.tick()
        let effects = h.flush()
        #expect(effects == [.revoke(agentID: "a", leaseID: grant.leaseID, epoch: 1, reason: .cancelled)])
        // The agent may still run it: the attempt ends only when the agent says so (or its
        // lease expires), never while another execution could start.
        #expect(h.taskState(run.runID, "t") == .running)
        #expect(h.finish(grant, .cancelled) == .applied)
        let attempt = h.store.attempts(of: grant.key).first
        #expect(attempt?.outcome == .timedOut && attempt?.message.contains("within execution_timeout") == true)
        #expect(h.taskState(run.runID, "t") == .failed)
    }

    @Test func cancelRunCancelsPendingTasksAndRevokesLeasedOnes() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b", "c<a"]) { $0.entrypoint = "work" })
        h.connect("x", entrypoints: ["work"], slots: 1)
        let run = try h.trigger("d")
        let leased = h.grants[0]
        try h.scheduler.cancelRun(run.runID)
        let effects = h.flush()
        #expect(effects == [.revoke(agentID: "x", leaseID: leased.leaseID, epoch: 1, reason: .cancelled)])
        #expect(h.runState(run.runID) == .cancelled)
        #expect(h.store.tasks(ofRun: run.runID).allSatisfy { $0.state == .cancelled })
        // The agent keeps the slot until it reports; its report ends the attempt.
        try h.apply(dag("e", ["z"]) { $0.entrypoint = "work" })
        let other = try h.trigger("e")
        #expect(h.grants.count == 1)
        #expect(h.finish(leased, .cancelled) == .applied)
        #expect(h.store.attempts(of: leased.key).first?.outcome == .cancelled)
        #expect(h.grants.last?.key.runID == other.runID)
        #expect(throws: SchedulerError.unknownRun(run.runID)) { try h.scheduler.cancelRun(run.runID) }
    }

    @Test func cancellingOneTaskFailsItsAllSuccessDownstream() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b<a", "c<a"]) { task in
            task.entrypoint = "work"
            if task.id == "c" { task.triggerRule = .allDone }
        })
        let run = try h.trigger("d")
        try h.scheduler.cancelTask(runID: run.runID, taskID: "a")
        h.flush()
        #expect(h.taskState(run.runID, "a") == .cancelled)
        #expect(h.taskState(run.runID, "b") == .upstreamFailed)
        #expect(h.taskState(run.runID, "c") == .queued)
        #expect(throws: SchedulerError.alreadyFinished("task \(run.runID)/a")) {
            try h.scheduler.cancelTask(runID: run.runID, taskID: "a")
        }
    }

    @Test func restartRequeuesReadyTasksAndLeasesWaitForTheirAgent() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b", "c"]) { $0.entrypoint = "work" })
        h.connect("x", entrypoints: ["work"], slots: 1)
        h.connect("y", entrypoints: ["work"], slots: 1)
        let run = try h.trigger("d")
        #expect(h.grants.count == 2)
        let held = h.grants
        h.clock.advance(milliseconds: 4_000)
        h.restart()
        #expect(h.scheduler.activeRun(run.runID)?.state == .running)
        // x resumes its lease within the TTL and keeps it; y never comes back.
        let xLease = held.first { $0.agentID == "x" }!
        let welcome = h.connect("x", entrypoints: ["work"], slots: 2, resuming: [xLease.leaseID])
        #expect(welcome.confirmedLeaseIDs == [xLease.leaseID])
        let queuedTask = ["a", "b", "c"].first { id in !held.contains { $0.key.taskID == id } }!
        #expect(h.grants.last?.key.taskID == queuedTask)  // x's second slot took the queued task
        h.clock.advance(milliseconds: 6_000)
        h.scheduler.heartbeat(agentID: "x")  // x is alive; y never comes back
        _ = h.advance(4_000)  // y's lease got a full TTL at the restart and now expires
        let yLease = held.first { $0.agentID == "y" }!
        #expect(h.store.attempts(of: yLease.key).first?.outcome == .lost)
        #expect(h.taskState(run.runID, xLease.key.taskID) == .running)
        #expect(h.finish(xLease) == .applied)
    }

    @Test func resumedLeaseThatWasSupersededIsRevoked() throws {
        let (h, _) = try oneTask { $0.retry = RetryPolicy(retries: 1) }
        h.connect("a", entrypoints: ["work"])
        let old = h.grants[0]
        h.scheduler.agentDisconnected("a")
        h.connect("b", entrypoints: ["work"])
        h.clock.advance(milliseconds: 5_000)
        h.scheduler.heartbeat(agentID: "b")
        _ = h.advance(5_000)
        #expect(h.grants.last?.agentID == "b")
        let welcome = h.connect("a", entrypoints: ["work"], resuming: [old.leaseID])
        #expect(welcome.confirmedLeaseIDs.isEmpty)
        #expect(h.revokes.last! == ("a", old.leaseID, .superseded))
    }

    @Test func agentReconnectingWithoutItsLeaseLosesIt() throws {
        let (h, run) = try oneTask { $0.retry = RetryPolicy(retries: 1) }
        h.connect("a", entrypoints: ["work"])
        let old = h.grants[0]
        h.connect("a", entrypoints: ["work"])  // restarted with an empty state
        #expect(h.store.attempts(of: old.key).first?.outcome == .lost)
        #expect(h.grants.last!.epoch == 2)
        #expect(h.taskState(run.runID, "t") == .running)
    }
}
