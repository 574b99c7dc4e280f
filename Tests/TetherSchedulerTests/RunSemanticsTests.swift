import Testing
import TetherScheduler

/// Logical dates and data intervals, idempotent triggers, paused DAGs holding manual
/// runs, and why a queued run waits.
@Suite struct RunSemanticsTests {
    /// 2026-01-01T00:10:00Z
    static let start = Instant(millisecondsSinceEpoch: 1_767_226_200_000)
    static let midnight = Instant(millisecondsSinceEpoch: 1_767_225_600_000)  // 2026-01-01T00:00:00Z
    static let hour: Int64 = 3_600_000
    static let day: Int64 = 86_400_000

    private static func scheduled(_ schedule: String, maxActiveRuns: Int = 16) -> DAGSpec {
        var spec = dag("d", ["a"])
        spec.schedule = schedule
        spec.maxActiveRuns = maxActiveRuns
        return spec
    }

    @Test func scheduledRunProcessesTheIntervalThatJustClosed() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(Self.scheduled("@hourly"))
        _ = h.advance(50 * 60_000)  // 01:00 fires
        let run = try #require(h.store.runs(ofDAG: "d").first)
        let one = Self.midnight.adding(milliseconds: Self.hour)
        #expect(run.logicalDate == one)
        #expect(run.dataInterval == DataInterval(start: Self.midnight, end: one))
    }

    @Test func manualRunOfADailyDAGGetsTheLatestWholeDay() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.midnight.adding(milliseconds: 14 * Self.hour)))
        try h.apply(Self.scheduled("@daily"))
        let run = try h.trigger("d")
        #expect(run.logicalDate == h.clock.now())
        #expect(run.dataInterval == DataInterval(start: Self.midnight.adding(milliseconds: -Self.day), end: Self.midnight))
    }

    @Test func manualRunTakesTheLogicalDateItIsGiven() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(Self.scheduled("@daily"))
        let given = Self.midnight.adding(milliseconds: -10 * Self.day + 5 * Self.hour)  // 2025-12-22T05:00Z
        let run = try h.trigger("d", TriggerRequest(logicalDate: given))
        #expect(run.logicalDate == given)
        #expect(run.dataInterval == DataInterval(start: Self.midnight.adding(milliseconds: -11 * Self.day),
                                                 end: Self.midnight.adding(milliseconds: -10 * Self.day)))
        // The grant carries both to the agent.
        h.connect("x", entrypoints: ["a"])
        let grant = try #require(h.grants.first)
        #expect(grant.logicalDate == given && grant.dataInterval == run.dataInterval)
    }

    @Test func manualRunOfAnUnscheduledDAGSpansItsLogicalDateAlone() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(dag("d", ["a"]))
        let run = try h.trigger("d")
        #expect(run.dataInterval == DataInterval(start: Self.start, end: Self.start))
    }

    @Test func sameIdempotencyKeyReturnsTheFirstRunEvenAfterItFinishedAndARestart() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(dag("d", ["a"]))
        try h.apply(dag("e", ["a"]))
        let first = try h.trigger("d", TriggerRequest(idempotencyKey: "nightly-2026-01-01", note: "by hand"))
        #expect(first.idempotencyKey == "nightly-2026-01-01" && first.note == "by hand")
        #expect(try h.scheduler.trigger(dagID: "d", TriggerRequest(idempotencyKey: "nightly-2026-01-01")) == .existing(runID: first.runID))
        // Keys are per DAG.
        #expect(try h.trigger("e", TriggerRequest(idempotencyKey: "nightly-2026-01-01")).dagID == "e")
        h.connect("x", entrypoints: ["a"])
        h.finish(try #require(h.grants.first { $0.key.runID == first.runID }))
        #expect(h.store.run(first.runID)?.state == .success)
        h.restart()
        #expect(try h.scheduler.trigger(dagID: "d", TriggerRequest(idempotencyKey: "nightly-2026-01-01")) == .existing(runID: first.runID))
        #expect(h.store.runs(ofDAG: "d").count == 1)
        // Another key makes another run.
        #expect(try h.trigger("d", TriggerRequest(idempotencyKey: "nightly-2026-01-02")).number == 2)
    }

    @Test func pausedDAGHoldsAManualRunQueuedUntilUnpaused() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(dag("d", ["a"]))
        try h.scheduler.setPaused("d", true)
        h.connect("x", entrypoints: ["a"])
        let run = try h.trigger("d")
        #expect(h.runState(run.runID) == .queued)
        #expect(h.grants.isEmpty)
        #expect(h.scheduler.waitReason(ofRun: run.runID) == "DAG 'd' is paused; the run starts when it is unpaused")
        try h.scheduler.setPaused("d", false)
        h.flush()
        #expect(h.runState(run.runID) == .running)
        #expect(h.grants.count == 1)
        #expect(h.scheduler.waitReason(ofRun: run.runID) == nil)
    }

    @Test func runQueuedBehindMaxActiveRunsSaysSo() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        var spec = dag("d", ["a"])
        spec.maxActiveRuns = 1
        try h.apply(spec)
        let first = try h.trigger("d")
        let second = try h.trigger("d")
        #expect(h.scheduler.waitReason(ofRun: first.runID) == nil)
        #expect(h.scheduler.waitReason(ofRun: second.runID) == "DAG 'd' has 1 of max_active_runs 1 running")
    }

    @Test func cancelReasonIsAddedToTheRunsNote() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(dag("d", ["a"]))
        let run = try h.trigger("d", TriggerRequest(note: "rerun for ticket 12"))
        try h.scheduler.cancelRun(run.runID, reason: "wrong day")
        h.flush()
        #expect(h.store.run(run.runID)?.note == "rerun for ticket 12\ncancelled: wrong day")
    }
}
