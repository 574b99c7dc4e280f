import Foundation
import Testing
import TetherTestSupport

/// Run semantics through the CLI, a real server and a real agent: logical dates and data
/// intervals reaching the task, idempotent triggers, a paused DAG holding a manual run.
@Suite struct RunSemanticsEndToEndTests {
    @Test func aDailyDAGsTaskReceivesItsDataIntervalAndARepeatedKeyStartsNothing() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let out = cluster.scratch.path("out")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let script = cluster.scratch.path("record.sh")
            try #"""
                echo "$TETHER_LOGICAL_DATE $TETHER_DATA_INTERVAL_START $TETHER_DATA_INTERVAL_END" > "$OUT/$TETHER_RUN_ID.env"
                cat > "$OUT/$TETHER_RUN_ID.stdin"
                """#.write(toFile: script, atomically: true, encoding: .utf8)
            try cluster.startAgent("a", entrypoints: ["record": ["/usr/bin/env", "OUT=\(out)", "/bin/sh", script]])
            try cluster.apply("""
                dag_id: daily
                schedule: "@daily"
                tasks:
                  - {id: load, entrypoint: record}
                """)
            let trigger = ["run", "trigger", "daily", "--logical-date", "2026-03-15T06:00:00Z",
                           "--idempotency-key", "load-2026-03-14", "--note", "backfill by hand"]
            let first = try cluster.cli(trigger)
            #expect(first.status == 0, "\(first)")
            let runID = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }

            let env = try String(contentsOfFile: "\(out)/\(runID).env", encoding: .utf8)
            #expect(env == "2026-03-15T06:00:00Z 2026-03-14T00:00:00Z 2026-03-15T00:00:00Z\n")
            let stdin = try String(contentsOfFile: "\(out)/\(runID).stdin", encoding: .utf8)
            #expect(stdin.contains(#""logical_date":"2026-03-15T06:00:00Z","data_interval_start":"2026-03-14T00:00:00Z","#
                                   + #""data_interval_end":"2026-03-15T00:00:00Z","params":{}"#), "\(stdin)")

            let show = try cluster.cli(["run", "show", runID])
            #expect(show.stdout.contains("logical date 2026-03-15T06:00:00Z, data interval 2026-03-14T00:00:00Z to 2026-03-15T00:00:00Z"),
                    "\(show)")
            #expect(show.stdout.contains("note: backfill by hand"), "\(show)")

            let again = try cluster.cli(trigger)
            #expect(again.status == 0, "\(again)")
            #expect(again.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == runID)
            #expect(again.stderr.contains("was triggered before with idempotency key 'load-2026-03-14'; no new run"), "\(again)")
            let runs = try cluster.cli(["run", "list", "--dag", "daily", "--json"])
            #expect(runs.stdout.components(separatedBy: "\"runId\"").count == 2, "\(runs)")
        }
    }

    @Test func aPausedDAGsManualRunWaitsVisiblyUntilUnpaused() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.startAgent("a", entrypoints: ["work": ["/bin/true"]])
            try cluster.apply("""
                dag_id: held
                paused: true
                tasks:
                  - {id: t, entrypoint: work}
                """)
            let runID = try cluster.trigger("held")
            let show = try cluster.cli(["run", "show", runID])
            #expect(show.stdout.contains("run \(runID) of held v1: queued"), "\(show)")
            #expect(show.stdout.contains("waiting: DAG 'held' is paused; the run starts when it is unpaused"), "\(show)")
            #expect(try cluster.cli(["dag", "unpause", "held"]).status == 0)
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS")
        }
    }

    @Test func aClearedTaskAndItsDownstreamRunAgainOnAnAgentInTheSameRun() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let marker = cluster.scratch.path("first-attempt-done")
            // Fails the first time it runs, succeeds after.
            let flaky = ["/bin/sh", "-c", "test -e \(marker) || { touch \(marker); exit 3; }"]
            try cluster.startAgent("a", entrypoints: ["flaky": flaky, "work": ["/bin/true"]])
            try cluster.apply("""
                dag_id: clr
                tasks:
                  - {id: extract, entrypoint: flaky}
                  - {id: load, entrypoint: work, depends_on: [extract]}
                """)
            let runID = try cluster.trigger("clr")
            let failed = try cluster.wait(for: runID) { $0.state == "RUN_STATE_FAILED" || $0.state == "RUN_STATE_SUCCESS" }
            #expect(failed.state == "RUN_STATE_FAILED")
            #expect(failed.tasks.first { $0.id == "load" }?.state == "TASK_STATE_UPSTREAM_FAILED")

            let clear = try cluster.cli(["run", "clear", runID, "--task", "extract", "--downstream"])
            #expect(clear.status == 0, "\(clear)")
            #expect(clear.stdout.contains("cleared extract, load"), "\(clear)")
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            let extract = try #require(run.tasks.first { $0.id == "extract" })
            #expect(extract.attempts.map(\.outcome) == ["ATTEMPT_OUTCOME_FAILED", "ATTEMPT_OUTCOME_SUCCEEDED"])
            #expect(extract.attempts.allSatisfy { $0.agent == "a" })
            // The agent kept both attempts' logs.
            for attempt in 1...2 {
                #expect(FileManager.default.fileExists(atPath: "\(cluster.logDirectory("a"))/clr/\(runID)/extract.attempt-\(attempt).log"))
            }

            let busy = try cluster.cli(["run", "clear", "no-such-run"])
            #expect(busy.status == 1 && busy.stderr.contains("unknown run 'no-such-run'"), "\(busy)")
        }
    }

    @Test func aPoolSetWithTheCLIHoldsTwoDAGsToItsSlotsOnRealAgents() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.startAgent("a", slots: 8, entrypoints: ["work": ["/bin/sh", "-c", "sleep 0.3"]])
            let set = try cluster.cli(["pool", "set", "warehouse", "2"])
            #expect(set.status == 0 && set.stdout.contains("warehouse  2"), "\(set)")
            for dagID in ["p1", "p2"] {
                try cluster.apply("""
                    dag_id: \(dagID)
                    defaults: {pool: warehouse}
                    tasks:
                    \((1...3).map { "  - {id: t\($0), entrypoint: work}" }.joined(separator: "\n"))
                    """)
            }
            let runs = try ["p1", "p2"].map { try cluster.trigger($0) }
            let views = try runs.map { runID in
                try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            }
            #expect(views.allSatisfy { $0.state == "RUN_STATE_SUCCESS" })
            // Never more than two of the six attempts at once, across both DAGs.
            let spans = views.flatMap(\.tasks).flatMap(\.attempts).map { ($0.grantedAt, $0.finishedAt) }
            let peak = spans.map { span in spans.filter { $0.0 <= span.0 && span.0 < $0.1 }.count }.max() ?? 0
            #expect(spans.count == 6 && peak == 2, "peak \(peak) of \(spans.count)")

            let list = try cluster.cli(["pool", "list", "--json"])
            #expect(list.stdout.contains("\"name\": \"warehouse\""), "\(list)")
            #expect(try cluster.cli(["pool", "delete", "warehouse"]).status == 0)
            let gone = try cluster.cli(["pool", "delete", "warehouse"])
            #expect(gone.status == 1 && gone.stderr.contains("unknown pool 'warehouse'"), "\(gone)")
            let bad = try cluster.cli(["pool", "set", "no good", "2"])
            #expect(bad.status == 1 && bad.stderr.contains("pool name 'no good'"), "\(bad)")
        }
    }

    @Test func aBackfillRunsEachDayOnceOnAnAgentWithProgressAndARepeatAddsNothing() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let out = cluster.scratch.path("days")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try cluster.startAgent("a", slots: 4, entrypoints: ["day": ["/bin/sh", "-c", "echo $TETHER_DATA_INTERVAL_START >> \(out)/seen"]])
            try cluster.apply("""
                dag_id: nightly
                schedule: "@daily"
                tasks:
                  - {id: load, entrypoint: day}
                """)
            let backfill = ["dag", "backfill", "nightly", "--from", "2026-03-01", "--to", "2026-03-04", "--wait"]
            let first = try cluster.cli(backfill)
            #expect(first.status == 0, "\(first)")
            #expect(first.stderr.contains("4 intervals through 2026-03-04T00:00:00Z, 4 new runs"), "\(first)")
            #expect(first.stderr.contains("backfill nightly: 4 of 4 runs finished, 4 succeeded, 0 failed"), "\(first)")
            #expect(first.stdout.contains("2026-03-01T00:00:00Z") && first.stdout.contains("backfill"), "\(first)")
            let seen = try String(contentsOfFile: "\(out)/seen", encoding: .utf8).split(separator: "\n").sorted()
            #expect(seen == ["2026-02-28T00:00:00Z", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"])

            let again = try cluster.cli(backfill)
            #expect(again.status == 0 && again.stderr.contains("4 intervals through 2026-03-04T00:00:00Z, 0 new runs"), "\(again)")
            let bad = try cluster.cli(["dag", "backfill", "nightly", "--from", "2026-03-04", "--to", "2026-03-01"])
            #expect(bad.status == 1 && bad.stderr.contains("the range ends before it starts"), "\(bad)")
        }
    }

    @Test func aBadLogicalDateIsAUsageErrorNamingTheForm() throws {
        let cluster = try Cluster()
        let result = try cluster.cli(["run", "trigger", "any", "--logical-date", "2026-03-15T06:00"])
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains("--logical-date: timestamp '2026-03-15T06:00' has a time but no zone"), "\(result)")
    }
}
