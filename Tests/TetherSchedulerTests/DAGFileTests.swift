import Foundation
import Testing
import TetherDAGFile
import TetherScheduler
import TetherTestSupport

/// The error's problems as `FILE:LINE: …` lines, or "parsed" if `yaml` was accepted.
private func problems(_ yaml: String, file: String = "dags/etl.yaml") -> [String] {
    do {
        _ = try DAGFile.parse(yaml: yaml, sourceName: file)
        return ["parsed"]
    } catch {
        return error.problems.map(\.description)
    }
}

private let minimal = """
    dag_id: nightly_etl
    schedule: "@daily"
    tasks:
      - id: extract
        entrypoint: extract
      - id: load
        entrypoint: load
        queue: gpu
        depends_on: [extract]
    """

@Suite struct DAGFileTests {
    @Test func minimalExampleParsesWithDefaultsApplied() throws {
        let spec = try DAGFile.parse(yaml: minimal, sourceName: "etl.yaml")
        #expect(spec == DAGSpec(
            dagID: "nightly_etl", schedule: "@daily",
            tasks: [
                TaskSpec(id: "extract", entrypoint: "extract"),
                TaskSpec(id: "load", entrypoint: "load", queue: "gpu", dependsOn: ["extract"]),
            ]
        ))
    }

    @Test func everyKeyIsRead() throws {
        let spec = try DAGFile.parse(yaml: """
            dag_id: full
            description: All the keys
            schedule: 0 3 * * MON-FRI
            paused: true
            catchup: true
            max_active_runs: 2
            max_active_tasks: 5
            params: {region: eu, retries: 3, dry: false}
            tasks:
              - id: a
                entrypoint: run_a
                queue: cpu
                trigger_rule: all_done
                retries: 4
                retry_delay: 30s
                retry_exponential_backoff: true
                max_retry_delay: 1h
                execution_timeout: 1h30m
                priority: -7
                params:
                  size: 10
              - id: b
                entrypoint: run_b
                depends_on: a
            """, sourceName: "full.yaml")
        #expect(spec.dagID == "full")
        #expect(spec.description == "All the keys")
        #expect(spec.schedule == "0 3 * * MON-FRI")
        #expect(spec.paused)
        #expect(spec.catchup)
        #expect(spec.maxActiveRuns == 2)
        #expect(spec.maxActiveTasks == 5)
        #expect(spec.params == ["region": "eu", "retries": "3", "dry": "false"])
        #expect(spec.tasks[0] == TaskSpec(
            id: "a", entrypoint: "run_a", queue: "cpu", triggerRule: .allDone,
            retry: RetryPolicy(retries: 4, delayMilliseconds: 30_000, exponentialBackoff: true, maxDelayMilliseconds: 3_600_000),
            executionTimeoutMilliseconds: 5_400_000, priority: -7, params: ["size": "10"]
        ))
        #expect(spec.tasks[1].dependsOn == ["a"])
    }

    @Test func defaultsApplyUnlessATaskOverridesThem() throws {
        let spec = try DAGFile.parse(yaml: """
            dag_id: d
            defaults:
              queue: eu-west
              retries: 3
              retry_delay: 10
              retry_exponential_backoff: true
              max_retry_delay: 5m
              execution_timeout: 1h
              priority: 5
              trigger_rule: none_failed
              params: {env: prod, tier: gold}
            tasks:
              - id: inherits
                entrypoint: e
              - id: overrides
                entrypoint: e
                queue: gpu
                retries: 0
                execution_timeout: 0
                params: {tier: silver}
            """, sourceName: "d.yaml")
        let inherited = RetryPolicy(retries: 3, delayMilliseconds: 10_000, exponentialBackoff: true, maxDelayMilliseconds: 300_000)
        #expect(spec.tasks[0] == TaskSpec(
            id: "inherits", entrypoint: "e", queue: "eu-west", triggerRule: .noneFailed, retry: inherited,
            executionTimeoutMilliseconds: 3_600_000, priority: 5, params: ["env": "prod", "tier": "gold"]
        ))
        var overridden = inherited
        overridden.retries = 0
        #expect(spec.tasks[1] == TaskSpec(
            id: "overrides", entrypoint: "e", queue: "gpu", triggerRule: .noneFailed, retry: overridden,
            executionTimeoutMilliseconds: nil, priority: 5, params: ["env": "prod", "tier": "silver"]
        ))
    }

    @Test func writingDefaultsOutOrReorderingKeepsTheContentHash() throws {
        let reordered = try DAGFile.parse(yaml: """
            tasks:
              - entrypoint: load
                depends_on: extract
                id: load
                queue: gpu
                retries: 0
              - {id: extract, entrypoint: extract, queue: default, trigger_rule: all_success}
            max_active_runs: 16
            schedule: '@daily'
            dag_id: nightly_etl
            """, sourceName: "b.yaml")
        #expect(try reordered.contentHash == DAGFile.parse(yaml: minimal, sourceName: "a.yaml").contentHash)
    }

    @Test func unknownKeyIsAnErrorWithItsLineAndASuggestion() {
        #expect(problems("""
            dag_id: d
            tasks:
              - id: extract
                entrypoint: extract
              - id: load
                entrypoint: load
                depends_ons: [extract]
            schedul: "@daily"
            """) == [
            "dags/etl.yaml:7: task 'load' unknown key 'depends_ons' (did you mean 'depends_on'?)",
            "dags/etl.yaml:8: unknown key 'schedul' (did you mean 'schedule'?)",
        ])
        #expect(problems("dag_id: d\ndefaults:\n  retires: 2\ntasks: [{id: a, entrypoint: a}]")
            == ["dags/etl.yaml:3: unknown key 'retires' under defaults (did you mean 'retries'?)"])
    }

    @Test func wrongTypesNameTaskFieldAndLine() {
        #expect(problems("""
            dag_id: [d]
            paused: maybe
            max_active_runs: two
            tasks:
              - id: a
                entrypoint: {name: x}
                retries: 1.5
                retry_delay: 5 minutes
                trigger_rule: sometimes
                depends_on: {b: c}
                params: [x]
              - just a string
            """) == [
            "dags/etl.yaml:1: field 'dag_id': expected a string, found a list",
            "dags/etl.yaml:2: field 'paused': expected true or false, found 'maybe'",
            "dags/etl.yaml:3: field 'max_active_runs': expected an integer, found 'two'",
            "dags/etl.yaml:6: task 'a' field 'entrypoint': expected a string, found a mapping",
            "dags/etl.yaml:7: task 'a' field 'retries': expected an integer, found '1.5'",
            "dags/etl.yaml:8: task 'a' field 'retry_delay': duration '5 minutes' is not like 500ms, 30s, 5m, 1h30m, 2d or a number of seconds",
            "dags/etl.yaml:9: task 'a' field 'trigger_rule': unknown trigger rule 'sometimes' (one of all_success, all_done, all_failed, one_success, one_failed, none_failed, all_done_min_one_success, all_skipped, one_done, none_failed_min_one_success, none_skipped, always)",
            "dags/etl.yaml:10: task 'a' field 'depends_on': expected a task id or a list of task ids, found a mapping",
            "dags/etl.yaml:11: task 'a' field 'params': expected a mapping of names to values, found a list",
            "dags/etl.yaml:12: task #2 expected a mapping with id and entrypoint, found a scalar",
        ])
    }

    @Test func missingRequiredKeysAreReportedOnce() {
        #expect(problems("description: nothing else") == [
            "dags/etl.yaml:1: field 'dag_id': is required",
            "dags/etl.yaml:1: field 'tasks': is required",
        ])
        #expect(problems("dag_id: d\ntasks:\n  - entrypoint: e\n  - id: b") == [
            "dags/etl.yaml:3: task #1 field 'id': is required",
            "dags/etl.yaml:4: task 'b' field 'entrypoint': is required",
        ])
    }

    @Test func validationProblemsCarryFileTaskFieldAndLine() {
        #expect(problems("""
            dag_id: nightly etl
            schedule: "0 0 30 2 *"
            tasks:
              - id: extract
                entrypoint: extract
              - id: load
                entrypoint: load
                depends_on:
                  - extrct
              - id: extract
                entrypoint: again
            """) == [
            "dags/etl.yaml:1: field 'dag_id': 'nightly etl' may only contain A-Z a-z 0-9 . _ -",
            "dags/etl.yaml:2: field 'schedule': cron expression '0 0 30 2 *' can never fire: no month has those days",
            "dags/etl.yaml:8: task 'load' field 'depends_on': unknown task 'extrct'",
            "dags/etl.yaml:10: task 'extract' field 'id': duplicate task id (task #1 has it too)",
        ])
    }

    @Test func cycleIsReportedWithItsPath() {
        #expect(problems("""
            dag_id: d
            tasks:
              - {id: a, entrypoint: e, depends_on: c}
              - {id: b, entrypoint: e, depends_on: a}
              - {id: c, entrypoint: e, depends_on: b}
            """) == ["dags/etl.yaml:3: task 'a' field 'depends_on': dependency cycle a -> b -> c -> a"])
    }

    @Test func badInheritedValueIsReportedOnceOnTheDefaultsLine() {
        #expect(problems("""
            dag_id: d
            defaults:
              retries: 500
            tasks:
              - {id: a, entrypoint: e}
              - {id: b, entrypoint: e}
              - {id: c, entrypoint: e, retries: 101}
            """) == [
            "dags/etl.yaml:3: field 'defaults.retries': is 500; must be 0...100",
            "dags/etl.yaml:7: task 'c' field 'retries': is 101; must be 0...100",
        ])
    }

    @Test func unquotedCronStarGetsAHint() {
        let found = problems("dag_id: d\nschedule: */15 * * * *\ntasks: [{id: a, entrypoint: e}]")
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("dags/etl.yaml:2: YAML: ") == true)
        #expect(found.first?.contains("quote values that start with '*'") == true)
    }

    @Test func yamlSyntaxErrorsAndDuplicateKeysHaveLines() {
        #expect(problems("dag_id: d\ntasks:\n  - id: a\n   entrypoint: [e\n").first?.hasPrefix("dags/etl.yaml:4: YAML: ") == true)
        #expect(problems("dag_id: d\ndag_id: e\ntasks: []") == ["dags/etl.yaml:1: duplicate key 'dag_id'"])
        #expect(problems("dag_id: d\ntasks: []\n---\ndag_id: e") == ["dags/etl.yaml:3: YAML: expected a single document in the stream, but found another document"])
    }

    @Test func emptyAndNonMappingDocumentsAreRejected() {
        #expect(problems("") == ["dags/etl.yaml:1: file is empty; expected a mapping with dag_id and tasks"])
        #expect(problems("# only a comment\n") == ["dags/etl.yaml:1: file is empty; expected a mapping with dag_id and tasks"])
        #expect(problems("- a\n- b") == ["dags/etl.yaml:1: expected a mapping with dag_id and tasks, found a list"])
        #expect(problems("dag_id: d\ntasks:") == ["dags/etl.yaml:2: field 'tasks': is empty; a DAG needs at least one task"])
    }

    @Test func billionLaughsIsStoppedByTheExpansionBudgetWhateverItsLineBreaks() {
        // Nine levels of nine aliases (~10⁹ nodes), used as a mapping key and as a value.
        // libyaml also breaks lines at CR, NEL, LS and PS; an anchor screen that knew only
        // LF let such a document through to cost minutes of hashing.
        for lineBreak in ["\n", "\r\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            for useAsKey in [true, false] {
                var bomb = "a: &a [x, x, x, x, x, x, x, x, x]" + lineBreak
                for (previous, name) in zip("abcdefgh", "bcdefghi") {
                    bomb += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]" + lineBreak
                }
                bomb += useAsKey ? "? *i" + lineBreak + ": boom" + lineBreak : "boom: *i" + lineBreak
                // The budget's error, not a parse: without the budget each takes ~80 s and
                // then succeeds, which the suite's time limit would catch.
                let found = problems(bomb)
                #expect(found.count == 1, "\(lineBreak.unicodeScalars.map(\.value)) key: \(useAsKey)")
                #expect(found.first?.contains("document expands to more than 100,000 nodes") == true, "\(found)")
            }
        }
    }

    @Test func aliasedTextIsChargedPerCopy() {
        let big = String(repeating: "x", count: 100_000)
        let keys = (0..<50).map { "k\($0): *big" }.joined(separator: ", ")
        let found = problems("dag_id: d\ndescription: &big \(big)\nparams: {\(keys)}\ntasks: [{id: a, entrypoint: e}]")
        #expect(found == ["dags/etl.yaml:3: document expands to more than 4,194,304 bytes of text (aliases count as copies of what they name)"])
    }

    @Test func anchorsAndAliasesForSharedValuesWork() throws {
        let yaml = """
            dag_id: d
            params: &common {region: eu, tier: gold}
            defaults:
              queue: &q gpu
            tasks:
              - id: a
                entrypoint: e
                params: *common
              - id: b
                entrypoint: e
                queue: *q
                params: {region: *q}
            """
        let spec = try DAGFile.parse(yaml: yaml, sourceName: "a.yaml")
        #expect(spec.params == ["region": "eu", "tier": "gold"])
        #expect(spec.tasks.map(\.queue) == ["gpu", "gpu"])
        #expect(spec.tasks[0].params == ["region": "eu", "tier": "gold"])
        #expect(spec.tasks[1].params == ["region": "gpu"])
        // A lone or embedded ampersand is just text.
        #expect(problems("dag_id: d\ndescription: R&D & more\nparams: {url: 'http://x?a=1&b=2'}\ntasks: [{id: a, entrypoint: e}]") == ["parsed"])
    }

    @Test func screenCountsLinesAsLibYAMLDoes() {
        #expect(problems("dag_id: d\r\ndescription: a\rb: \u{2028}c: x\u{0}") == ["dags/etl.yaml:4: file contains a NUL character"])
    }

    @Test func oversizedNulAndNonUTF8InputIsRejected() throws {
        let big = "dag_id: d\ndescription: " + String(repeating: "x", count: DAGFile.maxInputBytes) + "\n"
        #expect(problems(big) == ["dags/etl.yaml: file is \(big.utf8.count) bytes; at most 1048576 (1 MiB)"])
        #expect(problems("dag_id: d\ndescription: a\u{0}b\n") == ["dags/etl.yaml:2: file contains a NUL character"])
        do {
            _ = try DAGFile.parse(bytes: Array("dag_id: d\ndescription: ".utf8) + [0xC3, 0x28], sourceName: "raw.yaml")
            Issue.record("invalid UTF-8 was accepted")
        } catch {
            #expect(error.description == "raw.yaml:2: file is not valid UTF-8")
        }
        #expect(try DAGFile.parse(bytes: Array(minimal.utf8), sourceName: "raw.yaml").dagID == "nightly_etl")
    }

    @Test func deepNestingIsRejectedByTheParserNotTheStack() {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let yaml = "dag_id: " + String(repeating: open, count: 100_000) + String(repeating: close, count: 100_000)
            let found = problems(yaml)
            #expect(found.count == 1)
            #expect(found.first?.contains("Maximum nesting level reached") == true)
        }
        let blockNesting = (0..<5_000).map { String(repeating: " ", count: $0) + "- " }.joined(separator: "\n")
        #expect(problems(blockNesting).count == 1)
    }

    @Test func tooManyTasksAreRejectedWithoutReadingThem() {
        let yaml = "dag_id: d\ntasks:\n" + String(repeating: "  - {id: t, entrypoint: e}\n", count: DAGSpecLimits.maxTasks + 1)
        #expect(problems(yaml) == ["dags/etl.yaml:3: field 'tasks': has 1001 tasks; at most 1000"])
    }

    @Test func exampleFanOutDAGIsValid() throws {
        let url = Repository.root.appendingPathComponent("examples/dags/fanout.yaml")
        let spec = try DAGFile.parse(bytes: Array(try Data(contentsOf: url)), sourceName: "examples/dags/fanout.yaml")
        #expect(spec.tasks.map(\.id) == ["extract", "transform_a", "transform_b", "transform_c", "load"])
        #expect(spec.tasks.first { $0.id == "transform_c" }?.retry.retries == 2)
        #expect(spec.tasks.first { $0.id == "load" }?.dependsOn == ["transform_a", "transform_b", "transform_c"])
    }

    /// Scripts/fuzz dagfile's seeds, and any input it once crashed on, kept as regressions.
    @Test func fuzzCorpusParsesOrExplainsItself() throws {
        let directory = Repository.root.appendingPathComponent("Tests/Fuzz/corpus/dagfile")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.contains("bomb-ls-key.yaml"))
        for name in names {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
            do {
                _ = try DAGFile.parse(bytes: bytes, sourceName: name)
                #expect(!name.hasPrefix("bomb"), "\(name) was accepted")
            } catch {
                #expect(!error.problems.isEmpty)
                #expect(!name.hasPrefix("bomb") || error.description.contains("100,000 nodes"), "\(name): \(error)")
            }
        }
    }

    @Test func randomAndMutatedInputNeverCrashesAndAlwaysExplainsItself() {
        var generator = SplitMix64(seed: 0x7E7E_D46F)
        let alphabet = Array("abz019 :-[]{},\n\t\"'&*!|>#%@?~.\\".utf8)
        let seeds = [Array(minimal.utf8), Array("dag_id: d\ndefaults: {retries: 2}\ntasks: [{id: a, entrypoint: e, params: {k: v}}]".utf8)]
        var parsed = 0
        for round in 0..<600 {
            var bytes = seeds[round % seeds.count]
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                let position = Int.random(in: 0...bytes.count, using: &generator)
                let byte = alphabet.randomElement(using: &generator)!
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: bytes.insert(byte, at: position)
                case 1: if position < bytes.count { bytes[position] = byte }
                case 2: if position < bytes.count { bytes.remove(at: position) }
                default:
                    let end = min(bytes.count, position + Int.random(in: 1...20, using: &generator))
                    bytes.insert(contentsOf: bytes[position..<end], at: position)
                }
            }
            if round % 50 == 0 {
                bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            do {
                let spec = try DAGFile.parse(bytes: bytes, sourceName: "fuzz.yaml")
                #expect(spec.problems().isEmpty, "round \(round): accepted an invalid spec")
                parsed += 1
            } catch {
                #expect(!error.problems.isEmpty, "round \(round): error without problems")
                #expect(error.problems.allSatisfy { $0.description.hasPrefix("fuzz.yaml") && !$0.message.isEmpty })
            }
        }
        // Light mutation should leave some inputs valid; all-valid would mean the mutator is broken.
        #expect(parsed > 0 && parsed < 600)
    }
}

/// The callback and deadline keys of docs/dag-format.md.
@Suite struct CallbackKeysDAGFileTests {
    @Test func callbackKeysAndDeadlinesAreReadAndInherited() throws {
        let spec = try DAGFile.parse(yaml: """
            dag_id: d
            on_success: celebrate
            on_failure: page
            on_deadline_miss: late
            deadline: 06:30
            defaults: {queue: etl, on_failure: notify, on_retry: retrying}
            tasks:
              - {id: a, entrypoint: a}
              - {id: b, entrypoint: b, on_failure: "", on_success: done}
            """, sourceName: "d.yaml")
        #expect(spec.onSuccess == "celebrate" && spec.onFailure == "page" && spec.onDeadlineMiss == "late")
        #expect(spec.deadline == .timeOfDay(minutes: 6 * 60 + 30) && spec.callbackQueue == "etl")
        #expect(spec.tasks[0].onFailure == "notify" && spec.tasks[0].onRetry == "retrying" && spec.tasks[0].onSuccess == "")
        #expect(spec.tasks[1].onFailure == "" && spec.tasks[1].onSuccess == "done")
        let duration = try DAGFile.parse(yaml: "dag_id: d\ndeadline: 2h\ntasks: [{id: a, entrypoint: a}]", sourceName: "d.yaml")
        #expect(duration.deadline == .afterCreation(milliseconds: 7_200_000))
        let none = try DAGFile.parse(yaml: "dag_id: d\ndeadline: 0\ntasks: [{id: a, entrypoint: a}]", sourceName: "d.yaml")
        #expect(none.deadline == nil)
    }

    @Test func badCallbackKeysAndReservedTaskIdsAreReportedWithLines() {
        #expect(problems("""
            dag_id: d
            deadline: 25:00
            on_failure: "no good"
            tasks:
              - {id: on_failure.1, entrypoint: a, on_retry: "bad name"}
            """) == [
                "dags/etl.yaml:2: field 'deadline': expected a time of day HH:MM from 00:00 to 23:59, found '25:00'",
                "dags/etl.yaml:3: field 'on_failure': 'no good' may only contain A-Z a-z 0-9 . _ -",
                "dags/etl.yaml:5: task 'on_failure.1' field 'id': 'on_failure.1' is reserved: callback task instances are named <kind>.<number>",
                "dags/etl.yaml:5: task 'on_failure.1' field 'on_retry': 'bad name' may only contain A-Z a-z 0-9 . _ -",
            ])
        #expect(problems("dag_id: d\ntasks: [{id: on_failure.x, entrypoint: a}]") == ["parsed"])
        // A bad defaults.queue (also where DAG-level callbacks run) is reported once, on its line.
        #expect(problems("dag_id: d\ndefaults:\n  queue: bad q\ntasks: [{id: a, entrypoint: a}, {id: b, entrypoint: b, queue: q}]")
                == ["dags/etl.yaml:3: field 'defaults.queue': 'bad q' may only contain A-Z a-z 0-9 . _ -"])
    }

    @Test func callbackKeysChangeTheHashOnlyWhenSet() throws {
        let plain = DAGSpec(dagID: "d", tasks: [TaskSpec(id: "a", entrypoint: "a")])
        // A spec without the new keys encodes as before they existed: nothing is appended.
        let encoding = String(decoding: plain.canonicalEncoding, as: UTF8.self)
        for name in ["on_success", "on_failure", "on_retry", "on_deadline_miss", "deadline", "callback_queue"] {
            #expect(!encoding.contains(name))
        }
        var hashes: Set<String> = [plain.contentHash]
        var spec = plain
        spec.onFailure = "page"; hashes.insert(spec.contentHash)
        spec.deadline = .afterCreation(milliseconds: 60_000); hashes.insert(spec.contentHash)
        spec.deadline = .timeOfDay(minutes: 1); hashes.insert(spec.contentHash)
        spec.tasks[0].onRetry = "r"; hashes.insert(spec.contentHash)
        spec.callbackQueue = "q"; hashes.insert(spec.contentHash)
        #expect(hashes.count == 6)
    }
}
