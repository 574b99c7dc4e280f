import Testing
@testable import TetherScheduler

/// A hung agent (SIGSTOP, a stalled disk) keeps its TCP connection open, so the server
/// cannot wait for the stream to close: an agent silent for a lease TTL is treated as
/// dead. These run on the manual clock with a 10 s TTL.
@Suite struct SilentAgentTests {
    private func oneTask(retries: Int = 2) throws -> (SchedulerHarness, RunRecord) {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["t"]) { task in
            task.entrypoint = "work"
            task.retry = RetryPolicy(retries: retries)
        })
        return (h, try h.trigger("d"))
    }

    private func sessionEnds(_ effects: [SchedulerEffect]) -> [(agentID: String, session: UInt64)] {
        effects.compactMap { if case .endSession(let agent, let session, _) = $0 { (agent, session) } else { nil } }
    }

    @Test func hungAgentsExpiredTaskGoesToALiveAgentNotBackToIt() throws {
        let (h, run) = try oneTask()
        h.connect("p", entrypoints: ["work"], slots: 1, session: 7)
        let first = h.grants[0]
        #expect(first.agentID == "p")
        h.connect("q", entrypoints: ["work"])
        // q heartbeats; p is stopped and says nothing, its connection still open.
        for _ in 0..<3 {
            h.clock.advance(milliseconds: 3_000)
            h.scheduler.heartbeat(agentID: "q")
            h.scheduler.tick()
            h.flush()
        }
        #expect(h.grants.count == 1)
        h.clock.advance(milliseconds: 1_000)  // 10 s of silence from p
        h.scheduler.tick()
        let effects = h.flush()
        #expect(sessionEnds(effects).map(\.agentID) == ["p"] && sessionEnds(effects).map(\.session) == [7])
        #expect(!h.scheduler.isConnected("p") && h.scheduler.isConnected("q"))
        #expect(h.store.attempts(of: first.key).first?.outcome == .lost)
        let second = h.grants.last!
        #expect(second.agentID == "q" && second.epoch == 2)
        // p wakes up: its late heartbeat renews nothing (and so gets no ack) and its stale
        // success changes nothing.
        #expect(!h.scheduler.heartbeat(agentID: "p", activeLeaseIDs: [first.leaseID]))
        #expect(h.finish(first) == .rejected(.staleEpoch(leaseID: first.leaseID, reported: 1, current: 2)))
        #expect(h.taskState(run.runID, "t") == .running)
        // A lost attempt is the infrastructure's, not the task's: its retries are untouched.
        #expect(h.store.task(first.key)?.infrastructureAttempts == 1)
        #expect(h.finish(second) == .applied)
        #expect(h.runState(run.runID) == .success)
    }

    @Test func silentIdleAgentIsEndedAndGetsNoNewWork() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["t"]) { $0.entrypoint = "work" })
        h.connect("p", entrypoints: ["work"], slots: 4, session: 3)
        h.clock.advance(milliseconds: 9_999)
        h.scheduler.tick()
        #expect(sessionEnds(h.flush()).isEmpty)
        h.clock.advance(milliseconds: 1)
        h.scheduler.tick()
        #expect(sessionEnds(h.flush()).map(\.agentID) == ["p"])
        let run = try h.trigger("d")
        #expect(h.grants.isEmpty)
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: "t")) == "no connected agent serves queue 'default'")
        // It reconnects (a new stream): it is alive again and takes the task.
        h.connect("p", entrypoints: ["work"], slots: 4, session: 4)
        #expect(h.grants.map(\.agentID) == ["p"])
    }

    @Test func heartbeatsKeepAnAgentAliveAndItsLeaseAFullTTLPastTheLast() throws {
        let (h, run) = try oneTask()
        h.connect("p", entrypoints: ["work"])
        let grant = h.grants[0]
        for _ in 0..<5 {
            h.clock.advance(milliseconds: 9_000)
            h.scheduler.heartbeat(agentID: "p")
            h.scheduler.tick()
            #expect(sessionEnds(h.flush()).isEmpty)
        }
        // A lease lives exactly a TTL past the last heartbeat that named it, whatever was stored.
        #expect(h.advance(9_999).isEmpty)
        #expect(h.taskState(run.runID, "t") == .running)
        let effects = h.advance(1)
        #expect(effects.contains(.revoke(agentID: "p", leaseID: grant.leaseID, epoch: 1, reason: .expired)))
        #expect(sessionEnds(effects).map(\.agentID) == ["p"])
    }

    @Test func heartbeatNamingALeaseTheAgentDoesNotHoldRevokesIt() throws {
        let (h, _) = try oneTask(retries: 0)
        h.connect("p", entrypoints: ["work"])
        h.connect("q", entrypoints: ["work"])
        let grant = h.grants[0]
        let other = grant.agentID == "p" ? "q" : "p"
        h.scheduler.heartbeat(agentID: other, activeLeaseIDs: [grant.leaseID, "nope/t/1-0"])
        let effects = h.flush()
        #expect(effects == [
            .revoke(agentID: other, leaseID: grant.leaseID, epoch: 1, reason: .unknownLease),
            .revoke(agentID: other, leaseID: "nope/t/1-0", epoch: 1, reason: .unknownLease),
        ])
        // The holder's lease is untouched.
        #expect(h.scheduler.leaseIDs(ofAgent: grant.agentID) == [grant.leaseID])
    }

    @Test func leaseIDsCarryTheInjectedNonceAndTheGuessableFormIsUnknown() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000, leaseIDNonce: { 0xDEAD_BEEF }))
        try h.apply(dag("d", ["t"]) { $0.entrypoint = "work" })
        let run = try h.trigger("d")
        h.connect("p", entrypoints: ["work"])
        let grant = h.grants[0]
        #expect(grant.leaseID == "\(run.runID)/t/1-00000000deadbeef")
        let guessed = "\(run.runID)/t/1"
        #expect(h.report("p", TaskReport(leaseID: guessed, epoch: 1, kind: .started(at: h.clock.now())))
            == .rejected(.unknownLease(guessed)))
        // An agent reconnecting with the guessable id is told it is not its lease.
        h.connect("x", entrypoints: ["work"], resuming: [guessed])
        #expect(h.revokes.last! == ("x", guessed, .superseded))
        #expect(h.scheduler.leaseIDs(ofAgent: "p") == [grant.leaseID])
    }

    @Test func defaultLeaseIDsDiffer() throws {
        let ids = try (0..<2).map { _ in
            let h = SchedulerHarness()
            try h.apply(dag("d", ["t"]) { $0.entrypoint = "work" })
            _ = try h.trigger("d")
            h.connect("p", entrypoints: ["work"])
            return h.grants[0].leaseID
        }
        #expect(ids[0] != ids[1] && ids.allSatisfy { $0.hasPrefix("d-1/t/1-") && $0.count == "d-1/t/1-".count + 16 })
    }

    @Test func rejectedAttemptsBackOffDoublingToThirtySeconds() {
        #expect((1...8).map { Scheduler.rejectionBackoff(afterInfrastructureAttempts: $0) }
            == [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000])
    }
}

/// Reported with a partitioned agent in mind: the server's timeout backstop must not hand
/// a task to another agent while the first may still run it.
@Suite struct TimeoutBackstopTests {
    @Test func aTimedOutTaskOfACutOffAgentIsRetriedOnlyAfterItsLeaseExpires() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000, timeoutGraceMilliseconds: 1_000))
        try h.apply(dag("d", ["t"]) { task in
            task.entrypoint = "work"
            task.retry = RetryPolicy(retries: 1)
            task.executionTimeoutMilliseconds = 4_000
        })
        let run = try h.trigger("d")
        h.connect("a", entrypoints: ["work"])
        h.connect("b", entrypoints: ["work"])
        let first = h.grants[0]
        let other = first.agentID == "a" ? "b" : "a"
        h.clock.advance(milliseconds: 4_000)
        h.scheduler.heartbeat(agentID: first.agentID)  // a's last word: then it is cut off
        h.scheduler.heartbeat(agentID: other)
        _ = h.advance(1_000)                          // timeout + grace: revoked, not re-leased
        #expect(h.revokes.last! == (first.agentID, first.leaseID, .cancelled))
        #expect(h.grants.count == 1)
        h.clock.advance(milliseconds: 5_000)
        h.scheduler.heartbeat(agentID: other)
        _ = h.advance(3_999)                          // the lease still stands
        #expect(h.grants.count == 1 && h.taskState(run.runID, "t") == .running)
        h.scheduler.heartbeat(agentID: other)
        _ = h.advance(1)                              // a TTL after a's last heartbeat
        #expect(h.store.attempts(of: first.key).first?.outcome == .timedOut)
        #expect(h.grants.last?.agentID == other && h.grants.count == 2)
    }
}
