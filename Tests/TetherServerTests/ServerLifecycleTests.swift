import Foundation
import GRPC
import Testing
import TetherServer
import TetherTestSupport
import TetherWire

/// What a server does with its data directory and its first admin token.
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
            "/tether.control.v1.ControlService/ListAgents", ControlV1.ListAgentsRequest(), metadata: ServerHarness.bearer(secret))
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
}
