import Testing
import TetherScheduler

/// queue_timeout (a task that never starts) and run_timeout (a run that never ends).
@Suite struct TimeoutTests {
    static let minute: Int64 = 60_000

    @Test func aTaskNoAgentTakesFailsAtItsQueueTimeoutSayingWhyAndItsDownstreamFollows() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b<a"]) { if $0.id == "a" { $0.queueTimeoutMilliseconds = 10 * Self.minute } })
        let run = try h.trigger("d")
        _ = h.advance(10 * Self.minute - 1)
        #expect(h.taskState(run.runID, "a") == .queued)
        _ = h.advance(1)
        #expect(h.taskState(run.runID, "a") == .failed)
        #expect(h.store.task(TaskKey(runID: run.runID, taskID: "a"))?.reason
                == "queued for its queue_timeout of 10m without starting (no connected agent serves queue 'default')")
        #expect(h.taskState(run.runID, "b") == .upstreamFailed)
        #expect(h.runState(run.runID) == .failed)
    }

    @Test func aTaskThatStartsInTimeIsNotTouchedByItsQueueTimeout() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 3_600_000))
        try h.apply(dag("d", ["a"]) { $0.queueTimeoutMilliseconds = 10 * Self.minute })
        let run = try h.trigger("d")
        _ = h.advance(5 * Self.minute)
        h.connect("x", entrypoints: ["a"])
        for _ in 0..<11 {  // eleven minutes, the agent heartbeating
            _ = h.advance(Self.minute)
            h.scheduler.heartbeat(agentID: "x")
        }
        #expect(h.taskState(run.runID, "a") == .running)
    }

    @Test func aRunPastItsRunTimeoutFailsWithItsUnfinishedTasksCancelledAndRevoked() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 3_600_000))
        var spec = dag("d", ["a", "b", "c<a"])
        spec.runTimeoutMilliseconds = 60 * Self.minute
        try h.apply(spec)
        h.connect("x", entrypoints: ["a", "b"], slots: 2)
        let run = try h.trigger("d")
        h.finish(try #require(h.grants.first { $0.key.taskID == "b" }))
        _ = h.advance(60 * Self.minute)
        #expect(h.runState(run.runID) == .failed)
        #expect(h.store.run(run.runID)?.note == "failed: the run's run_timeout of 1h passed")
        #expect(h.taskState(run.runID, "b") == .success)
        for taskID in ["a", "c"] {
            #expect(h.taskState(run.runID, taskID) == .cancelled)
            #expect(h.store.task(TaskKey(runID: run.runID, taskID: taskID))?.reason == "the run's run_timeout of 1h passed")
        }
        #expect(h.revokes.map(\.reason) == [.cancelled])
    }

    @Test func aDeletedRunsRunTimeoutDoesNotEndALaterRunOfTheSameID() throws {
        let h = SchedulerHarness()
        var spec = dag("d", ["a"])
        spec.runTimeoutMilliseconds = 30 * Self.minute
        try h.apply(spec)
        let first = try h.trigger("d")
        #expect(h.runState(first.runID) == .running)
        _ = h.advance(10 * Self.minute)
        #expect(try h.scheduler.deleteDAG("d", cancelRuns: true) == [first.runID])
        h.flush()
        try h.apply(spec)
        let second = try h.trigger("d")
        try #require(second.runID == first.runID)  // ids start afresh with the DAG
        _ = h.advance(25 * Self.minute)  // past the first run's timeout, not the second's
        #expect(h.runState(second.runID) == .running)
        _ = h.advance(5 * Self.minute)
        #expect(h.runState(second.runID) == .failed)
        #expect(h.store.run(second.runID)?.note == "failed: the run's run_timeout of 30m passed")
    }

    @Test func timeoutsAfterARestartComeAtMostAWholeTimeoutLater() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 3_600_000))
        var spec = dag("d", ["a", "b"]) { $0.queueTimeoutMilliseconds = 10 * Self.minute }
        spec.runTimeoutMilliseconds = 30 * Self.minute
        try h.apply(spec)
        let run = try h.trigger("d")
        // The wall clock stepped back a day while the server was down: the stored deadlines
        // lie a day ahead, and are re-based to a whole timeout from the restart.
        let earlier = ManualClock(h.clock.now().adding(milliseconds: -86_400_000))
        let restarted = Scheduler(clock: earlier, configuration: h.configuration, snapshot: try h.store.loadSnapshot())
        h.store.apply(restarted.takeOutput().changes)
        earlier.advance(milliseconds: 10 * Self.minute)
        restarted.tick()
        h.store.apply(restarted.takeOutput().changes)
        #expect(h.taskState(run.runID, "a") == .failed)
        #expect(h.runState(run.runID) == .failed)  // both tasks failed, before the run timeout
    }
}
