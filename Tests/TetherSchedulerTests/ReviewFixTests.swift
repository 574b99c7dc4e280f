import Synchronization
import Testing
@testable import TetherScheduler

/// Behaviours that close holes found in review: each test fails without its fix.
@Suite struct HardeningTests {
    @Test func absurdDurationsAreRejectedAndInstantsSaturate() throws {
        let h = SchedulerHarness()
        #expect(throws: SchedulerError.self) {
            try h.scheduler.apply(dag("d", ["t"]) { $0.executionTimeoutMilliseconds = .max })
        }
        #expect(throws: SchedulerError.self) {
            try h.scheduler.apply(dag("d", ["t"]) { $0.retry = RetryPolicy(retries: 1, delayMilliseconds: .max, maxDelayMilliseconds: .max) })
        }
        #expect(Instant(millisecondsSinceEpoch: .max - 1).adding(milliseconds: 10).millisecondsSinceEpoch == .max)
        #expect(Instant(millisecondsSinceEpoch: .min + 1).adding(milliseconds: -10).millisecondsSinceEpoch == .min)
    }

    @Test func aLeaseTheAgentNoLongerListsInItsHeartbeatExpires() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b"]) { $0.entrypoint = "work" })
        h.connect("x", entrypoints: ["work"], slots: 2)
        let run = try h.trigger("d")
        let kept = h.grants[0], forgotten = h.grants[1]
        for _ in 0..<4 {
            h.clock.advance(milliseconds: 4_000)
            h.scheduler.heartbeat(agentID: "x", activeLeaseIDs: [kept.leaseID])
            h.scheduler.tick()
            h.flush()
        }
        #expect(h.store.attempts(of: forgotten.key).first?.outcome == .lost)
        #expect(h.store.attempts(of: kept.key).first?.outcome == .running)
        #expect(h.taskState(run.runID, kept.key.taskID) == .running)
    }

    /// Reported: past a fixed count, lost and rejected attempts were counted as the task's
    /// own failures (`TRIES 2/1`). Now they never are; they have a budget of their own, and
    /// a task that uses it up fails saying so.
    @Test func lostAndRejectedAttemptsNeverUseTheTasksRetriesAndHaveTheirOwnBudget() throws {
        let budget = 8
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000, maxInfrastructureAttempts: budget))
        try h.apply(dag("d", ["t"]))  // retries: 0
        h.connect("x", entrypoints: ["t"])
        let run = try h.trigger("d")
        let key = TaskKey(runID: run.runID, taskID: "t")
        h.finish(h.grants.last!, .rejected)      // re-queued after 1 s, the task's retries untouched
        #expect(h.taskState(run.runID, "t") == .upForRetry)
        #expect(h.advance(999).isEmpty)
        _ = h.advance(1)
        #expect(h.taskState(run.runID, "t") == .running)
        h.clock.advance(milliseconds: 5_000)
        h.scheduler.heartbeat(agentID: "x", activeLeaseIDs: [])  // alive, but the grant never reached it
        _ = h.advance(5_000)                      // lost: re-queued at once
        #expect(h.taskState(run.runID, "t") == .running)
        #expect(h.grants.last!.attempt == 3)
        // More than the old fixed count (5), alternating kinds, and still the task goes on.
        for n in 3..<budget {
            if n.isMultiple(of: 2) {
                h.finish(h.grants.last!, .lost)  // re-leased at once
            } else {
                h.finish(h.grants.last!, .rejected)
                h.clock.advance(milliseconds: 30_000)  // past the longest rejection backoff
                h.scheduler.heartbeat(agentID: "x", activeLeaseIDs: [])  // the agent is alive
                _ = h.advance(0)
            }
            #expect(h.taskState(run.runID, "t") == .running, "after \(n) infrastructure attempts")
        }
        #expect(h.store.task(key)?.infrastructureAttempts == budget - 1)
        h.finish(h.grants.last!, .lost)          // the budget is used up: the task fails, saying why
        #expect(h.taskState(run.runID, "t") == .failed)
        #expect(h.store.task(key)?.infrastructureAttempts == budget)
        let last = try #require(h.store.attempts(of: key).last)
        #expect(last.outcome == .lost)
        #expect(last.message.contains("the task fails: \(budget) of its attempts ended lost or rejected"), "\(last.message)")
        #expect(h.store.attempts(of: key).count == budget)
    }

    /// A task's own failure after lost attempts still has its full retries.
    @Test func aFailureAfterLostAttemptsUsesTheFirstRetry() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["t"]) { $0.retry = RetryPolicy(retries: 1, delayMilliseconds: 0, maxDelayMilliseconds: 0) })
        h.connect("x", entrypoints: ["t"])
        let run = try h.trigger("d")
        for _ in 0..<3 { h.finish(h.grants.last!, .lost) }
        #expect(h.taskState(run.runID, "t") == .running)
        h.finish(h.grants.last!, .failed)         // its own first failure: the one retry
        #expect(h.taskState(run.runID, "t") == .running)
        h.finish(h.grants.last!, .failed)         // its own second failure: out of retries
        #expect(h.taskState(run.runID, "t") == .failed)
        #expect(h.grants.count == 5)
    }

    @Test func cronCreatesNoRunWhileTheDAGIsAtMaxActiveRuns() throws {
        let h = SchedulerHarness(clock: ManualClock(CronRunTests.start))
        var spec = dag("d", ["a"])
        spec.schedule = "*/15 * * * *"
        spec.maxActiveRuns = 1
        try h.apply(spec)
        _ = h.advance(5 * 60_000)        // 00:15: the first run; no agent, so it stays running
        _ = h.advance(3 * 3_600_000)     // twelve more instants while at the limit
        #expect(h.store.runs(ofDAG: "d").count == 1)
        try h.scheduler.cancelRun("d-1")
        h.flush()
        _ = h.advance(15 * 60_000)       // the next instant after the slot freed: one run
        #expect(h.store.runs(ofDAG: "d").count == 2)
    }

    /// A store whose first commit fails and later ones succeed (a brief disk-full).
    final class FlakyStore: SchedulerStore {
        private let commits = Mutex(0)
        func loadSnapshot() throws -> SchedulerSnapshot { SchedulerSnapshot() }
        func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
            let first = commits.withLock { $0 += 1; return $0 == 2 }  // the constructor's own commit is #1
            Task.detached { completion(first ? .failure(SchedulerError.invalidReport("disk full")) : .success(())) }
        }
        func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
            Task.detached { completion(.success(())) }
        }
    }

    @Test func afterAFailedCommitLaterCommitsAreNotActedOn() async throws {
        let delivered = Mutex(0)
        let service = try SchedulerService(store: FlakyStore(), clock: ManualClock()) { _ in delivered.withLock { $0 += 1 } }
        await #expect(throws: SchedulerServiceError.self) { try await service.perform { try $0.apply(dag("d", ["a"])) } }
        await #expect(throws: SchedulerServiceError.self) {
            try await service.perform { $0.agentConnected(AgentRegistration(agentID: "x", queues: ["default"], entrypoints: ["a"], slots: 1)) }
        }
        #expect(service.hasFailed)
        #expect(delivered.withLock { $0 } == 0)
    }

    @Test func aRestartAfterUnpausingDoesNotCatchUpThePausedInstants() throws {
        let h = SchedulerHarness(clock: ManualClock(CronRunTests.start))
        var spec = dag("d", ["a"])
        spec.schedule = "@hourly"
        spec.paused = true
        try h.apply(spec)
        _ = h.advance(5 * 3_600_000)
        try h.scheduler.setPaused("d", false)
        h.flush()
        h.restart()
        h.scheduler.tick()
        h.flush()
        #expect(h.store.runs(ofDAG: "d").isEmpty)
        _ = h.advance(3_600_000)
        #expect(h.store.runs(ofDAG: "d").count == 1)
    }
}
