import Testing
import TetherScheduler

/// Clearing task instances: they run again as new attempts of the same run, pinned to its
/// version, with their retries back; the run follows.
@Suite struct ClearTests {
    /// The run as the store holds it (what the server passes for a finished run).
    private static func stored(_ h: SchedulerHarness, _ runID: String) -> StoredRun {
        StoredRun(run: h.store.run(runID)!, tasks: h.store.tasks(ofRun: runID))
    }

    private static func latestGrant(_ h: SchedulerHarness, _ runID: String, _ taskID: String) -> LeaseGrant? {
        h.grants.last { $0.key == TaskKey(runID: runID, taskID: taskID) }
    }

    @Test func aFailedTaskClearedWithItsDownstreamRunsAgainOnTheRunsVersion() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b<a", "c<b"]))
        h.connect("x", entrypoints: ["a", "b", "c", "a2"], slots: 3)
        let run = try h.trigger("d")
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")), .failed)
        #expect(h.runState(run.runID) == .failed)
        #expect(h.taskState(run.runID, "c") == .upstreamFailed)
        // A new version meanwhile: the cleared run stays on version 1.
        try h.apply(dag("d", ["a", "b<a", "c<b"]) { $0.entrypoint = $0.id == "a" ? "a2" : $0.entrypoint })

        let cleared = try h.scheduler.clear(runID: run.runID, ClearRequest(taskIDs: ["a"], downstream: true), stored: Self.stored(h, run.runID))
        h.flush()
        #expect(cleared == ["a", "b", "c"])
        #expect(h.runState(run.runID) == .running)
        let again = try #require(Self.latestGrant(h, run.runID, "a"))
        #expect(again.attempt == 2 && again.dagVersion == 1 && again.entrypoint == "a")
        h.finish(again)
        h.finish(try #require(Self.latestGrant(h, run.runID, "b")))
        h.finish(try #require(Self.latestGrant(h, run.runID, "c")))
        #expect(h.runState(run.runID) == .success)
        #expect(h.store.attempts(of: TaskKey(runID: run.runID, taskID: "a")).map(\.outcome) == [.failed, .succeeded])
    }

    @Test func failedOnlyLeavesSucceededTasksAlone() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b", "c<b"]))
        h.connect("x", entrypoints: ["a", "b", "c"], slots: 3)
        let run = try h.trigger("d")
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")))
        h.finish(try #require(Self.latestGrant(h, run.runID, "b")), .failed)
        #expect(h.runState(run.runID) == .failed)
        let cleared = try h.scheduler.clear(runID: run.runID, ClearRequest(failedOnly: true), stored: Self.stored(h, run.runID))
        h.flush()
        #expect(cleared == ["b", "c"])
        #expect(h.taskState(run.runID, "a") == .success)
        #expect(h.store.attempts(of: TaskKey(runID: run.runID, taskID: "a")).count == 1)
    }

    @Test func aClearedTaskHasItsRetriesBackAndTheyCountFromTheClearAfterARestart() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a"]) { $0.retry = RetryPolicy(retries: 1) })
        h.connect("x", entrypoints: ["a"])
        let run = try h.trigger("d")
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")), .failed)
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")), .failed)
        #expect(h.runState(run.runID) == .failed)
        try h.scheduler.clear(runID: run.runID, ClearRequest(), stored: Self.stored(h, run.runID))
        h.flush()
        let third = try #require(Self.latestGrant(h, run.runID, "a"))
        #expect(third.attempt == 3)
        h.restart()
        h.connect("x", entrypoints: ["a"], resuming: [third.leaseID], session: 1)
        h.finish(third, .failed)
        // The retry it had before the clear, not none: attempt 4 runs; its failure ends the task.
        let fourth = try #require(Self.latestGrant(h, run.runID, "a"))
        #expect(fourth.attempt == 4)
        h.finish(fourth, .failed)
        #expect(h.taskState(run.runID, "a") == .failed)
    }

    @Test func aTaskOfAnActiveRunIsClearedInPlaceAndTheRunWaitsForIt() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b"]))
        h.connect("x", entrypoints: ["a", "b"], slots: 2)
        let run = try h.trigger("d")
        h.finish(try #require(Self.latestGrant(h, run.runID, "b")), .failed)
        #expect(h.runState(run.runID) == .running)  // a still runs
        try h.scheduler.clear(runID: run.runID, ClearRequest(taskIDs: ["b"]))
        h.flush()
        let again = try #require(Self.latestGrant(h, run.runID, "b"))
        #expect(again.attempt == 2)
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")))
        #expect(h.runState(run.runID) == .running)
        h.finish(again)
        #expect(h.runState(run.runID) == .success)
    }

    @Test func clearingAnUnfinishedTaskIsRefusedAndChangesNothing() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b<a"]))
        h.connect("x", entrypoints: ["a"])
        let run = try h.trigger("d")
        #expect(throws: SchedulerError.notFinished("task \(run.runID)/a is running: cancel it or let it finish before clearing it")) {
            try h.scheduler.clear(runID: run.runID, ClearRequest(taskIDs: ["a"]))
        }
        #expect(h.scheduler.takeOutput().changes.isEmpty)
        #expect(throws: SchedulerError.unknownTask(runID: run.runID, taskID: "zz")) {
            try h.scheduler.clear(runID: run.runID, ClearRequest(taskIDs: ["zz"]))
        }
        #expect(throws: SchedulerError.unknownRun("nope")) { try h.scheduler.clear(runID: "nope", ClearRequest()) }
    }

    @Test func aStoredRunThatIsNotFinalIsNotYetStoredNotCleared() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a"]))
        h.connect("x", entrypoints: ["a"])
        let run = try h.trigger("d")
        let stale = Self.stored(h, run.runID)  // running, as a lagging store would still say
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")))
        #expect(throws: SchedulerError.notYetStored("run '\(run.runID)' is finishing; try again in a moment")) {
            try h.scheduler.clear(runID: run.runID, ClearRequest(), stored: stale)
        }
    }

    @Test func aClearedRunOfAPausedDAGWaitsForTheUnpause() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a"]))
        h.connect("x", entrypoints: ["a"])
        let run = try h.trigger("d")
        h.finish(try #require(Self.latestGrant(h, run.runID, "a")), .failed)
        try h.scheduler.setPaused("d", true)
        try h.scheduler.clear(runID: run.runID, ClearRequest(), stored: Self.stored(h, run.runID))
        h.flush()
        #expect(h.runState(run.runID) == .queued)
        try h.scheduler.setPaused("d", false)
        h.flush()
        #expect(Self.latestGrant(h, run.runID, "a")?.attempt == 2)
    }
}
