import Testing
@testable import TetherScheduler

/// The dispatcher driven directly: parking at `max_active_tasks`, and which agent gets a grant.
@Suite struct LeaseDispatcherTests {
    var dispatcher = LeaseDispatcher(queueCaps: [:])
    var tasksMade = 0

    init() {
        dispatcher.connect(agentID: "agent", queues: ["default", "gpu"], entrypoints: ["work"], slots: 100)
    }

    mutating func enqueue(_ task: String, dag: String = "d", queue: String = "default", priority: Int = 0) {
        dispatcher.enqueue(TaskKey(runID: "r", taskID: task), dagID: dag, queue: queue, entrypoint: "work",
                           priority: priority, readyAt: Instant(millisecondsSinceEpoch: 0))
    }

    /// Grants until none can be made; returns the tasks granted, in order.
    mutating func grantAll() -> [String] {
        var granted: [String] = []
        while let grant = dispatcher.nextGrant() { granted.append(grant.task.key.taskID) }
        return granted
    }

    mutating func release(_ dag: String = "d", queue: String = "default") {
        dispatcher.release(agentID: "agent", dagID: dag, queue: queue, pool: nil)
    }

    /// Re-inserting every parked task on each freed slot made a 10,000-task backlog at
    /// max_active_tasks 16 grant about 90 tasks a second (`tether-torture scheduler-bench
    /// --max-active-tasks 16`).
    @Test mutating func aFreedSlotLetsInOneParkedTaskNotAllOfThem() {
        dispatcher.setLimit(dagID: "d", maxActiveTasks: 1)
        for i in 0..<100 { enqueue("t\(i)") }
        #expect(grantAll() == ["t0"])
        #expect(dispatcher.parkedCount == 99)
        release()
        #expect(dispatcher.parkedCount == 98)
        #expect(grantAll() == ["t1"])
        #expect(dispatcher.parkedCount == 98)
    }

    @Test mutating func parkedTasksRunInPriorityOrderAcrossQueues() {
        dispatcher.setLimit(dagID: "d", maxActiveTasks: 1)
        enqueue("low", priority: 1)
        enqueue("high", priority: 5)
        enqueue("middle", queue: "gpu", priority: 3)
        var order: [String] = []
        for _ in 0..<3 {
            let granted = grantAll()
            #expect(granted.count == 1)
            order += granted
            release(queue: order.last == "middle" ? "gpu" : "default")
        }
        #expect(order == ["high", "middle", "low"])
        #expect(dispatcher.parkedCount == 0)
    }

    @Test mutating func aRemovedStandInLetsTheNextParkedTaskIn() {
        dispatcher.setLimit(dagID: "d", maxActiveTasks: 1)
        for task in ["a", "b", "c"] { enqueue(task) }
        #expect(grantAll() == ["a"])
        release()  // b stands in
        dispatcher.remove(TaskKey(runID: "r", taskID: "b"))
        #expect(grantAll() == ["c"])
    }

    @Test mutating func liftingTheLimitLetsEveryParkedTaskRun() {
        dispatcher.setLimit(dagID: "d", maxActiveTasks: 1)
        for i in 0..<5 { enqueue("t\(i)") }
        #expect(grantAll() == ["t0"])
        dispatcher.setLimit(dagID: "d", maxActiveTasks: 0)
        #expect(grantAll() == ["t1", "t2", "t3", "t4"])
    }

    @Test mutating func aParkedDAGDoesNotHoldUpAnother() {
        dispatcher.setLimit(dagID: "d", maxActiveTasks: 2)
        for i in 0..<10 { enqueue("d\(i)", priority: 9) }
        enqueue("other", dag: "e")
        #expect(grantAll() == ["d0", "d1", "other"])
        release()
        release()
        #expect(grantAll() == ["d2", "d3"])
    }

    // MARK: - Which agent

    /// Grants `count` tasks and returns the agents they went to, in order.
    mutating func agentsGranted(_ count: Int) -> [String] {
        (0..<count).map { _ in
            tasksMade += 1
            enqueue("task-\(tasksMade)")
            return dispatcher.nextGrant()?.agentID ?? "none"
        }
    }

    @Test mutating func aGrantGoesToTheAgentWithTheMostFreeSlotsThenTheLowestID() {
        dispatcher.disconnect(agentID: "agent")
        dispatcher.connect(agentID: "b", queues: ["default"], entrypoints: ["work"], slots: 2)
        dispatcher.connect(agentID: "a", queues: ["default"], entrypoints: ["work"], slots: 1)
        dispatcher.connect(agentID: "c", queues: ["default", "gpu"], entrypoints: ["work"], slots: 2)
        // b and c tie at 2 (b's id is lower); then a, b and c at 1; then none is free.
        #expect(agentsGranted(6) == ["b", "c", "a", "b", "c", "none"])
        dispatcher.release(agentID: "c", dagID: "d", queue: "default", pool: nil)
        dispatcher.release(agentID: "a", dagID: "d", queue: "default", pool: nil)
        #expect(agentsGranted(3) == ["a", "c", "none"])
    }

    @Test mutating func aDisconnectedOrReconfiguredAgentIsRankedAsItIsNow() {
        dispatcher.disconnect(agentID: "agent")
        dispatcher.connect(agentID: "a", queues: ["default"], entrypoints: ["work"], slots: 5)
        dispatcher.connect(agentID: "b", queues: ["default"], entrypoints: ["work"], slots: 3)
        dispatcher.disconnect(agentID: "a")
        #expect(agentsGranted(1) == ["b"])
        // Back with other queues: its old ranking entry no longer stands for it.
        dispatcher.connect(agentID: "a", queues: ["gpu"], entrypoints: ["work"], slots: 5)
        #expect(agentsGranted(1) == ["b"])
        enqueue("on-gpu", queue: "gpu")
        #expect(dispatcher.nextGrant()?.agentID == "a")
        // The same queues as b again, with 2 slots (1 in use): a tie with b, whose id is higher.
        dispatcher.connect(agentID: "a", queues: ["default"], entrypoints: ["work"], slots: 2)
        #expect(agentsGranted(3) == ["a", "b", "none"])
    }

    @Test mutating func manyAlikeAgentsShareTheWorkAsTheirFreeSlotsChange() {
        dispatcher.disconnect(agentID: "agent")
        let ids = (0..<50).map { "agent-\($0 < 10 ? "0" : "")\($0)" }
        for id in ids { dispatcher.connect(agentID: id, queues: ["default"], entrypoints: ["work"], slots: 4) }
        // 200 grants: each agent in id order takes one slot per round of 50.
        let granted = agentsGranted(201)
        #expect(granted.prefix(50) == ids[...])
        #expect(granted.count { $0 == "none" } == 1)
        #expect(Dictionary(grouping: granted.dropLast(), by: { $0 }).values.allSatisfy { $0.count == 4 })
        // Frees: 3 on agent-42, 1 on agent-07. agent-42 leads until both have 1 free.
        for _ in 0..<3 { dispatcher.release(agentID: "agent-42", dagID: "d", queue: "default", pool: nil) }
        dispatcher.release(agentID: "agent-07", dagID: "d", queue: "default", pool: nil)
        #expect(agentsGranted(5) == ["agent-42", "agent-42", "agent-07", "agent-42", "none"])
    }
}
