import Foundation
import GRPC
import Testing
import TetherServer
import TetherTestSupport
import TetherWire

/// What a server does with its data directory, its first admin token and its agents when it
/// starts and stops.
@Suite struct ServerLifecycleTests {
    @Test func aSecondServerOnTheSameDataDirIsRefusedNamingItAndTheHolderUntilTheFirstStops() async throws {
        let h = try ServerHarness()
        let expected = "data dir \(h.dataDirectory) is in use by another tether server (pid \(getpid())); one server per data dir"
        #expect { _ = try TetherServer(configuration: h.server.configuration) } throws: { "\($0)" == expected }
        await h.stop()
        let next = try ServerHarness(restarting: h)
        await next.stop()
    }

    @Test func theDataDirIsOwnerOnlyAndSoIsEveryFileInIt() async throws {
        let h = try ServerHarness()
        _ = try await h.apply("dag_id: modes\ntasks:\n  - {id: only, entrypoint: work}\n")
        #expect(fileMode(h.dataDirectory) == 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: h.dataDirectory)
        // The connections are open, so the databases' WAL and shared-memory files exist.
        #expect(Set(["LOCK", "state.db", "state.db-wal", "state.db-shm", "tokens.db", "tokens.db-wal"]).isSubset(of: files), "\(files)")
        for file in files {
            #expect(fileMode("\(h.dataDirectory)/\(file)") == 0o600, "\(file)")
        }
        await h.stop()
    }

    @Test func aFirstStartWithoutABootstrapFileWritesTheAdminSecretToAnOwnerOnlyFileOnce() async throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.url.appendingPathComponent("data")
        let first = try TetherServer(configuration: ServerHarness.configuration(dataDirectory: directory))
        let file = try #require(first.createdAdminTokenFile)
        #expect(file == directory.appendingPathComponent("admin.token").path)
        #expect(fileMode(file) == 0o600)
        let secret = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let address = try first.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        let agents: ControlV1.ListAgentsResponse = try await client.unary(
            ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest(), metadata: ServerHarness.bearer(secret))
        #expect(agents.agents.isEmpty)
        await client.close()
        await first.shutdown()
        // The token exists now: a restart creates none and leaves the file as it was.
        let second = try TetherServer(configuration: ServerHarness.configuration(dataDirectory: directory))
        #expect(second.createdAdminTokenFile == nil)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == secret + "\n")
        await second.shutdown()
    }

    @Test func anAdminTokenFileLeftWithNoActiveAdminTokenIsNamedAndKept() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.url.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("admin.token").path
        try "left-over-secret-0123456789".write(toFile: file, atomically: true, encoding: .utf8)
        #expect { _ = try TetherServer(configuration: ServerHarness.configuration(dataDirectory: directory)) } throws: {
            "\($0)".contains("no admin token is active and \(file) already exists")
        }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "left-over-secret-0123456789")
    }

    /// Agent streams never end by themselves: shutdown must end them, at once, with a
    /// status that sends the agent elsewhere or back later; the lease survives the restart.
    @Test(.timeLimit(.minutes(1)))
    func shutdownEndsAgentStreamsWithUnavailableAndTheirLeasesResumeAfterARestart() async throws {
        let h = try ServerHarness(shutdownGracePeriod: .seconds(600))
        _ = try await h.apply("dag_id: one\ntasks:\n  - {id: only, entrypoint: work}\n")
        let agent = try await h.connectAgent("a", entrypoints: ["work"])
        _ = try await agent.welcome()
        let run = try await h.trigger("one")
        let grant = try await agent.grant()
        let start = ContinuousClock.now
        let stopping = Task { await h.server.shutdown() }
        let status = await agent.endStatus()
        #expect(status?.code == .unavailable)
        #expect(status?.message == "server shutting down")
        await stopping.value
        // Far inside the grace period: the stream was ended, not waited out.
        #expect(ContinuousClock.now - start < .seconds(30))
        await h.client.close()

        let restarted = try ServerHarness(restarting: h)
        let again = try await restarted.connectAgent("a", entrypoints: ["work"],
                                                     resumed: [AgentV1.ResumedLease(leaseID: grant.leaseID, epoch: grant.epoch)])
        #expect(try await again.welcome().confirmedLeaseIds == [grant.leaseID])
        try await again.report(grant, .succeeded, sequence: 1)
        #expect(try await again.ack().sequence == 1)
        #expect(try await restarted.run(run.runID).run?.state == .success)
        await again.close()
        await restarted.stop()
    }
}
