import Testing
@testable import TetherScheduler

@Suite struct TriggerRuleTests {
    private static func summary(success: Int = 0, failed: Int = 0, skipped: Int = 0, pending: Int = 0) -> UpstreamSummary {
        UpstreamSummary(total: success + failed + skipped + pending, succeeded: success, failed: failed, skipped: skipped)
    }

    /// (rule, upstream summary, decision): Airflow's table, including early decisions.
    static let table: [(TriggerRule, UpstreamSummary, TriggerDecision)] = [
        (.allSuccess, summary(success: 2), .run),
        (.allSuccess, summary(success: 1, pending: 1), .wait),
        (.allSuccess, summary(failed: 1, pending: 1), .upstreamFailed),
        (.allSuccess, summary(success: 1, skipped: 1), .skip),
        (.allFailed, summary(failed: 2), .run),
        (.allFailed, summary(failed: 1, pending: 1), .wait),
        (.allFailed, summary(success: 1, pending: 1), .skip),
        (.allDone, summary(success: 1, failed: 1), .run),
        (.allDone, summary(failed: 1, pending: 1), .wait),
        (.oneSuccess, summary(success: 1, pending: 1), .run),
        (.oneSuccess, summary(failed: 1, pending: 1), .wait),
        (.oneSuccess, summary(failed: 1, skipped: 1), .upstreamFailed),
        (.oneSuccess, summary(skipped: 2), .skip),
        (.oneFailed, summary(failed: 1, pending: 1), .run),
        (.oneFailed, summary(success: 1, pending: 1), .wait),
        (.oneFailed, summary(success: 2), .skip),
        (.noneFailed, summary(success: 1, skipped: 1), .run),
        (.noneFailed, summary(success: 1, pending: 1), .wait),
        (.noneFailed, summary(failed: 1, pending: 1), .upstreamFailed),
        (.allDoneMinOneSuccess, summary(success: 1, failed: 1), .run),
        (.allDoneMinOneSuccess, summary(success: 1, pending: 1), .wait),
        (.allDoneMinOneSuccess, summary(failed: 2), .upstreamFailed),
        (.allDoneMinOneSuccess, summary(success: 1, skipped: 1), .skip),
        (.allSkipped, summary(skipped: 2), .run),
        (.allSkipped, summary(skipped: 1, pending: 1), .wait),
        (.allSkipped, summary(success: 1, pending: 1), .skip),
        (.allSkipped, summary(failed: 1, skipped: 1), .skip),
        (.oneDone, summary(failed: 1, pending: 1), .run),
        (.oneDone, summary(success: 1, pending: 1), .run),
        (.oneDone, summary(skipped: 1, pending: 1), .wait),
        (.oneDone, summary(skipped: 2), .skip),
        (.noneFailedMinOneSuccess, summary(success: 1, skipped: 1), .run),
        (.noneFailedMinOneSuccess, summary(success: 1, pending: 1), .wait),
        (.noneFailedMinOneSuccess, summary(failed: 1, skipped: 1), .upstreamFailed),
        (.noneFailedMinOneSuccess, summary(skipped: 2), .skip),
        (.noneSkipped, summary(success: 1, failed: 1), .run),
        (.noneSkipped, summary(success: 1, pending: 1), .wait),
        (.noneSkipped, summary(skipped: 1, pending: 1), .skip),
        (.always, summary(pending: 2), .run),
        (.always, summary(failed: 2), .run),
    ]

    @Test(arguments: 0..<table.count)
    func ruleDecidesAsAirflowDoes(_ row: Int) {
        let (rule, upstream, expected) = Self.table[row]
        #expect(rule.decide(upstream) == expected, "\(rule) with \(upstream)")
    }

    @Test(arguments: TriggerRule.allCases)
    func taskWithoutUpstreamRunsAtOnce(_ rule: TriggerRule) {
        #expect(rule.decide(UpstreamSummary()) == .run)
    }

    /// End to end: upstream a succeeds, b fails; what each rule makes of task c.
    @Test(arguments: [
        (TriggerRule.allSuccess, TaskState.upstreamFailed), (.allFailed, .skipped), (.allDone, .queued),
        (.oneSuccess, .queued), (.oneFailed, .queued), (.noneFailed, .upstreamFailed),
        (.allDoneMinOneSuccess, .queued), (.allSkipped, .skipped), (.oneDone, .queued),
        (.noneFailedMinOneSuccess, .upstreamFailed), (.noneSkipped, .queued),
    ])
    func ruleAppliedToMixedOutcomes(_ rule: TriggerRule, _ expected: TaskState) throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "b", "c<a,b"]) { task in
            if task.id == "c" { task.triggerRule = rule }
        })
        h.connect("x", entrypoints: ["a", "b"], slots: 2)
        let run = try h.trigger("d")
        h.finish(h.grants.first { $0.key.taskID == "a" }!, .succeeded)
        h.finish(h.grants.first { $0.key.taskID == "b" }!, .failed)
        #expect(h.taskState(run.runID, "c") == expected)
        if expected.isFinal {
            #expect(h.runState(run.runID) == .failed)  // b failed
        }
    }

    @Test func alwaysTaskRunsWhileItsUpstreamRuns() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "c<a"]) { task in
            if task.id == "c" { task.triggerRule = .always }
        })
        h.connect("x", entrypoints: ["a", "c"], slots: 2)
        let run = try h.trigger("d")
        #expect(h.taskState(run.runID, "a") == .running)
        #expect(h.taskState(run.runID, "c") == .running)
    }

    @Test func skippedTaskPropagatesThroughAllSuccessChain() throws {
        let h = SchedulerHarness()
        try h.apply(dag("d", ["a", "onfail<a", "after<onfail"]) { task in
            if task.id == "onfail" { task.triggerRule = .allFailed }
        })
        h.connect("x", entrypoints: ["a"])
        let run = try h.trigger("d")
        h.finish(h.grants[0])
        #expect(h.taskState(run.runID, "onfail") == .skipped)
        #expect(h.taskState(run.runID, "after") == .skipped)
        #expect(h.runState(run.runID) == .success)
    }
}
