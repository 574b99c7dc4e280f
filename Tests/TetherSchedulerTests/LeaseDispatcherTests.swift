import Testing
@testable import TetherScheduler

/// The dispatcher's parking at `max_active_tasks`, driven directly.
@Suite struct LeaseDispatcherTests {
    var dispatcher = LeaseDispatcher(queueCaps: [:])

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
}
