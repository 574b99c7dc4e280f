import Foundation
import Synchronization
import Testing
import TetherTestSupport

/// `tether events`, `tether agents`, `tether status`, `tether dag versions|diff` against a
/// real server and agent, as an operator runs them.
@Suite struct VisibilityCommandTests {
    static let v1 = """
        dag_id: etl
        schedule: "0 3 * * *"
        tasks:
          - id: extract
            entrypoint: ok
          - id: transform
            entrypoint: ok
            depends_on: [extract]
          - id: old
            entrypoint: ok
        """
    static let v2 = """
        dag_id: etl
        schedule: "30 3 * * *"
        tasks:
          - id: extract
            entrypoint: ok
          - id: transform
            entrypoint: ok
            retries: 3
            depends_on: [extract]
          - id: load
            entrypoint: ok
            depends_on: [transform]
        """

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func dagVersionsListsEveryVersionAndDiffSaysWhichFieldsAndTasksChanged() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.apply(Self.v1)
            try cluster.apply(Self.v2)
            let versions = try cluster.cli(["dag", "versions", "etl"])
            #expect(versions.status == 0)
            let rows = versions.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ").first.map(String.init) }
            #expect(rows == ["2", "1"], "\(versions.stdout)")
            #expect(try (Self.json(try cluster.cli(["dag", "versions", "etl", "--json"]).stdout)["versions"] as? [Any])?.count == 2)

            let diff = try cluster.cli(["dag", "diff", "etl", "1", "2"])
            #expect(diff.status == 0)
            #expect(diff.stdout.contains("etl: version 1 -> 2"))
            #expect(diff.stdout.contains("~ schedule: \"0 3 * * *\" -> \"30 3 * * *\""), "\(diff.stdout)")
            #expect(diff.stdout.contains("+ task load"))
            #expect(diff.stdout.contains("- task old"))
            #expect(diff.stdout.contains("~ task transform: retries - -> 3"), "\(diff.stdout)")
            #expect(!diff.stdout.contains("task extract"), "an unchanged task is not listed")
            let object = try Self.json(try cluster.cli(["dag", "diff", "etl", "1", "--json"]).stdout)
            #expect(object["toVersion"] as? Int == 2, "B defaults to the latest")
            #expect(object["tasksAdded"] as? [String] == ["load"] && object["tasksRemoved"] as? [String] == ["old"])
            #expect(((object["tasksChanged"] as? [[String: Any]])?.first?["taskId"] as? String) == "transform")
            let same = try cluster.cli(["dag", "diff", "etl", "2", "2"])
            #expect(same.stdout.contains("no change"))
            let missing = try cluster.cli(["dag", "diff", "etl", "1", "9"])
            #expect(missing.status == 1 && missing.stderr.contains("NOT_FOUND") || missing.stderr.contains("not found") || missing.stderr.contains("no version"),
                    "\(missing)")
        }
    }

    @Test func eventsFollowsChangesAndResumesAfterACursorWithoutMissingAny() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.apply(Self.v1)
            // A follower in the background: pausing and unpausing makes DAG events until it
            // has printed three and exits.
            let followed = Mutex<ProcessResult?>(nil)
            Thread {
                let result = try? cluster.cli(["events", "--dag", "etl", "--count", "3", "--json"])
                followed.withLock { $0 = result }
            }.start()
            var paused = false
            for _ in 0..<100 where followed.withLock({ $0 == nil }) {
                paused.toggle()
                _ = try cluster.cli(["dag", paused ? "pause" : "unpause", "etl"])
            }
            let result = try #require(followed.withLock { $0 })
            #expect(result.status == 0, "\(result)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3)
            let cursors = try lines.map { try #require(Self.json($0)["cursor"] as? String) }
            #expect(try lines.allSatisfy { try (Self.json($0)["dag"] as? [String: Any])?["dagId"] as? String == "etl" })

            // Replaying after the first cursor gives the next two exactly as they were printed.
            let replay = try cluster.cli(["events", "--dag", "etl", "--after", cursors[0], "--count", "2", "--json"])
            #expect(replay.status == 0)
            #expect(replay.stdout.split(separator: "\n").map(String.init) == Array(lines[1...]))
            let human = try cluster.cli(["events", "--after", cursors[0], "--count", "1"])
            #expect(human.stdout.contains("  \(cursors[1])  dag    etl  version 1"), "\(human.stdout)")

            // A cursor the server never gave is refused with a clear message and exit code 1.
            let bad = try cluster.cli(["events", "--after", "1", "--count", "1"])
            #expect(bad.status == 1 && bad.stderr.contains("earlier server process"), "\(bad)")
        }
    }

    @Test func agentsStayListedAfterTheyGoAndStatusShowsTheServerOnOneScreen() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.startAgent("eu-1", labels: ["region": "eu"], entrypoints: ["ok": ["/bin/true"]])
            try cluster.startAgent("us-1", labels: ["region": "us"], entrypoints: ["ok": ["/bin/true"]])
            try cluster.apply(Self.v1)

            let status = try cluster.cli(["status"])
            #expect(status.status == 0)
            #expect(status.stdout.contains("AGENTS: 2 connected, 0 draining, 0 disconnected"), "\(status.stdout)")
            #expect(status.stdout.contains("default  2"), "\(status.stdout)")
            #expect(status.stdout.contains("eu,us"))
            #expect(status.stdout.contains("DAGS: 1"))
            let statusJSON = try Self.json(try cluster.cli(["status", "--json"]).stdout)
            #expect(((statusJSON["agents"] as? [String: Any])?["agents"] as? [Any])?.count == 2)

            // Drained: the agent finishes, says Goodbye and exits; it stays listed.
            #expect(try cluster.cli(["agents", "drain", "eu-1", "--reason", "maintenance"]).status == 0)
            let drained = try cluster.eventually {
                try cluster.cli(["agents"]).stdout.split(separator: "\n").contains { $0.hasPrefix("eu-1") && $0.contains("disconnected") && $0.hasSuffix("drained") }
            }
            let listing = try cluster.cli(["agents"]).stdout
            #expect(drained, "\(listing)")
            // Killed: its connection breaks.
            cluster.killAgent("us-1")
            #expect(try cluster.eventually {
                try cluster.cli(["agents"]).stdout.split(separator: "\n").contains { $0.hasPrefix("us-1") && $0.hasSuffix("lost") }
            })
            #expect(try cluster.cli(["agents", "--connected"]).stdout.split(separator: "\n").count == 1, "the header alone")
            let gone = try cluster.cli(["status"]).stdout
            #expect(gone.contains("AGENTS: 0 connected, 0 draining, 2 disconnected") && gone.contains("eu-1 (drained"), "\(gone)")

            // Forgotten: gone from the list.
            let forget = try cluster.cli(["agents", "forget", "us-1"])
            #expect(forget.status == 0 && forget.stdout.contains("us-1: forgotten"))
            let listed = try Self.json(try cluster.cli(["agents", "--json"]).stdout)
            #expect((listed["agents"] as? [[String: Any]])?.map { $0["name"] as? String } == ["eu-1"])
            let again = try cluster.cli(["agents", "forget", "us-1"])
            #expect(again.status == 1 && again.stderr.contains("no agent 'us-1'"))
        }
    }
}
