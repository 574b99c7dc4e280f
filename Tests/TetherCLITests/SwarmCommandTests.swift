import Foundation
import Testing
import TetherTestSupport

/// `tether-torture swarm` against a real `tether server`: many agents in one process,
/// taking signals as `tether agent` does.
@Suite struct SwarmCommandTests {
    /// Starts a swarm of `names.count` agents (names s0, s1, …) whose `work` task writes its
    /// pid to SCRATCH/NAME.TASK.pid and runs until SCRATCH/release exists; triggers a run of
    /// one such task per agent and waits until each agent runs one.
    private static func swarmRunningOneTaskEach(_ cluster: Cluster, agents: Int) throws -> (swarm: ChildProcess, runID: String, pids: [Int32]) {
        let scratch = cluster.scratch
        for i in 0..<agents { _ = try cluster.tokenFile(for: "s\(i)") }
        let template = """
            server: \(cluster.url)
            insecure_plaintext: true
            token_file: \(scratch.path("agent-{name}.token"))
            slots: 1
            log_dir: \(scratch.path("swarm/{name}/logs"))
            state_dir: \(scratch.path("swarm/{name}/state"))
            kill_grace: 2s
            entrypoints:
              work: {argv: [/bin/sh, -c, 'echo $$ > \(scratch.path("{name}.$TETHER_TASK_ID.pid")); while [ ! -e \(scratch.path("release")) ]; do sleep 0.05; done']}
            """
        try template.write(toFile: scratch.path("swarm.yaml"), atomically: true, encoding: .utf8)
        let swarm = try ChildProcess(Repository.binary("tether-torture"),
                                     ["swarm", "--config", scratch.path("swarm.yaml"), "--agents", String(agents), "--names", "s{i}"],
                                     readyPrefix: "swarm: \(agents) agents started")
        try cluster.apply("dag_id: wide\ntasks:\n" + (0..<agents).map { "  - {id: t\($0), entrypoint: work}\n" }.joined())
        let runID = try cluster.trigger("wide")
        func pids() -> [Int32] {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: scratch.url.path)) ?? []
            return files.filter { $0.hasSuffix(".pid") }.compactMap {
                Int32(((try? String(contentsOfFile: scratch.path($0), encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        guard cluster.eventually(.seconds(30), { pids().count == agents }) else {
            throw ClusterError("not every swarm agent ran a task: \(pids()); swarm printed:\n\(swarm.recentOutput)")
        }
        return (swarm, runID, pids())
    }

    /// Gone, or a zombie nobody has reaped yet.
    private static func hasEnded(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    @Test func sigtermDrainsEveryAgentOfTheSwarmThenItExitsZero() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let (swarm, runID, _) = try Self.swarmRunningOneTaskEach(cluster, agents: 3)
            kill(swarm.process.processIdentifier, SIGTERM)
            #expect(cluster.eventually { swarm.recentOutput.components(separatedBy: "draining: SIGTERM").count == 4 },
                    "\(swarm.recentOutput)")
            #expect(swarm.process.isRunning)  // its tasks still run
            _ = FileManager.default.createFile(atPath: cluster.scratch.path("release"), contents: nil)
            #expect(swarm.waitForExit(within: .seconds(30)), "\(swarm.recentOutput)")
            #expect(swarm.process.terminationReason == .exit && swarm.process.terminationStatus == 0, "\(swarm.recentOutput)")
            let run = try cluster.run(runID)
            #expect(run.state == "RUN_STATE_SUCCESS" && Set(run.tasks.compactMap { $0.attempts.first?.agent }) == ["s0", "s1", "s2"],
                    "\(run)")
        }
    }

    @Test func everyTaskOfASwarmDiesWithItOnSIGKILL() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let (swarm, _, pids) = try Self.swarmRunningOneTaskEach(cluster, agents: 3)
            #expect(!pids.contains(where: Self.hasEnded))
            kill(swarm.process.processIdentifier, SIGKILL)
            swarm.process.waitUntilExit()
            #expect(cluster.eventually(.seconds(10)) { pids.allSatisfy(Self.hasEnded) }, "\(pids)")
        }
    }
}
