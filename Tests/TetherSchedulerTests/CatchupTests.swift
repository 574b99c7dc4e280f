import Foundation
import Testing
import TetherScheduler

/// `catchup: true`: every missed schedule interval runs once, in order, within
/// max_active_runs; off, only the latest missed one does (VersioningAndCronTests).
@Suite struct CatchupTests {
    /// 2026-01-01T00:10:00Z
    static let start = Instant(millisecondsSinceEpoch: 1_767_226_200_000)
    static let minute: Int64 = 60_000

    private static func quarterHourly(maxActiveRuns: Int = 100, paused: Bool = false) -> DAGSpec {
        var spec = dag("d", ["a"])
        spec.schedule = "*/15 * * * *"
        spec.catchup = true
        spec.maxActiveRuns = maxActiveRuns
        spec.paused = paused
        return spec
    }

    private static func at(_ minutes: Int64) -> Instant {  // minutes after 2026-01-01T00:00Z
        Instant(millisecondsSinceEpoch: 1_767_225_600_000 + minutes * minute)
    }

    @Test func everyIntervalMissedDuringDowntimeRunsOnceInOrder() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(Self.quarterHourly())
        _ = h.advance(5 * Self.minute)  // 00:15 fires
        #expect(h.store.runs(ofDAG: "d").map(\.logicalDate) == [Self.at(15)])
        // Down from 00:15 to 03:07: 00:30 ... 03:00, eleven instants, each runs.
        h.clock.set(Self.at(187))
        h.restart()
        h.scheduler.tick()
        h.flush()
        let runs = h.store.runs(ofDAG: "d")
        #expect(runs.map(\.logicalDate) == stride(from: 15, through: 180, by: 15).map { Self.at(Int64($0)) })
        // Each run's interval starts where the one before ended.
        for (earlier, later) in zip(runs, runs.dropFirst()) { #expect(later.dataInterval.start == earlier.dataInterval.end) }
        #expect(h.scheduler.nextScheduledRun("d") == Self.at(195))
        // A second restart owes nothing more.
        h.restart()
        h.scheduler.tick()
        h.flush()
        #expect(h.store.runs(ofDAG: "d").count == 12)
    }

    @Test func theBacklogIsCreatedAsRunsFinishNeverAboveMaxActiveRuns() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(Self.quarterHourly(maxActiveRuns: 2))
        _ = h.advance(80 * Self.minute)  // 01:30: 00:15 ... 01:30 are due, six runs
        h.connect("x", entrypoints: ["a"], slots: 10)  // now: an agent silent for 80 minutes would be dead
        #expect(h.store.runs(ofDAG: "d").map(\.logicalDate) == [Self.at(15), Self.at(30)])
        #expect(h.scheduler.nextScheduledRun("d") == nil)  // a backlog: no timer, finishing runs drive it
        var done: [Instant] = []
        while let grant = h.grants.first(where: { h.runState($0.key.runID) == .running }) {
            h.finish(grant)
            done.append(h.store.run(grant.key.runID)!.logicalDate)
            #expect(h.scheduler.activeRunCount(ofDAG: "d") <= 2)
        }
        #expect(done == [15, 30, 45, 60, 75, 90].map { Self.at($0) })
        #expect(h.scheduler.nextScheduledRun("d") == Self.at(105))
    }

    @Test func unpausingACatchupDAGRunsWhatItMissedWhilePaused() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(Self.quarterHourly(paused: true))
        _ = h.advance(50 * Self.minute)  // 01:00; nothing runs while paused
        #expect(h.store.runs(ofDAG: "d").isEmpty)
        try h.scheduler.setPaused("d", false)
        h.flush()
        // Owed since the DAG was created (00:10): 00:15 ... 01:00.
        #expect(h.store.runs(ofDAG: "d").map(\.logicalDate) == [15, 30, 45, 60].map { Self.at($0) })
    }

    @Test func aNewCatchupDAGOwesNothingFromBeforeItWasApplied() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.start))
        try h.apply(Self.quarterHourly())
        h.flush()
        #expect(h.store.runs(ofDAG: "d").isEmpty)
        #expect(h.scheduler.nextScheduledRun("d") == Self.at(15))
    }

    @Test func catchupIsPartOfTheContentHashOnlyWhenOn() {
        var spec = dag("d", ["a"])
        let off = spec.contentHash
        spec.catchup = true
        #expect(spec.contentHash != off)
        spec.catchup = false
        #expect(spec.contentHash == off)
    }

    @Test func aSpecStoredBeforeCatchupExistedReadsWithItOff() throws {
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(Self.quarterHourly())) as! [String: Any]
        json["catchup"] = nil
        let spec = try JSONDecoder().decode(DAGSpec.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(!spec.catchup && spec.schedule == "*/15 * * * *" && spec.tasks.count == 1)
    }
}
