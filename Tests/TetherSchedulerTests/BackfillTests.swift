import Testing
import TetherScheduler

/// Backfill: one run per schedule interval of a range, never two for one interval.
@Suite struct BackfillTests {
    static let day: Int64 = 86_400_000
    /// 2026-01-10T00:00:00Z: the DAG is applied then, so its schedule's frontier is here.
    static let applied = Instant(millisecondsSinceEpoch: 1_767_225_600_000 + 9 * day)

    private static func daysAgo(_ n: Int64) -> Instant { applied.adding(milliseconds: -n * day) }

    private static func daily() -> DAGSpec {
        var spec = dag("d", ["a"])
        spec.schedule = "@daily"
        return spec
    }

    private static func stored(_ h: SchedulerHarness) -> [StoredRun] {
        h.store.runs(ofDAG: "d").filter { $0.trigger != .manual }.map { StoredRun(run: $0, tasks: h.store.tasks(ofRun: $0.runID)) }
    }

    @Test func aRangeGetsOneRunPerIntervalInOrderAndASecondBackfillAddsNone() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.applied))
        try h.apply(Self.daily())
        let first = try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(5), through: Self.daysAgo(1), rerunFailed: false,
                                             existing: Self.stored(h))
        h.flush()
        #expect(first.created.map(\.logicalDate) == (1...5).reversed().map { Self.daysAgo(Int64($0)) })
        #expect(first.created.allSatisfy { $0.trigger == .backfill })
        #expect(first.created.first?.dataInterval == DataInterval(start: Self.daysAgo(6), end: Self.daysAgo(5)))
        // Overlapping, from the store's view and from memory alike: only the new days.
        let second = try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(7), through: Self.daysAgo(3), rerunFailed: false,
                                              existing: Self.stored(h))
        h.flush()
        #expect(second.created.map(\.logicalDate) == [Self.daysAgo(7), Self.daysAgo(6)])
        #expect(second.existing.count == 3)
        // Even when the caller's store view is stale, memory keeps the interval unique.
        let third = try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(7), through: Self.daysAgo(1), rerunFailed: false, existing: [])
        #expect(third.created.isEmpty)
        let dates = h.store.runs(ofDAG: "d").map(\.logicalDate)
        #expect(dates.count == 7 && Set(dates).count == 7)
    }

    @Test func intervalsPastTheSchedulesFrontierAreLeftToTheSchedule() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.applied))
        try h.apply(Self.daily())
        for _ in 0..<3 { _ = h.advance(Self.day) }  // the schedule runs three days on its own
        let outcome = try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(2), through: Self.applied.adding(milliseconds: 10 * Self.day),
                                               rerunFailed: false, existing: Self.stored(h))
        #expect(outcome.through == Self.applied.adding(milliseconds: 3 * Self.day))
        #expect(outcome.created.map(\.logicalDate) == [Self.daysAgo(2), Self.daysAgo(1), Self.applied])
        #expect(outcome.existing.count == 3)  // the schedule's own days 1-3
    }

    @Test func rerunFailedClearsOnlyTheFailedRunsOfTheRange() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.applied))
        try h.apply(Self.daily())
        h.connect("x", entrypoints: ["a"], slots: 5)
        let made = try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(2), through: Self.daysAgo(1), rerunFailed: false,
                                            existing: [])
        h.flush()
        h.finish(try #require(h.grants.first { $0.key.runID == made.created[0].runID }), .failed)
        h.finish(try #require(h.grants.first { $0.key.runID == made.created[1].runID }))
        let again = try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(2), through: Self.daysAgo(1), rerunFailed: true,
                                             existing: Self.stored(h))
        h.flush()
        #expect(again.created.isEmpty && again.rerun == [made.created[0].runID])
        #expect(h.runState(made.created[0].runID) == .running)
        #expect(h.runState(made.created[1].runID) == .success)
    }

    @Test func badBackfillsAreRefused() throws {
        let h = SchedulerHarness(clock: ManualClock(Self.applied))
        try h.apply(dag("manual", ["a"]))
        try h.apply(Self.daily())
        #expect(throws: SchedulerError.invalidArgument("DAG 'manual' has no schedule to backfill")) {
            try h.scheduler.backfill(dagID: "manual", from: Self.daysAgo(2), through: Self.daysAgo(1), rerunFailed: false, existing: [])
        }
        #expect(throws: SchedulerError.invalidArgument("the range ends before it starts")) {
            try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(1), through: Self.daysAgo(2), rerunFailed: false, existing: [])
        }
        #expect(throws: SchedulerError.self) {  // about 5 years of days
            try h.scheduler.backfill(dagID: "d", from: Self.daysAgo(2_000), through: Self.daysAgo(1), rerunFailed: false, existing: [])
        }
        #expect(h.scheduler.takeOutput().changes.isEmpty)
    }
}
