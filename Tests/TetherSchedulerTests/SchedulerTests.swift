import Testing
import TetherScheduler

@Suite struct TaskStateMachineTests {
    @Test func everyFinalStateRefusesEveryMove() {
        for from in TaskState.allCases where from.isFinal {
            for to in TaskState.allCases {
                #expect(throws: SchedulerError.self) { try from.transition(to: to) }
            }
        }
    }

    @Test func legalTaskMovesAreExactlyTheDocumentedOnes() throws {
        let legal: Set<String> = [
            "scheduled>queued", "scheduled>upstream_failed", "scheduled>skipped", "scheduled>cancelled",
            "queued>running", "queued>failed", "queued>cancelled", "running>success", "running>failed", "running>up_for_retry",
            "running>cancelled", "up_for_retry>queued", "up_for_retry>cancelled",
        ]
        for from in TaskState.allCases {
            for to in TaskState.allCases {
                #expect(from.allows(to) == legal.contains("\(from.rawValue)>\(to.rawValue)"), "\(from) -> \(to)")
            }
        }
        #expect(throws: SchedulerError.illegalTransition(entity: "task", from: "queued", to: "success")) {
            try TaskState.queued.transition(to: .success)
        }
    }

    @Test func runMovesFollowTheirTable() {
        #expect(RunState.queued.allows(.running))
        #expect(RunState.running.allows(.failed))
        #expect(!RunState.queued.allows(.success))
        #expect(!RunState.success.allows(.cancelled))
        #expect(throws: SchedulerError.self) { try RunState.failed.transition(to: .running) }
    }
}

@Suite struct SchedulerRunTests {
    @Test func fanOutFanInRunSucceedsInDependencyOrder() throws {
        let h = SchedulerHarness()
        try h.apply(dag("etl", ["extract", "a<extract", "b<extract", "load<a,b"]))
        h.connect("agent-1", entrypoints: ["extract", "a", "b", "load"], slots: 4)
        let run = try h.trigger("etl")
        #expect(h.runState(run.runID) == .running)
        #expect(h.grants.map(\.key.taskID) == ["extract"])
        h.finish(h.grants[0])
        #expect(Set(h.grants.dropFirst().map(\.key.taskID)) == ["a", "b"])
        h.finish(h.grants[1])
        #expect(h.taskState(run.runID, "load") == .scheduled)
        h.finish(h.grants[2])
        #expect(h.grants.last?.key.taskID == "load")
        h.finish(h.grants[3])
        #expect(h.runState(run.runID) == .success)
        #expect(h.scheduler.activeRun(run.runID) == nil)
    }

    @Test func readyTaskIsGrantedTheMomentAnAgentConnects() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["only"]))
        let run = try h.trigger("d")
        #expect(h.grants.isEmpty)
        #expect(h.taskState(run.runID, "only") == .queued)
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: "only")) == "no connected agent serves queue 'default'")
        h.connect("a1", entrypoints: ["only"])
        #expect(h.grants.count == 1)
        #expect(h.grants[0].attempt == 1 && h.grants[0].epoch == 1)
        #expect(h.taskState(run.runID, "only") == .running)
    }

    @Test func taskWaitsVisiblyForAnAgentOfferingItsEntrypoint() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["train"]))
        h.connect("a1", entrypoints: ["extract"], slots: 4)
        let run = try h.trigger("d")
        #expect(h.grants.isEmpty)
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: "train"))
            == "no connected agent on queue 'default' offers entrypoint 'train'")
        h.connect("a2", entrypoints: ["train"])
        #expect(h.grants.map(\.agentID) == ["a2"])
    }

    @Test func queueRoutingSendsGpuTasksOnlyToGpuAgents() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["cpu1", "cpu2", "gpu1", "gpu2"]) { task in
            if task.id.hasPrefix("gpu") { task.queue = "gpu" }
            task.entrypoint = "work"
        })
        h.connect("cpu-agent", queues: ["default"], entrypoints: ["work"], slots: 8)
        h.connect("gpu-agent", queues: ["gpu"], entrypoints: ["work"], slots: 8)
        _ = try h.trigger("d")
        #expect(Set(h.grants(to: "gpu-agent").map(\.key.taskID)) == ["gpu1", "gpu2"])
        #expect(Set(h.grants(to: "cpu-agent").map(\.key.taskID)) == ["cpu1", "cpu2"])
    }

    @Test func noAgentIsGrantedMoreThanItsSlots() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", (0..<10).map { "t\($0)" }) { $0.entrypoint = "work" })
        h.connect("small", entrypoints: ["work"], slots: 2)
        h.connect("big", entrypoints: ["work"], slots: 3)
        let run = try h.trigger("d")
        #expect(h.grants(to: "small").count == 2)
        #expect(h.grants(to: "big").count == 3)
        h.finish(h.grants(to: "small")[0])
        #expect(h.grants(to: "small").count == 3)
        #expect(h.grants(to: "big").count == 3)
        while let open = h.grants.first(where: { h.taskState(run.runID, $0.key.taskID) == .running }) { h.finish(open) }
        #expect(h.runState(run.runID) == .success)
    }

    @Test func higherPriorityIsGrantedFirstThenEarlierReadiness() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["low", "high", "mid"]) { task in
            task.entrypoint = "work"
            task.priority = ["low": 1, "high": 9, "mid": 5][task.id]!
        })
        try h.apply(dag("e", ["first"]) { $0.entrypoint = "work" })
        _ = try h.trigger("e")
        h.clock.advance(milliseconds: 10)
        _ = try h.trigger("d")
        h.connect("a", entrypoints: ["work"], slots: 1)
        for expected in ["high", "mid", "low", "first"] {
            #expect(h.grants.last?.key.taskID == expected)
            h.finish(h.grants.last!)
        }
    }

    @Test func maxActiveRunsQueuesExtraRunsUntilOneFinishes() throws {
        let h = SchedulerHarness()
        var spec = dag("d", ["t"])
        spec.maxActiveRuns = 1
        try h.apply(spec)
        h.connect("a", entrypoints: ["t"], slots: 4)
        let first = try h.trigger("d")
        let second = try h.trigger("d")
        #expect(h.runState(first.runID) == .running)
        #expect(h.runState(second.runID) == .queued)
        #expect(h.grants.count == 1)
        h.finish(h.grants[0])
        #expect(h.runState(first.runID) == .success)
        #expect(h.runState(second.runID) == .running)
        #expect(h.grants.count == 2)
    }

    @Test func maxActiveTasksOfOneDAGDoesNotBlockAnother() throws {
        let h = SchedulerHarness()
        var limited = dag("limited", ["a", "b", "c"]) { $0.entrypoint = "work" }
        limited.maxActiveTasks = 1
        try h.apply(limited)
        try h.apply(dag("other", ["x"]) { $0.entrypoint = "work" })
        let run = try h.trigger("limited")
        _ = try h.trigger("other")
        h.connect("a", entrypoints: ["work"], slots: 10)
        #expect(h.grants.filter { $0.dagID == "limited" }.count == 1)
        #expect(h.grants.filter { $0.dagID == "other" }.count == 1)
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: "c")) == "DAG 'limited' is at its max_active_tasks"
            || h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: "b")) == "DAG 'limited' is at its max_active_tasks")
        h.finish(h.grants[0])
        #expect(h.grants.filter { $0.dagID == "limited" }.count == 2)
    }

    @Test func queueSlotCapLimitsLeasesAcrossAgents() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(queueSlotCaps: ["default": 2]))
        try h.apply(dag("d", ["a", "b", "c"]) { $0.entrypoint = "work" })
        h.connect("x", entrypoints: ["work"], slots: 5)
        h.connect("y", entrypoints: ["work"], slots: 5)
        let run = try h.trigger("d")
        #expect(h.grants.count == 2)
        let waiting = ["a", "b", "c"].first { h.taskState(run.runID, $0) == .queued }!
        #expect(h.scheduler.waitReason(TaskKey(runID: run.runID, taskID: waiting)) == "queue 'default' is at its slot cap")
        h.finish(h.grants[0])
        #expect(h.grants.count == 3)
    }

    @Test func triggerRejectsAnUndeclaredParameterAndCreatesNothing() throws {
        let h = SchedulerHarness()
        var spec = dag("d", ["t"]) { $0.params = ["batch": "10"] }
        spec.params = ["day": "today"]
        try h.apply(spec)
        #expect(throws: SchedulerError.unknownParam(dagID: "d", name: "nope")) { try h.trigger("d", params: ["nope": "1"]) }
        #expect(h.store.runs(ofDAG: "d").isEmpty)
        h.connect("a", entrypoints: ["t"])
        _ = try h.trigger("d", params: ["batch": "20"])
        #expect(h.grants[0].params == ["day": "today", "batch": "20"])
    }

    @Test func triggerOfUnknownDAGIsAnError() {
        let h = SchedulerHarness()
        #expect(throws: SchedulerError.unknownDAG("ghost")) { try h.trigger("ghost") }
    }
}
