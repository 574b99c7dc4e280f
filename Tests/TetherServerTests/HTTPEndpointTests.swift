import Foundation
import GRPC
import H2
import Testing
import TetherServer
import TetherTestSupport
import TetherWire

/// `/healthz` and `/readyz` on the gRPC port, asked by curl over HTTP/1.1 and over h2c with
/// prior knowledge (and over TLS), while gRPC keeps working on the same port.
@Suite struct HTTPEndpointTests {
    static let curl = URL(fileURLWithPath: "/usr/bin/curl")

    /// `curl ARGS URL`: the status code, the body and the protocol version curl used.
    static func get(_ url: String, _ arguments: [String] = []) async throws -> (status: Int, body: String, version: String) {
        let result = try await onThreadOfItsOwn {
            try runProcess(Self.curl, ["-sS", "--max-time", "10", "-w", "\n%{http_code} %{http_version}"] + arguments + [url])
        }
        #expect(result.status == 0, "curl \(url): \(result.stderr)")
        var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let trailer = (lines.popLast() ?? "").split(separator: " ")
        return (Int(trailer.first ?? "") ?? 0, lines.joined(separator: "\n").trimmingCharacters(in: .newlines),
                trailer.count > 1 ? String(trailer[1]) : "")
    }

    @Test func probesAnswerOverHTTP1AndH2cBesideGRPCOnOnePort() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        for (arguments, version) in [(["--http1.1"], "1.1"), (["--http2-prior-knowledge"], "2")] {
            let health = try await Self.get(base + "/healthz", arguments)
            #expect(health.status == 200 && health.body == "ok" && health.version == version)
            let ready = try await Self.get(base + "/readyz", arguments)
            #expect(ready.status == 200 && ready.body == "ready" && ready.version == version)
            let unknown = try await Self.get(base + "/nowhere", arguments)
            #expect(unknown.status == 404)
            let wrongMethod = try await Self.get(base + "/healthz", arguments + ["-X", "DELETE"])
            #expect(wrongMethod.status == 405)
        }
        #expect(try await harness.health() == .serving)   // gRPC on the same port, same connection kind as agents
        await harness.stop()
    }

    @Test func readyzSays503WhileDrainingAndHealthzStaysOK() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        harness.server.beginDraining()
        for arguments in [["--http1.1"], ["--http2-prior-knowledge"]] {
            let ready = try await Self.get(base + "/readyz", arguments)
            #expect(ready.status == 503)
            #expect(ready.body.contains("draining"))
            #expect(try await Self.get(base + "/healthz", arguments).status == 200)
        }
        await harness.stop()
    }

    @Test func overTLSAClientWithoutH2GetsHTTP1AndOneWithH2GetsHTTP2() async throws {
        let certificates = try TestCertificates.make()
        let scratch = try ScratchDirectory()
        var configuration = TetherServer.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"),
                                                       dataDirectory: scratch.url.appendingPathComponent("data"))
        configuration.tlsCertificateFile = certificates.serverCert
        configuration.tlsKeyFile = certificates.serverKey
        configuration.synchronous = .normal
        let server = try TetherServer(configuration: configuration)
        let address = try server.start()
        let url = "https://localhost:\(address.port)/healthz"
        let tls = ["--cacert", certificates.caCert, "--resolve", "localhost:\(address.port):127.0.0.1"]
        let http1 = try await Self.get(url, tls + ["--http1.1"])
        #expect(http1.status == 200 && http1.version == "1.1")
        let http2 = try await Self.get(url, tls + ["--http2"])
        #expect(http2.status == 200 && http2.version == "2")
        await server.shutdown()
    }
}
