import Foundation
import Testing
import TetherTestSupport

/// `tether server` whose data dir fills up (a 2 MiB tmpfs and a filler file), with a real
/// agent running a task through the outage.
@Suite struct DiskFullCommandTests {
    /// A log line as `printLog` writes it: a UTC timestamp, then `text`.
    private static func hasLogLine(_ output: String, _ text: String) -> Bool {
        output.split(separator: "\n").contains { line in
            guard let space = line.firstIndex(of: " "), line[..<space].hasSuffix("Z") else { return false }
            return line[line.index(after: space)...].hasPrefix(text)
        }
    }

    @Test(.enabled(if: SmallFilesystem.isAvailable, "mounting a tmpfs needs root: \(SmallFilesystem.unavailableReason ?? "")"))
    func aFullDataDirIsLoggedAndRefusedAndTheServerAndItsAgentCarryOnWhenSpaceReturns() async throws {
        try await onThreadOfItsOwn {
            let disk = try SmallFilesystem(bytes: 2 << 20)
            let cluster = try Cluster(dataDirectory: disk.path("data"))
            let gate = cluster.scratch.path("gate")
            let agent = try cluster.startAgent("a", slots: 1, entrypoints: [
                "work": ["/bin/sh", "-c", "while [ ! -e \(gate) ]; do sleep 0.05; done"],
            ])
            try cluster.apply("""
                dag_id: d
                tasks:
                  - {id: t, entrypoint: work, retries: 0}
                """)
            let runID = try cluster.trigger("d")
            try cluster.wait(for: runID) { $0.task("t")?.state == "TASK_STATE_RUNNING" }

            try disk.fill()
            var refusal: ProcessResult?
            for _ in 0..<50 {
                let result = try cluster.cli(["run", "trigger", "d"])
                if result.status != 0 {
                    refusal = result
                    break
                }
            }
            let refused = try #require(refusal, "50 runs fitted on a full disk")
            #expect(refused.stderr.contains("unavailable") && refused.stderr.contains("no space left"), "\(refused)")
            #expect(cluster.eventually { Self.hasLogLine(cluster.server.recentOutput, "tether server: state store failed: ") },
                    "\(cluster.server.recentOutput)")
            #expect(cluster.server.recentOutput.contains("no space left"), "\(cluster.server.recentOutput)")

            // The task ends while the server cannot write: its event waits in the agent's outbox.
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            try disk.free()
            #expect(cluster.eventually { Self.hasLogLine(cluster.server.recentOutput, "tether server: state store writes again") },
                    "\(cluster.server.recentOutput)")
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            // One attempt, succeeded: the agent reconnected, resumed and resent its event.
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            #expect(run.task("t")?.attempts.map(\.outcome) == ["ATTEMPT_OUTCOME_SUCCEEDED"], "\(run)")
            #expect(agent.recentOutput.components(separatedBy: "connected as a").count > 1, "\(agent.recentOutput)")
            #expect(try cluster.trigger("d").hasPrefix("d-"))
            let lines = cluster.server.recentOutput.split(separator: "\n")
            #expect(lines.filter { $0.contains("state store failed") }.count == 1, "\(cluster.server.recentOutput)")
            #expect(lines.filter { $0.contains("state store writes again") }.count == 1, "\(cluster.server.recentOutput)")
            #expect(cluster.server.stop() == 0)
            withExtendedLifetime(disk) {}  // unmounted only after the server stopped
        }
    }
}
