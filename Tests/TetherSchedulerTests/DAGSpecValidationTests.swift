import Testing
import TetherScheduler

private func task(_ id: String, _ dependsOn: [String] = []) -> TaskSpec {
    TaskSpec(id: id, entrypoint: "run", dependsOn: dependsOn)
}

private func dag(_ tasks: [TaskSpec]) -> DAGSpec {
    DAGSpec(dagID: "d", tasks: tasks)
}

/// The problems' descriptions, for readable comparisons.
private func report(_ spec: DAGSpec) -> [String] {
    spec.problems().map(\.description)
}

@Suite struct DAGSpecValidationTests {
    @Test func validSpecPasses() throws {
        let spec = DAGSpec(
            dagID: "nightly.etl-v2", description: "ETL", schedule: "*/15 * * * *", maxActiveRuns: 2, maxActiveTasks: 4,
            params: ["region": "eu"],
            tasks: [task("extract"), task("a", ["extract"]), task("b", ["extract"]), task("load", ["a", "b"])]
        )
        try spec.validate()
        #expect(spec.problems().isEmpty)
    }

    @Test func validateThrowsEveryProblemNotJustTheFirst() {
        var bad = task("x y")
        bad.retry.retries = 101
        let spec = DAGSpec(dagID: "", maxActiveRuns: 0, tasks: [bad, task("z", ["nope"])])
        #expect(throws: DAGSpecError.self) { try spec.validate() }
        #expect(report(spec) == [
            "field 'dag_id': must not be empty",
            "field 'max_active_runs': is 0; must be 1...1000",
            "task 'x y' field 'id': 'x y' may only contain A-Z a-z 0-9 . _ -",
            "task 'x y' field 'retries': is 101; must be 0...100",
            "task 'z' field 'depends_on': unknown task 'nope'",
        ])
    }

    @Test func aDAGNeedsAtLeastOneTask() {
        #expect(report(dag([])) == ["field 'tasks': a DAG needs at least one task"])
    }

    @Test func duplicateTaskIdsAreReportedOnTheLaterTask() {
        let problems = dag([task("a"), task("b"), task("a")]).problems()
        #expect(problems.map(\.description) == ["task 'a' field 'id': duplicate task id (task #1 has it too)"])
        #expect(problems.first?.taskIndex == 2)
    }

    @Test func unknownRepeatedAndSelfDependenciesAreReported() {
        #expect(report(dag([task("a"), task("b", ["a", "a", "b", "c"])])) == [
            "task 'b' field 'depends_on': 'a' is listed twice",
            "task 'b' field 'depends_on': a task cannot depend on itself",
            "task 'b' field 'depends_on': unknown task 'c'",
        ])
    }

    @Test func cycleIsPrintedInRunOrderFromItsFirstTaskInTheFile() {
        // c runs after b, b after a, a after c.
        let spec = dag([task("start"), task("a", ["c", "start"]), task("b", ["a"]), task("c", ["b"])])
        #expect(report(spec) == ["task 'a' field 'depends_on': dependency cycle a -> b -> c -> a"])
    }

    @Test func everyIndependentCycleIsReported() {
        let spec = dag([task("a", ["b"]), task("b", ["a"]), task("x", ["y"]), task("y", ["x"]), task("ok", ["a"])])
        #expect(report(spec) == [
            "task 'a' field 'depends_on': dependency cycle a -> b -> a",
            "task 'x' field 'depends_on': dependency cycle x -> y -> x",
        ])
    }

    @Test func longChainWithoutCycleIsAccepted() {
        let chain = (0..<DAGSpecLimits.maxTasks).map { index in task("t\(index)", index == 0 ? [] : ["t\(index - 1)"]) }
        #expect(dag(chain).problems().isEmpty)
    }

    @Test func badCronIsReportedWithTheCronError() {
        var spec = dag([task("a")])
        spec.schedule = "0 0 * * FUN"
        #expect(report(spec) == ["field 'schedule': cron day-of-week field: bad token 'FUN': 'FUN' is not a number or a name like SUN"])
        spec.schedule = "0 0 30 2 *"
        #expect(report(spec) == ["field 'schedule': cron expression '0 0 30 2 *' can never fire: no month has those days"])
    }

    @Test func identifierCharsetAndLengthApplyToEveryNamedThing() {
        var t = TaskSpec(id: "ok", entrypoint: "run/x", queue: "", params: ["bad key": "v"])
        t.params[String(repeating: "k", count: 129)] = "v"
        var spec = DAGSpec(dagID: "..", params: ["é": "v"], tasks: [t])
        spec.dagID = ".."
        #expect(report(spec) == [
            "field 'dag_id': must not be '.' or '..'",
            "field 'params': key 'é': 'é' may only contain A-Z a-z 0-9 . _ -",
            "task 'ok' field 'entrypoint': 'run/x' may only contain A-Z a-z 0-9 . _ -",
            "task 'ok' field 'queue': must not be empty",
            "task 'ok' field 'params': key 'bad key': 'bad key' may only contain A-Z a-z 0-9 . _ -",
            "task 'ok' field 'params': key '\(String(repeating: "k", count: 129))': is 129 characters; at most 128",
        ])
        #expect(dag([task(String(repeating: "a", count: 128))]).problems().isEmpty)
    }

    @Test func sizeLimitsAreEnforced() {
        let many = (0...DAGSpecLimits.maxTasks).map { task("t\($0)") }
        #expect(report(dag(many)) == ["field 'tasks': has 1001 tasks; at most 1000"])

        var spec = dag([task("a")])
        spec.description = String(repeating: "x", count: DAGSpecLimits.maxDescriptionBytes) + "\u{0}"
        spec.params = Dictionary(uniqueKeysWithValues: (0...DAGSpecLimits.maxParams).map { ("p\($0)", "") })
        spec.params["p0"] = String(repeating: "v", count: DAGSpecLimits.maxParamValueBytes + 1)
        #expect(report(spec) == [
            "field 'description': is 4097 bytes; at most 4096",
            "field 'description': contains a NUL character",
            "field 'params': has 101 entries; at most 100",
        ])
        spec.description = ""
        spec.params = ["p0": String(repeating: "v", count: DAGSpecLimits.maxParamValueBytes + 1), "p1": "a\u{0}b"]
        #expect(report(spec) == [
            "field 'params': value of 'p0' is 4097 bytes; at most 4096",
            "field 'params': value of 'p1' contains a NUL character",
        ])
    }

    @Test func paramsTotalsAreLimitedPerMapAndPerSpec() {
        // Eight 4 KiB values: each within its limit, together over a map's 32 KiB.
        let value = String(repeating: "v", count: DAGSpecLimits.maxParamValueBytes)
        var spec = dag([task("a")])
        spec.params = Dictionary(uniqueKeysWithValues: (0..<7).map { ("p\($0)", value) })
        #expect(report(spec).isEmpty)
        spec.params["p7"] = value
        #expect(report(spec) == ["field 'params': keys and values total \(8 * (2 + value.utf8.count)) bytes; at most 32768"])

        // Each map within 32 KiB, the spec's maps together over 2 MiB: defaults can copy one
        // map into a thousand tasks.
        var wide = task("t0")
        wide.params = Dictionary(uniqueKeysWithValues: (0..<7).map { ("p\($0)", value) })
        spec = dag((0..<80).map { index in var copy = wide; copy.id = "t\(index)"; return copy })
        let total = 80 * 7 * (2 + value.utf8.count)
        #expect(total > DAGSpecLimits.maxSpecParamsTotalBytes)
        #expect(report(spec) == ["field 'params': the DAG's and its tasks' params (after merging defaults) total \(total) bytes; at most 2097152"])
    }

    @Test func runParamsFollowTheSpecRulesAndNameTheParam() {
        #expect(DAGSpec.runParamsProblems(["day": "2026-01-01"]).isEmpty)
        let huge = String(repeating: "x", count: 3_900_000)
        #expect(DAGSpec.runParamsProblems(["day": huge]) == [
            "value of 'day' is 3900000 bytes; at most 4096",
            "keys and values total 3900003 bytes; at most 32768",
        ])
        #expect(DAGSpec.runParamsProblems([huge: "1"]) == [
            "key '\(huge.prefix(129))...': is 3900000 characters; at most 128",
            "keys and values total 3900001 bytes; at most 32768",
        ])
        #expect(DAGSpec.runParamsProblems(["a": "x\u{0}"]) == ["value of 'a' contains a NUL character"])
        let many = Dictionary(uniqueKeysWithValues: (0..<10_000).map { ("p\($0)", "") })
        #expect(DAGSpec.runParamsProblems(many) == ["has 10000 entries; at most 100"])
    }

    @Test func numericRangesAreEnforced() {
        var t = task("a")
        t.retry = RetryPolicy(retries: -1, delayMilliseconds: -1, maxDelayMilliseconds: -5)
        t.executionTimeoutMilliseconds = 0
        t.priority = Int(Int32.max) + 1
        var spec = dag([t])
        spec.maxActiveRuns = 1_001
        spec.maxActiveTasks = -1
        #expect(report(spec) == [
            "field 'max_active_runs': is 1001; must be 1...1000",
            "field 'max_active_tasks': is -1; must be 0...100000 (0: no limit)",
            "task 'a' field 'retries': is -1; must be 0...100",
            "task 'a' field 'retry_delay': must not be negative",
            "task 'a' field 'max_retry_delay': must not be negative",
            "task 'a' field 'execution_timeout': must be positive when set (leave it out for no limit)",
            "task 'a' field 'priority': is 2147483648; must fit in 32 bits",
        ])
    }

    @Test func errorDescriptionListsOneProblemPerLine() {
        let error = DAGSpecError(problems: dag([task("a", ["b", "c"])]).problems())
        #expect(error.description == "task 'a' field 'depends_on': unknown task 'b'\ntask 'a' field 'depends_on': unknown task 'c'")
    }
}
