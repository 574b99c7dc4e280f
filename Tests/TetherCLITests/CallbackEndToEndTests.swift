import Foundation
import Testing
import TetherTestSupport

/// Callbacks, deadlines and deleting a DAG through the CLI, a real server and a real agent.
@Suite struct CallbackEndToEndTests {
    @Test func aFailedTasksOnFailureCallbackRunsOnTheAgentWithTheFailedTasksDetails() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let out = cluster.scratch.path("out")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let script = cluster.scratch.path("notify.sh")
            // The webhook's secret lives in the agent's config only; the callback proves it saw it.
            try #"""
                echo "$TETHER_TASK_ID $TETHER_PARAM_TASK_ID $TETHER_PARAM_STATE $TETHER_PARAM_ATTEMPT $WEBHOOK_TOKEN" > "$OUT/callback.env"
                cat > "$OUT/callback.stdin"
                """#.write(toFile: script, atomically: true, encoding: .utf8)
            try cluster.startAgent("a", entrypoints: [
                "fail": ["/bin/sh", "-c", "exit 3"],
                "notify": ["/usr/bin/env", "OUT=\(out)", "WEBHOOK_TOKEN=s3cret", "/bin/sh", script],
            ])
            try cluster.apply("""
                dag_id: cb
                tasks:
                  - {id: extract, entrypoint: fail, on_failure: notify}
                """)
            let runID = try cluster.trigger("cb")
            let run = try cluster.wait(for: runID) { $0.callbacks["on_failure.1"] == "TASK_STATE_SUCCESS" }
            #expect(run.state == "RUN_STATE_FAILED" && run.task("extract")?.state == "TASK_STATE_FAILED", "\(run)")

            let env = try String(contentsOfFile: "\(out)/callback.env", encoding: .utf8)
            #expect(env == "on_failure.1 extract failed 1 s3cret\n")
            let stdin = try String(contentsOfFile: "\(out)/callback.stdin", encoding: .utf8)
            #expect(stdin.contains(#""run_id":"\#(runID)","task_id":"on_failure.1""#), "\(stdin)")
            for member in [#""callback":"on_failure""#, #""dag_id":"cb""#, #""reason":"exited with code 3""#,
                           #""state":"failed""#, #""task_id":"extract""#, #""logical_date":""#] {
                #expect(stdin.contains(member), "\(member) in \(stdin)")
            }
            let show = try cluster.cli(["run", "show", runID])
            #expect(show.stdout.contains("on_failure.1") && show.stdout.contains("notify"), "\(show)")
            #expect(show.stdout.contains("run \(runID) of cb v1: failed"), "\(show)")
            // The secret never reached the server.
            let json = try cluster.cli(["run", "show", runID, "--json"])
            #expect(!show.stdout.contains("s3cret") && !json.stdout.contains("s3cret"))
        }
    }

    @Test func aDeadlineMissIsShownAndADAGIsDeletedOnlyWhenAskedTo() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let marker = cluster.scratch.path("late-ran")
            let script = cluster.scratch.path("late.sh")
            try #"echo "$TETHER_PARAM_CALLBACK $TETHER_PARAM_REASON" > "$1""#.write(toFile: script, atomically: true, encoding: .utf8)
            try cluster.startAgent("a", entrypoints: [
                "slow": ["/bin/sh", "-c", "sleep 30"],
                "late": ["/bin/sh", script, marker],
            ])
            try cluster.apply("""
                dag_id: slowpoke
                deadline: 1s
                on_deadline_miss: late
                tasks:
                  - {id: crawl, entrypoint: slow}
                """)
            let runID = try cluster.trigger("slowpoke")
            let run = try cluster.wait(for: runID) { $0.callbacks["on_deadline_miss.1"] == "TASK_STATE_SUCCESS" }
            #expect(run.state == "RUN_STATE_RUNNING", "\(run)")
            #expect(try String(contentsOfFile: marker, encoding: .utf8) == "on_deadline_miss unfinished tasks: crawl\n")
            let show = try cluster.cli(["run", "show", runID])
            #expect(show.stdout.contains(": missed (found unfinished at "), "\(show)")

            let dag = try cluster.cli(["dag", "show", "slowpoke"])
            #expect(dag.stdout.contains("deadline: 1s\nrun callbacks: on_deadline_miss=late (queue default)"), "\(dag)")

            let noTTY = try cluster.cli(["dag", "delete", "slowpoke"])
            #expect(noTTY.status == 1 && noTTY.stderr.contains("pass --yes"), "\(noTTY)")
            let busy = try cluster.cli(["dag", "delete", "slowpoke", "--yes"])
            #expect(busy.status == 1 && busy.stderr.contains("unfinished run"), "\(busy)")
            let deleted = try cluster.cli(["dag", "delete", "slowpoke", "--yes", "--cancel-runs"])
            #expect(deleted.status == 0 && deleted.stdout.contains("slowpoke: deleted (cancelled \(runID))"), "\(deleted)")
            #expect(try cluster.cli(["run", "show", runID]).status == 1)
            // Durable: still gone after kill -9 and a restart; the same id applied again starts afresh.
            try cluster.killAndRestartServer()
            let list = try cluster.cli(["dag", "list"])
            #expect(list.status == 0 && !list.stdout.contains("slowpoke"), "\(list)")
            try cluster.apply("""
                dag_id: slowpoke
                tasks:
                  - {id: crawl, entrypoint: late}
                """)
            #expect(try cluster.trigger("slowpoke") == "slowpoke-1")
        }
    }

    @Test func aCallbackWaitingForAnAgentSurvivesKill9OfTheServerAndRunsOnAnAgentThatOffersIt() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.startAgent("a", entrypoints: ["work": ["/bin/true"]])
            try cluster.apply("""
                dag_id: later
                tasks:
                  - {id: t, entrypoint: work, on_success: notify}
                """)
            let runID = try cluster.trigger("later")
            let waiting = try cluster.wait(for: runID) { $0.callbacks["on_success.1"] == "TASK_STATE_QUEUED" }
            #expect(waiting.state == "RUN_STATE_SUCCESS", "\(waiting)")
            try cluster.killAndRestartServer()
            let marker = cluster.scratch.path("notified")
            let script = cluster.scratch.path("notify.sh")
            try #"echo "$TETHER_PARAM_TASK_ID $TETHER_PARAM_STATE" > "$1""#.write(toFile: script, atomically: true, encoding: .utf8)
            try cluster.startAgent("b", entrypoints: ["notify": ["/bin/sh", script, marker]])
            let done = try cluster.wait(for: runID) { $0.callbacks["on_success.1"] == "TASK_STATE_SUCCESS" }
            #expect(done.state == "RUN_STATE_SUCCESS")
            #expect(try String(contentsOfFile: marker, encoding: .utf8) == "t success\n")
        }
    }
}
