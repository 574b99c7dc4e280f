import Synchronization
import Testing
import TetherScheduler

@Suite struct SchedulerClockTests {
    @Test func manualClockMovesOnlyWhenAdvanced() {
        let clock = ManualClock(Instant(millisecondsSinceEpoch: 1_000))
        #expect(clock.now() == Instant(millisecondsSinceEpoch: 1_000))
        clock.advance(milliseconds: 250)
        #expect(clock.now() == Instant(millisecondsSinceEpoch: 1_250))
        clock.set(Instant(millisecondsSinceEpoch: 5_000))
        #expect(clock.now().millisecondsSinceEpoch == 5_000)
    }

    @Test func systemClockNeverGoesBackwards() {
        let clock = SystemClock()
        var previous = clock.now()
        for _ in 0..<1_000 {
            let next = clock.now()
            #expect(next >= previous)
            previous = next
        }
        #expect(previous.millisecondsSinceEpoch > 1_700_000_000_000)
    }

    /// A wall clock an operator steps by an hour, forward then back, while the boot clock
    /// runs on: the scheduler's time follows the boot clock only.
    @Test func systemClockIgnoresWallClockStepsAndFollowsTheBootClock() {
        let wall = Mutex<Int64>(1_767_225_600_000)
        let boot = Mutex<Int64>(5_000_000_000)
        let clock = SystemClock(wallMilliseconds: { wall.withLock { $0 } }, bootNanoseconds: { boot.withLock { $0 } })
        #expect(clock.now().millisecondsSinceEpoch == 1_767_225_600_000)
        boot.withLock { $0 += 2_500_000_000 }
        wall.withLock { $0 += 2_500 + 3_600_000 }  // 2.5 s pass, and the wall clock jumps +1 h
        #expect(clock.now().millisecondsSinceEpoch == 1_767_225_602_500)
        #expect(clock.wallClockOffsetMilliseconds == 3_600_000)
        boot.withLock { $0 += 1_000_000_000 }
        wall.withLock { $0 += 1_000 - 7_200_000 }  // 1 s passes, and it jumps back 2 h
        #expect(clock.now().millisecondsSinceEpoch == 1_767_225_603_500)
        #expect(clock.wallClockOffsetMilliseconds == -3_600_000)
    }

    /// What the scheduler does with that time: after a +1 h wall-clock step nothing expires
    /// early, and after a -1 h step a silent agent's lease still expires on time.
    @Test func wallClockStepsNeitherExpireNorFreezeLeases() throws {
        let wall = Mutex<Int64>(1_767_225_600_000)
        let boot = Mutex<Int64>(0)
        let clock = SystemClock(wallMilliseconds: { wall.withLock { $0 } }, bootNanoseconds: { boot.withLock { $0 } })
        let scheduler = Scheduler(clock: clock, configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000))
        try scheduler.apply(DAGSpec(dagID: "d", tasks: [TaskSpec(id: "t", entrypoint: "work")]))
        try scheduler.trigger(dagID: "d")
        _ = scheduler.agentConnected(AgentRegistration(agentID: "a", queues: ["default"], entrypoints: ["work"], slots: 1))
        guard case .grant(let grant)? = scheduler.takeOutput().effects.first else {
            Issue.record("no grant")
            return
        }
        wall.withLock { $0 += 3_600_000 }
        scheduler.tick()
        #expect(scheduler.leaseIDs(ofAgent: "a") == [grant.leaseID])
        wall.withLock { $0 -= 7_200_000 }
        boot.withLock { $0 += 10_000_000_000 }  // the TTL passes on the boot clock
        scheduler.tick()
        #expect(scheduler.leaseIDs(ofAgent: "a").isEmpty)
    }
}

/// The wall clock stepped back an hour while the server was down: stored deadlines must
/// not hold a dead agent's lease, a retry or a timeout backstop for an extra hour.
@Suite struct RestartAfterAClockStepTests {
    @Test func storedDeadlinesAreRebasedOnTheNewStart() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["retrying", "leased"]) { task in
            task.entrypoint = task.id
            task.retry = RetryPolicy(retries: 1, delayMilliseconds: 5_000)
            if task.id == "leased" { task.executionTimeoutMilliseconds = 60_000 }
        })
        let run = try h.trigger("d")
        h.connect("a", entrypoints: ["retrying", "leased"], slots: 2)
        let retrying = try #require(h.grants.first { $0.key.taskID == "retrying" })
        h.finish(retrying, .failed)  // its retry is due in 5 s
        #expect(h.taskState(run.runID, "retrying") == .upForRetry)

        let stepped = ManualClock(h.clock.now().adding(milliseconds: -3_600_000))
        let restarted = Scheduler(clock: stepped, configuration: h.configuration, snapshot: try h.store.loadSnapshot())
        _ = restarted.takeOutput()
        // Everything due comes within its own duration of the new start, not an hour later.
        #expect(try #require(restarted.nextDeadline()) <= stepped.now().adding(milliseconds: 5_000))
        stepped.advance(milliseconds: 10_000)  // a TTL: the silent agent's lease expires
        restarted.tick()
        #expect(restarted.leaseIDs(ofAgent: "a").isEmpty)
        #expect(restarted.taskInstances(ofRun: run.runID)?["retrying"]?.state == .queued)
    }
}
