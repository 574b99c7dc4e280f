import Foundation
import Testing
import TetherTestSupport

/// Trust under faults with real processes: a hung agent, a killed agent, a revoked token.
@Suite struct FailoverTests {
    /// A task that records its start (and its pid) in `ledger`, checks that no other
    /// execution of it is alive, sleeps `seconds`, and records its end.
    private static func ledgerTask(_ agent: String, ledger: String, seconds: Int) throws -> [String] {
        let script = ledger + ".\(agent).sh"
        try """
            for f in \(ledger).pid.*; do
              [ -e "$f" ] || continue
              s=$(awk '{print $3}' /proc/$(cat "$f")/stat 2>/dev/null)
              if [ -n "$s" ] && [ "$s" != Z ]; then echo "overlap $f" >> \(ledger); fi
            done
            echo $$ > \(ledger).pid.\(agent)
            echo "start \(agent)" >> \(ledger)
            sleep \(seconds)
            echo "end \(agent)" >> \(ledger)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        return ["/bin/sh", script]
    }

    private static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Reported: with P stopped (SIGSTOP), every re-lease went back to P, Q stayed idle, and
    /// after SIGCONT P ran a stale grant: the task ran twice.
    @Test func aHungAgentsTaskIsKilledOnTimeAndRunsOnceMoreOnALiveAgentNeverOverlapping() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster(leaseTTLSeconds: 2)
            let ledger = cluster.scratch.path("ledger")
            let p = try cluster.startAgent("p", slots: 1, entrypoints: ["work": try Self.ledgerTask("p", ledger: ledger, seconds: 30)])
            try cluster.apply("""
                dag_id: hung
                tasks:
                  - {id: t, entrypoint: work, retries: 0}
                """)
            let runID = try cluster.trigger("hung")
            #expect(cluster.eventually { Self.lines(ledger) == ["start p"] }, "\(Self.lines(ledger))")
            try cluster.startAgent("q", slots: 1, entrypoints: ["work": try Self.ledgerTask("q", ledger: ledger, seconds: 1)])
            kill(p.process.processIdentifier, SIGSTOP)
            defer { kill(p.process.processIdentifier, SIGCONT) }
            let run = try cluster.wait(for: runID, timeout: .seconds(60)) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(run.state == "RUN_STATE_SUCCESS", "\(run)")
            let attempts = run.task("t")?.attempts ?? []
            // The lost attempt was the agent's fault, not the task's: retries: 0 still ran it again.
            #expect(attempts.map(\.agent) == ["p", "q"] && attempts.map(\.outcome) == ["ATTEMPT_OUTCOME_LOST", "ATTEMPT_OUTCOME_SUCCEEDED"],
                    "\(run)")
            // p's execution was killed (by its lease keeper: p itself was stopped) before q's began.
            #expect(Self.lines(ledger) == ["start p", "start q", "end q"], "\(Self.lines(ledger))")

            let connections = p.recentOutput.components(separatedBy: "connected as p").count
            kill(p.process.processIdentifier, SIGCONT)
            let reconnected = cluster.eventually { p.recentOutput.components(separatedBy: "connected as p").count > connections }
            #expect(reconnected, "\(p.recentOutput)")
            let after = try cluster.run(runID)
            #expect(after.task("t")?.attempts.count == 2, "\(after)")
            #expect(Self.lines(ledger) == ["start p", "start q", "end q"], "p ran the task again: \(Self.lines(ledger))")
        }
    }

    /// Reported: an agent SIGKILLed mid-task left the task running; another agent ran it too.
    @Test func aTaskDiesWithItsAgent() async throws {
        try await onThreadOfItsOwn { try Self.killAnAgentMidTask() }
    }

    private static func killAnAgentMidTask() throws {
        let cluster = try Cluster()
        let ledger = cluster.scratch.path("ledger")
        try cluster.startAgent("a", slots: 1, entrypoints: ["work": try ledgerTask("a", ledger: ledger, seconds: 600)])
        try cluster.apply("""
            dag_id: orphan
            tasks:
              - {id: t, entrypoint: work}
            """)
        _ = try cluster.trigger("orphan")
        #expect(cluster.eventually { lines(ledger) == ["start a"] })
        let pidText = (try? String(contentsOfFile: ledger + ".pid.a", encoding: .utf8)) ?? ""
        let pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(pid > 1, "pid file: \(pidText)")
        cluster.killAgent("a")
        var alive = true
        _ = cluster.eventually(.seconds(10)) {
            alive = pid > 1 && kill(pid, 0) == 0
            return !alive
        }
        #expect(!alive, "the task (pid \(pid)) outlived its agent")
    }

    /// Reported: a missing executable burned 7 attempts in 20 ms (`TRIES 7/2`).
    @Test func aTaskWhoseProgramNoAgentHasWaitsVisiblyInsteadOfBurningAttempts() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let agent = try cluster.startAgent("a", slots: 1, entrypoints: ["gone": ["/nonexistent/tether-program"]])
            try cluster.apply("""
                dag_id: missing
                tasks:
                  - {id: t, entrypoint: gone, retries: 1}
                """)
            let runID = try cluster.trigger("missing")
            let view = try cluster.run(runID)
            #expect(view.task("t")?.attempts.isEmpty == true, "\(view)")
            let shown = try cluster.cli(["run", "show", runID])
            #expect(shown.stdout.contains("no connected agent on queue 'default' offers entrypoint 'gone'"), "\(shown)")
            #expect(agent.recentOutput.contains("entrypoint 'gone' is not offered: program '/nonexistent/tether-program'"),
                    "\(agent.recentOutput)")
        }
    }

    /// Reported: lost and rejected attempts counted as the task's own tries (`TRIES 2/1`)
    /// past a fixed count. They never do now; `--max-infrastructure-attempts` ends a task
    /// that keeps failing that way, and says why.
    @Test func attemptsTheAgentCannotStartNeverUseRetriesAndEndTheTaskAtTheirOwnLimit() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster(serverArguments: ["--max-infrastructure-attempts", "2"])
            // Present when the agent offers it, gone when the grant comes: each start fails.
            let program = cluster.scratch.path("vanishing.sh")
            try "#!/bin/sh\nexit 0\n".write(toFile: program, atomically: true, encoding: .utf8)
            chmod(program, 0o755)
            try cluster.startAgent("a", slots: 1, entrypoints: ["vanishing": [program]])
            try FileManager.default.removeItem(atPath: program)
            try cluster.apply("""
                dag_id: vanishing
                tasks:
                  - {id: t, entrypoint: vanishing, retries: 3}
                """)
            let runID = try cluster.trigger("vanishing")
            let run = try cluster.wait(for: runID, timeout: .seconds(30)) { $0.state == "RUN_STATE_FAILED" || $0.state == "RUN_STATE_SUCCESS" }
            let attempts = run.task("t")?.attempts ?? []
            #expect(attempts.map(\.outcome) == ["ATTEMPT_OUTCOME_REJECTED", "ATTEMPT_OUTCOME_REJECTED"], "\(run)")
            #expect(attempts.last?.message.contains("the task fails: 2 of its attempts ended lost or rejected") == true, "\(run)")
            let shown = try cluster.cli(["run", "show", runID])
            #expect(shown.stdout.contains("0/4 +2 lost"), "\(shown)")
        }
    }

    /// Reported: a revoked token made the agent retry forever.
    @Test func aRotatedTokenIsPickedUpAndARevokedOneStopsTheAgentWithExitCode4() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let agent = try cluster.startAgent("a", slots: 1, entrypoints: ["work": ["/bin/true"]])
            let ids = try Self.tokenIDs(cluster, agent: "a")
            let firstID = try #require(ids.first)
            // Rotate: a new token in token_file, SIGHUP, then the old one is revoked.
            let created = try cluster.cli(["token", "create", "--role", "agent", "--agent-name", "a", "--json"])
            let response = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])
            let secret = try #require(response["secret"] as? String)
            let secondID = try #require((response["token"] as? [String: Any])?["tokenId"] as? String)
            try secret.write(toFile: try cluster.tokenFile(for: "a"), atomically: true, encoding: .utf8)
            let connections = agent.recentOutput.components(separatedBy: "connected as a").count
            kill(agent.process.processIdentifier, SIGHUP)
            #expect(cluster.eventually { agent.recentOutput.components(separatedBy: "connected as a").count > connections },
                    "\(agent.recentOutput)")
            let revokedFirst = try cluster.cli(["token", "revoke", firstID])
            #expect(revokedFirst.status == 0, "\(revokedFirst)")
            try cluster.apply("""
                dag_id: after
                tasks:
                  - {id: t, entrypoint: work}
                """)
            let runID = try cluster.trigger("after")
            let done = try cluster.wait(for: runID) { $0.state == "RUN_STATE_SUCCESS" || $0.state == "RUN_STATE_FAILED" }
            #expect(done.state == "RUN_STATE_SUCCESS", "\(done)")
            // Revoked with no new token in the file: the agent stops, saying why, with its own code.
            let revokedSecond = try cluster.cli(["token", "revoke", secondID])
            #expect(revokedSecond.status == 0, "\(revokedSecond)")
            #expect(agent.waitForExit(within: .seconds(30)), "\(agent.recentOutput)")
            #expect(agent.process.terminationStatus == 4, "\(agent.recentOutput)")
            #expect(agent.recentOutput.contains("refused this agent's token"), "\(agent.recentOutput)")
        }
    }

    private static func tokenIDs(_ cluster: Cluster, agent: String) throws -> [String] {
        let listed = try cluster.cli(["token", "list", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any]
        return (object?["tokens"] as? [[String: Any]] ?? []).filter { $0["agentName"] as? String == agent }.compactMap { $0["tokenId"] as? String }
    }
}
