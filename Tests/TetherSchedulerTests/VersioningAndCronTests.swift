import Testing
import TetherScheduler

@Suite struct DAGVersioningTests {
    @Test func applyingAnIdenticalSpecIsANoOp() throws {
        let h = SchedulerHarness()
        let first = try h.scheduler.apply(dag("d", ["a", "b<a"]))
        h.flush()
        let again = try h.scheduler.apply(dag("d", ["a", "b<a"]))
        #expect(first.created && !again.created)
        #expect(again.version == first.version)
        #expect(h.scheduler.takeOutput().changes.isEmpty)
        #expect(h.store.versions(ofDAG: "d").count == 1)
    }

    @Test func changedSpecBecomesTheNextVersionAndRunsStayPinned() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a"]))
        let old = try h.trigger("d")
        let v2 = try h.apply(dag("d", ["a", "b<a"]))
        #expect(v2.version == 2)
        let new = try h.trigger("d")
        #expect(h.store.run(old.runID)?.version == 1)
        #expect(h.store.run(new.runID)?.version == 2)
        #expect(h.store.tasks(ofRun: old.runID).map(\.key.taskID) == ["a"])
        #expect(h.store.tasks(ofRun: new.runID).map(\.key.taskID) == ["a", "b"])
        #expect(h.store.versions(ofDAG: "d").map(\.version) == [1, 2])
        #expect(h.store.dag("d")?.latestVersion == 2)
        // The pinned run finishes on its own version after a restart too.
        h.restart()
        h.connect("x", entrypoints: ["a", "b"], slots: 2)
        h.finish(h.grants.first { $0.key.runID == old.runID }!)
        #expect(h.runState(old.runID) == .success)
    }

    @Test func invalidSpecIsRejectedWithItsProblemsAndStoresNothing() throws {
        let h = SchedulerHarness()
        #expect {
            try h.scheduler.apply(dag("d", ["a<c", "b<a", "c<b"]))
        } throws: { error in
            guard case SchedulerError.invalidSpec(let text) = error else { return false }
            return text.contains("a -> b -> c -> a") || text.contains("cycle")
        }
        #expect(h.scheduler.takeOutput().changes.isEmpty)
        #expect(h.scheduler.dag("d") == nil)
    }

    @Test func pausedOnlyAppliesToTheFirstVersion() throws {
        let h = SchedulerHarness()
        var spec = dag("d", ["a"])
        spec.paused = true
        try h.apply(spec)
        #expect(h.scheduler.dag("d")?.paused == true)
        try h.scheduler.setPaused("d", false)
        spec.description = "changed"
        try h.apply(spec)
        #expect(h.scheduler.dag("d")?.paused == false)
        #expect(throws: SchedulerError.unknownDAG("e")) { try h.scheduler.setPaused("e", true) }
    }
}

@Suite struct CronRunTests {
    /// 2026-01-01T00:10:00Z
    static let start = Instant(millisecondsSinceEpoch: 1_767_226_200_000)
    static let hour: Int64 = 3_600_000

    @Test func scheduledRunFiresAtEachScheduleInstantAndNotBefore() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        var spec = dag("d", ["a"])
        spec.schedule = "@hourly"
        try h.apply(spec)
        let firstFire = Instant(millisecondsSinceEpoch: 1_767_229_200_000)  // 01:00
        #expect(h.scheduler.nextScheduledRun("d") == firstFire)
        #expect(h.scheduler.nextDeadline() == firstFire)
        _ = h.advance(50 * 60_000 - 1)
        #expect(h.store.runs(ofDAG: "d").isEmpty)
        _ = h.advance(1)
        let runs = h.store.runs(ofDAG: "d")
        #expect(runs.count == 1)
        #expect(runs.first?.trigger == .schedule && runs.first?.logicalDate == firstFire)
        _ = h.advance(Self.hour)
        #expect(h.store.runs(ofDAG: "d").map(\.logicalDate) == [firstFire, firstFire.adding(milliseconds: Self.hour)])
    }

    @Test func missedScheduleFiresOnceAfterDowntime() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        var spec = dag("d", ["a"])
        spec.schedule = "*/15 * * * *"
        spec.maxActiveRuns = 100
        try h.apply(spec)
        _ = h.advance(5 * 60_000)  // 00:15 fires
        #expect(h.store.runs(ofDAG: "d").count == 1)
        // Down from 00:15 to 03:07: eleven instants missed; only the latest, 03:00, runs.
        h.clock.advance(milliseconds: 2 * Self.hour + 52 * 60_000)
        h.restart()
        h.scheduler.tick()
        h.flush()
        let runs = h.store.runs(ofDAG: "d")
        #expect(runs.count == 2)
        #expect(runs.last?.logicalDate == Instant(millisecondsSinceEpoch: 1_767_236_400_000))  // 03:00
        #expect(h.scheduler.nextScheduledRun("d") == Instant(millisecondsSinceEpoch: 1_767_237_300_000))  // 03:15
    }

    @Test func pausedDAGDoesNotFireAndUnpausingDoesNotCatchUp() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        var spec = dag("d", ["a"])
        spec.schedule = "@hourly"
        try h.apply(spec)
        try h.scheduler.setPaused("d", true)
        h.flush()
        #expect(h.scheduler.nextScheduledRun("d") == nil)
        _ = h.advance(5 * Self.hour)
        #expect(h.store.runs(ofDAG: "d").isEmpty)
        _ = try h.trigger("d")  // manual runs still allowed
        try h.scheduler.setPaused("d", false)
        h.flush()
        _ = h.advance(1)
        #expect(h.store.runs(ofDAG: "d").map(\.trigger) == [.manual])
        #expect(h.scheduler.nextScheduledRun("d") == Instant(millisecondsSinceEpoch: 1_767_247_200_000))  // 06:00
    }
}
