import Foundation
import GRPC
import H2
import Testing
import TetherTestSupport
import TetherWire

/// `tether server` as an operator runs it.
@Suite struct ServerCommandTests {
    static func dataDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tether-data-\(UUID().uuidString)").path
    }

    @Test func plaintextServerAnswersHealthAndStopsCleanlyOnSIGTERM() async throws {
        let dir = Self.dataDir()
        let server = try ChildProcess(Repository.tetherBinary,
                                      ["server", "--listen", "127.0.0.1:0", "--data-dir", dir, "--insecure-plaintext"],
                                      readyPrefix: "listening on")
        #expect(server.readyLine.hasSuffix("(h2c)"))
        #expect(FileManager.default.fileExists(atPath: dir))
        let client = try GRPCClient(configuration: .init(target: try SocketAddress(parsing: server.listeningAddress), tls: nil))
        let health: HealthV1.HealthCheckResponse = try await client.unary(HealthV1.Health.check, HealthV1.HealthCheckRequest())
        #expect(health.status == .serving)
        await client.close()
        #expect(server.stop() == 0)
    }

    @Test func tlsServerAnswersHealthOverTLS() async throws {
        let certs = try TestCertificates.make()
        let server = try ChildProcess(Repository.tetherBinary,
                                      ["server", "--listen", "127.0.0.1:0", "--data-dir", Self.dataDir(),
                                       "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey],
                                      readyPrefix: "listening on")
        #expect(server.readyLine.hasSuffix("(tls)"))
        var configuration = GRPCClient.Configuration(target: try SocketAddress(parsing: server.listeningAddress),
                                                     tls: try TLSContext(.client(caFile: certs.caCert, serverName: "localhost")))
        configuration.authority = "localhost"
        let client = try GRPCClient(configuration: configuration)
        let health: HealthV1.HealthCheckResponse = try await client.unary(HealthV1.Health.check, HealthV1.HealthCheckRequest())
        #expect(health.status == .serving)
        await client.close()
        #expect(server.stop() == 0)
    }

    @Test func withoutTLSOrInsecurePlaintextTheServerRefusesToStart() throws {
        let result = try runProcess(Repository.tetherBinary, ["server", "--listen", "127.0.0.1:0", "--data-dir", Self.dataDir()])
        #expect(result.status == 1)
        #expect(result.stderr.contains("give both --tls-cert and --tls-key, or --insecure-plaintext"))
    }

    @Test func aMissingCertificateFileIsNamed() throws {
        let result = try runProcess(Repository.tetherBinary,
                                    ["server", "--listen", "127.0.0.1:0", "--data-dir", Self.dataDir(),
                                     "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/cert.pem"))
    }

    @Test func aBadListenAddressIsAUsageError() throws {
        let result = try runProcess(Repository.tetherBinary,
                                    ["server", "--listen", "nowhere", "--data-dir", Self.dataDir(), "--insecure-plaintext"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--listen"))
    }

    @Test func aSecondServerOnTheSameDataDirExitsNamingItAndTheHolderAndANewOneStartsOnceTheFirstStops() throws {
        let dir = Self.dataDir()
        let arguments = ["server", "--listen", "127.0.0.1:0", "--data-dir", dir, "--insecure-plaintext"]
        let first = try ChildProcess(Repository.tetherBinary, arguments, readyPrefix: "listening on")
        let second = try runProcess(Repository.tetherBinary, arguments)
        #expect(second.status == 1)
        #expect(second.stderr.contains("data dir \(dir) is in use by another tether server (pid \(first.process.processIdentifier))"),
                "\(second.stderr)")
        #expect(first.stop() == 0)
        let third = try ChildProcess(Repository.tetherBinary, arguments, readyPrefix: "listening on")
        #expect(third.stop() == 0)
    }

    /// The first start's admin secret must not reach stdout (a journal): only the file has it.
    @Test func theFirstStartsAdminSecretGoesToAnOwnerOnlyFileAndOnlyItsPathIsPrinted() throws {
        let dir = Self.dataDir()
        let server = try ChildProcess(Repository.tetherBinary,
                                      ["server", "--listen", "127.0.0.1:0", "--data-dir", dir, "--insecure-plaintext"],
                                      readyPrefix: "listening on")
        let file = dir + "/admin.token"
        #expect(server.recentOutput.contains("admin token created; its secret is in \(file) (mode 0600)"), "\(server.recentOutput)")
        #expect(fileMode(file) == 0o600)
        let secret = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(secret.hasPrefix("tether_"))
        #expect(!server.recentOutput.contains(secret))
        let agents = try runProcess(Repository.tetherBinary,
                                    ["agents", "--server", "http://\(server.listeningAddress)", "--token", secret],
                                    environment: ["HOME": dir])
        #expect(agents.status == 0, "\(agents)")
        #expect(server.stop() == 0)
        #expect(!server.recentOutput.contains(secret))
    }

    @Test func aPortInUseIsReportedNotCrashedOn() throws {
        let first = try ChildProcess(Repository.tetherBinary,
                                     ["server", "--listen", "127.0.0.1:0", "--data-dir", Self.dataDir(), "--insecure-plaintext"],
                                     readyPrefix: "listening on")
        let result = try runProcess(Repository.tetherBinary,
                                    ["server", "--listen", first.listeningAddress, "--data-dir", Self.dataDir(), "--insecure-plaintext"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("Address already in use"))
        #expect(first.stop() == 0)
    }
}
