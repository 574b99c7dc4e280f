import Foundation
import Testing
import TetherTestSupport

/// Remote execution end to end: a real server and real agents on 127.0.0.1.
@Suite struct EndToEndTests {
    static let marker = "TETHER-MARKER-7f3a91"

    @Test func fanOutFanInSucceedsAcrossTwoAgentsAndLogsStayOnTheAgent() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let work = ["/bin/sh", "-c", "echo \(Self.marker) $TETHER_TASK_ID; sleep 0.3"]
            try cluster.startAgent("eu-1", slots: 2, labels: ["region": "eu"], entrypoints: ["work": work])
            try cluster.startAgent("us-1", slots: 2, labels: ["region": "us"], entrypoints: ["work": work])
            try cluster.apply("""
                dag_id: fan
                tasks:
                  - {id: root, entrypoint: work}
                \((1...6).map { "  - {id: mid\($0), entrypoint: work, depends_on: [root]}" }.joined(separator: "\n"))
                  - {id: join, entrypoint: work, depends_on: [\((1...6).map { "mid\($0)" }.joined(separator: ", "))]}
                """)
            let runID = try cluster.trigger("fan")
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            #expect(run.tasks.count == 8)

            var used = Set<String>()
            for task in run.tasks {
                let agent = try #require(task.attempts.last?.agent)
                used.insert(agent)
                let other = agent == "eu-1" ? "us-1" : "eu-1"
                let log = "\(cluster.logDirectory(agent))/fan/\(runID)/\(task.id).attempt-1.log"
                let text = try String(contentsOfFile: log, encoding: .utf8)
                #expect(text.contains("\(Self.marker) \(task.id)"))
                #expect(!FileManager.default.fileExists(atPath: "\(cluster.logDirectory(other))/fan/\(runID)/\(task.id).attempt-1.log"))
            }
            #expect(used == ["eu-1", "us-1"], "both agents should take part")
            // No agent ran more than its slots at once.
            for agent in used {
                let spans = run.tasks.flatMap(\.attempts).filter { $0.agent == agent }.map { ($0.grantedAt, $0.finishedAt) }
                let peak = spans.map { span in spans.filter { $0.0 <= span.0 && span.0 < $0.1 }.count }.max() ?? 0
                #expect(peak <= 2, "\(agent) ran \(peak) tasks at once")
            }
            // The marker the tasks printed reached no file of the server.
            let files = FileManager.default.enumerator(atPath: cluster.dataDirectory)?.compactMap { $0 as? String } ?? []
            #expect(!files.isEmpty)
            for file in files {
                let data = (try? Data(contentsOf: URL(fileURLWithPath: "\(cluster.dataDirectory)/\(file)"))) ?? Data()
                #expect(data.range(of: Data(Self.marker.utf8)) == nil, "the marker is in the server's \(file)")
            }
        }
    }

    @Test func gpuTasksOnlyReachGpuAgentsAndAgentsReportTheirCounts() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster(leaseTTLSeconds: 3)  // heartbeats every 0.5 s
            let work = ["/bin/sh", "-c", "sleep 0.1"]
            try cluster.startAgent("cpu", queues: ["default"], slots: 4, entrypoints: ["work": work])
            try cluster.startAgent("gpu", queues: ["gpu"], slots: 4, entrypoints: ["work": work])
            try cluster.apply("""
                dag_id: mixed
                tasks:
                \((1...3).map { "  - {id: c\($0), entrypoint: work}\n  - {id: g\($0), entrypoint: work, queue: gpu}" }.joined(separator: "\n"))
                """)
            let runID = try cluster.trigger("mixed")
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" }
            for task in run.tasks {
                #expect(task.attempts.map(\.agent) == [task.id.hasPrefix("g") ? "gpu" : "cpu"], "\(task.id)")
            }
            // The agents' heartbeats carry their task counts to the server.
            var agents = ""
            let counted = try cluster.eventually(.seconds(30)) {
                agents = try cluster.cli(["agents", "--json"]).stdout
                return agents.contains("tether_agent_tasks_finished_total") && agents.contains("\"value\": 3.0")
            }
            #expect(counted, "agents: \(agents)")
        }
    }

    @Test func taskOfAKilledAgentIsReleasedToAnotherRegionAndItsStaleReportIsRejected() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster(leaseTTLSeconds: 2)
            // Long enough on the victim that the kill surely comes first, however loaded
            // the machine; short on the survivor.
            let long = ["/bin/sh", "-c", "if [ $TETHER_ATTEMPT = 1 ]; then sleep 60; else sleep 1; fi"]
            try cluster.startAgent("eu-1", slots: 1, labels: ["region": "eu"], entrypoints: ["long": long])
            try cluster.startAgent("us-1", slots: 1, labels: ["region": "us"], entrypoints: ["long": long])
            try cluster.apply("""
                dag_id: failover
                tasks:
                  - {id: long, entrypoint: long, retries: 2}
                """)
            let runID = try cluster.trigger("failover")
            let running = try cluster.wait(for: runID, timeout: .seconds(30)) { $0.task("long")?.state == "TASK_STATE_RUNNING" }
            let victim = try #require(running.task("long")?.attempts.first?.agent)
            let survivor = victim == "eu-1" ? "us-1" : "eu-1"
            cluster.killAgent(victim)
            let run = try cluster.wait(for: runID, timeout: .seconds(60)) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            let attempts = run.task("long")?.attempts ?? []
            #expect(attempts.map(\.agent) == [victim, survivor], "\(run)")
            #expect(attempts.first?.outcome == "ATTEMPT_OUTCOME_LOST")
            #expect(attempts.first?.message.contains("lease expired") == true)
            // The second grant came within the TTL (plus the heartbeat interval and slack
            // for a loaded machine) of the first agent's silence.
            if attempts.count == 2 {
                #expect(attempts[1].grantedAt - attempts[0].grantedAt < 15_000_000)
            }

            // The killed agent comes back with its outbox: it reaps the orphaned task and
            // reports it, and the server rejects the stale report.
            let restarted = try cluster.startAgent(victim, slots: 1, entrypoints: ["long": long])
            let rejected = cluster.eventually(.seconds(30)) { restarted.recentOutput.contains("rejected") }
            #expect(rejected, "restarted agent printed: \(restarted.recentOutput)")
            let after = try cluster.run(runID)
            #expect(after.state == "RUN_STATE_SUCCESS")
            #expect(after.task("long")?.attempts.count == 2)
        }
    }

    @Test func serverKilledMidRunRestartsAndEveryEventIsAppliedOnce() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            // The first step runs until the test lets it finish, so the kill surely lands
            // while it runs (a one-second step could finish between two polls of a loaded
            // machine, and the wait for RUNNING would never see it).
            let release = cluster.scratch.path("release")
            try cluster.startAgent("a", slots: 2, entrypoints: [
                "hold": ["/bin/sh", "-c", "while [ ! -e '\(release)' ]; do sleep 0.05; done"],
                "step": ["/bin/sh", "-c", "sleep 1"],
            ])
            try cluster.apply("""
                dag_id: chain
                tasks:
                  - {id: one, entrypoint: hold}
                  - {id: two, entrypoint: step, depends_on: [one]}
                  - {id: three, entrypoint: step, depends_on: [two]}
                """)
            let runID = try cluster.trigger("chain")
            _ = try cluster.wait(for: runID, timeout: .seconds(30)) { $0.task("one")?.state == "TASK_STATE_RUNNING" }
            try cluster.killAndRestartServer()
            _ = FileManager.default.createFile(atPath: release, contents: nil)
            let run = try cluster.wait(for: runID, timeout: .seconds(90)) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            for task in run.tasks {
                #expect(task.attempts.map(\.outcome) == ["ATTEMPT_OUTCOME_SUCCEEDED"], "\(task.id): \(run)")
            }
        }
    }

    /// Reported: with agents connected, SIGTERM took ~30 s, during which the port took
    /// connections it never answered and agents still got work.
    @Test func sigtermEndsTheServerWithinFiveSecondsWithAnAgentConnectedAndARestartShowsTheSameState() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let release = cluster.scratch.path("release")
            try cluster.startAgent("a", slots: 2, entrypoints: [
                "quick": ["/bin/true"],
                // Runs until the test lets it finish.
                "hold": ["/bin/sh", "-c", "while [ ! -e '\(release)' ]; do sleep 0.05; done"],
            ])
            try cluster.apply("""
                dag_id: across
                tasks:
                  - {id: quick, entrypoint: quick}
                  - {id: held, entrypoint: hold}
                """)
            let runID = try cluster.trigger("across")
            let before = try cluster.wait(for: runID, timeout: .seconds(30)) {
                $0.task("quick")?.state == "TASK_STATE_SUCCESS" && $0.task("held")?.state == "TASK_STATE_RUNNING"
            }

            kill(cluster.server.process.processIdentifier, SIGTERM)
            #expect(cluster.server.waitForExit(within: .seconds(5)), "still running 5 s after SIGTERM: \(cluster.server.recentOutput)")
            cluster.server.stop()   // SIGKILL if it is still running
            #expect(cluster.server.process.terminationReason == .exit && cluster.server.process.terminationStatus == 0,
                    "\(cluster.server.recentOutput)")

            try cluster.restartServer()
            let after = try cluster.run(runID)
            #expect(after.description == before.description)
            // The agent reconnects and resumes its lease: the held task finishes in its first attempt.
            _ = FileManager.default.createFile(atPath: release, contents: nil)
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            #expect(run.task("held")?.attempts.map(\.outcome) == ["ATTEMPT_OUTCOME_SUCCEEDED"], "\(run)")
        }
    }

    @Test func theAgentsStateAndLogDirectoriesAndFilesAreOwnerOnly() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.startAgent("private", entrypoints: ["work": ["/bin/sh", "-c", "echo hello"]])
            try cluster.apply("""
                dag_id: private
                tasks:
                  - {id: only, entrypoint: work}
                """)
            let runID = try cluster.trigger("private")
            _ = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" }
            let state = cluster.stateDirectory("private"), logs = cluster.logDirectory("private")
            for directory in [state, logs, "\(logs)/private", "\(logs)/private/\(runID)"] {
                #expect(fileMode(directory) == 0o700, "\(directory)")
            }
            let outbox = try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasPrefix("outbox.db") }
            #expect(outbox.contains("outbox.db") && outbox.contains("outbox.db-wal"), "\(outbox)")
            for file in outbox + ["../logs/private/\(runID)/only.attempt-1.log"] {
                #expect(fileMode("\(state)/\(file)") == 0o600, "\(file)")
            }
        }
    }

    @Test func agentReachesTheServerThroughAConnectProxy() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let proxy = try ChildProcess(Repository.python, [Repository.root.appendingPathComponent("Tests/Interop/connect_proxy.py").path],
                                         readyPrefix: "listening on")
            defer { proxy.stop() }
            try cluster.startAgent("behind-proxy", entrypoints: ["work": ["/bin/true"]],
                                   environment: ["HTTP_PROXY": "http://\(proxy.listeningAddress)", "NO_PROXY": ""])
            try cluster.apply("""
                dag_id: proxied
                tasks:
                  - {id: only, entrypoint: work}
                """)
            let runID = try cluster.trigger("proxied")
            let run = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" }
            #expect(run.task("only")?.attempts.first?.agent == "behind-proxy")
            #expect(proxy.recentOutput.contains("tunnel 1 to 127.0.0.1:\(cluster.port)"), "proxy printed: \(proxy.recentOutput)")
        }
    }

    @Test func sigtermDrainsTheAgentThenItExitsZero() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            // A task runs until the test lets it finish, so the SIGTERM surely lands while
            // the first one runs.
            let release = cluster.scratch.path("release")
            let agent = try cluster.startAgent("drainer", slots: 1, entrypoints: [
                "work": ["/bin/sh", "-c", "while [ ! -e '\(release)' ]; do sleep 0.05; done"],
            ])
            try cluster.apply("""
                dag_id: drain
                tasks:
                  - {id: first, entrypoint: work}
                  - {id: second, entrypoint: work}
                """)
            let runID = try cluster.trigger("drain")
            _ = try cluster.wait(for: runID, timeout: .seconds(30)) { $0.tasks.contains { $0.state == "TASK_STATE_RUNNING" } }
            kill(agent.process.processIdentifier, SIGTERM)
            #expect(cluster.eventually { agent.recentOutput.contains("draining") }, "\(agent.recentOutput)")
            _ = FileManager.default.createFile(atPath: release, contents: nil)
            agent.process.waitUntilExit()
            #expect(agent.process.terminationStatus == 0, "\(agent.recentOutput)")
            #expect(agent.recentOutput.contains("drained"))
            // Every line the agent logged starts with its UTC time.
            let stamped = try Regex(#"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z tether agent: "#)
            for line in [agent.readyLine] + agent.recentOutput.split(separator: "\n").map(String.init) {
                #expect(line.prefixMatch(of: stamped) != nil, "\(line)")
            }
            let run = try cluster.run(runID)
            // The running task finished and was reported; the other was not taken.
            #expect(run.tasks.filter { $0.state == "TASK_STATE_SUCCESS" }.count == 1, "\(run)")
            #expect(run.tasks.filter { $0.state == "TASK_STATE_QUEUED" }.count == 1, "\(run)")
        }
    }
}
