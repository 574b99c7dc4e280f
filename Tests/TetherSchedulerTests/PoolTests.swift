import Testing
import TetherScheduler

/// Pools: named slot limits shared by tasks of every DAG.
@Suite struct PoolTests {
    private static func pooled(_ dagID: String, _ tasks: [String], pool: String = "warehouse", slots: Int = 1,
                               priority: Int = 0) -> DAGSpec {
        dag(dagID, tasks) { task in
            task.pool = pool
            task.poolSlots = slots
            task.priority = priority
            task.entrypoint = "work"
        }
    }

    private static func running(_ h: SchedulerHarness) -> [LeaseGrant] {
        h.grants.filter { h.taskState($0.key.runID, $0.key.taskID) == .running && h.store.task($0.key)?.lease?.leaseID == $0.leaseID }
    }

    @Test func aPoolSharedByTwoDAGsNeverRunsMoreThanItsSlots() throws {
        let h = SchedulerHarness()
        try h.scheduler.setPool("warehouse", slots: 2)
        try h.apply(Self.pooled("a", ["a1", "a2", "a3"]))
        try h.apply(Self.pooled("b", ["b1", "b2", "b3"]))
        try h.apply(dag("free", ["f1", "f2"]) { $0.entrypoint = "work" })  // no pool: not held back
        h.connect("x", entrypoints: ["work"], slots: 20)
        _ = try h.trigger("a")
        _ = try h.trigger("b")
        _ = try h.trigger("free")
        var finished = 0
        while let next = Self.running(h).first(where: { $0.dagID != "free" }) {
            #expect(Self.running(h).filter { $0.dagID != "free" }.count <= 2)
            h.finish(next)
            finished += 1
        }
        #expect(finished == 6)
        #expect(Self.running(h).filter { $0.dagID == "free" }.count == 2)
    }

    @Test func aTaskTakesItsPoolSlotsAndWaitsSayingWhy() throws {
        let h = SchedulerHarness()
        try h.scheduler.setPool("warehouse", slots: 3)
        try h.apply(Self.pooled("big", ["b1", "b2"], slots: 2))
        h.connect("x", entrypoints: ["work"], slots: 20)
        let run = try h.trigger("big")
        #expect(Self.running(h).count == 1)
        let waiting = try #require(["b1", "b2"].first { h.taskState(run.runID, $0) == .queued })
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: waiting))
                == "pool 'warehouse' has 1 of 3 slots free; the task takes 2")
        #expect(h.scheduler.poolStatuses.map { ($0.used, $0.waiting) }.first! == (2, 1))
    }

    @Test func aTaskNamingAMissingPoolWaitsUntilItIsCreatedAndResizingLetsMoreIn() throws {
        let h = SchedulerHarness()
        try h.apply(Self.pooled("d", ["t1", "t2", "t3"], pool: "gpu-licences"))
        h.connect("x", entrypoints: ["work"], slots: 20)
        let run = try h.trigger("d")
        #expect(h.grants.isEmpty)
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: "t1"))
                == "pool 'gpu-licences' does not exist (tether pool set gpu-licences SLOTS)")
        try h.scheduler.setPool("gpu-licences", slots: 1)
        h.flush()
        #expect(Self.running(h).count == 1)
        try h.scheduler.setPool("gpu-licences", slots: 3)
        h.flush()
        #expect(Self.running(h).count == 3)
        // Shrinking stops nothing that runs.
        try h.scheduler.setPool("gpu-licences", slots: 1)
        h.flush()
        #expect(Self.running(h).count == 3)
        #expect(h.revokes.isEmpty)
    }

    @Test func theHigherPriorityTaskOfAnyDAGGetsTheFreedSlotAndABigClaimIsNotStarved() throws {
        let h = SchedulerHarness()
        try h.scheduler.setPool("warehouse", slots: 2)
        try h.apply(Self.pooled("first", ["f"], slots: 2))
        try h.apply(Self.pooled("big", ["b"], slots: 2, priority: 5))
        try h.apply(Self.pooled("small", ["s1", "s2"], slots: 1, priority: 1))
        h.connect("x", entrypoints: ["work"], slots: 20)
        let first = try h.trigger("first")
        _ = try h.trigger("small")
        _ = try h.trigger("big")
        h.finish(try #require(h.grants.first { $0.key.runID == first.runID }))
        // The 2-slot task of priority 5 gets the pool; the 1-slot ones do not slip past it.
        #expect(Self.running(h).map(\.dagID) == ["big"])
    }

    @Test func poolsAndTheirUseSurviveARestartWithoutLettingInMore() throws {
        let h = SchedulerHarness()
        try h.scheduler.setPool("warehouse", slots: 2)
        try h.apply(Self.pooled("d", ["t1", "t2", "t3", "t4"]))
        h.connect("x", entrypoints: ["work"], slots: 20)
        let run = try h.trigger("d")
        let held = Self.running(h)
        #expect(held.count == 2)
        h.restart()
        h.connect("x", entrypoints: ["work"], slots: 20, resuming: held.map(\.leaseID), session: 1)
        #expect(Self.running(h).count == 2)
        #expect(h.scheduler.poolStatuses.map(\.pool.slots) == [2])
        h.finish(held[0])
        #expect(Self.running(h).count == 2)
        #expect(h.taskState(run.runID, "t4") == .queued || h.taskState(run.runID, "t3") == .queued)
    }

    @Test func deletingAPoolStopsNothingAndBadPoolsAreRefused() throws {
        let h = SchedulerHarness()
        try h.scheduler.setPool("warehouse", slots: 1)
        try h.apply(Self.pooled("d", ["t1", "t2"]))
        h.connect("x", entrypoints: ["work"], slots: 20)
        let run = try h.trigger("d")
        try h.scheduler.deletePool("warehouse")
        h.flush()
        let done = try #require(Self.running(h).first)
        h.finish(done)
        let other = done.key.taskID == "t1" ? "t2" : "t1"
        #expect(h.taskState(run.runID, other) == .queued)
        #expect(throws: SchedulerError.unknownPool("warehouse")) { try h.scheduler.deletePool("warehouse") }
        #expect(throws: SchedulerError.self) { try h.scheduler.setPool("bad name", slots: 1) }
        #expect(throws: SchedulerError.self) { try h.scheduler.setPool("ok", slots: 100_001) }
    }
}
