import Foundation
import Testing
import TetherTestSupport

/// A stock grpcio client (Python, from Protos/) against our server
/// (`tether-echo serve`), over h2c and TLS: all four call shapes, deadlines,
/// cancellation, 4 MiB messages, status + message, metadata, health, concurrency.
@Suite struct StockClientInteropTests {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/grpc_interop.py").path

    @Test func grpcioClientPassesEveryCaseOverH2C() async throws {
        let outcome = try await onThreadOfItsOwn {
            let server = try ChildProcess(Repository.binary("tether-echo"), ["serve", "--listen", "127.0.0.1:0"],
                                          readyPrefix: "listening on")
            let result = try runProcess(Repository.python, [Self.script, server.listeningAddress])
            return (result, server.stop())
        }
        Self.expectEveryCasePassed(outcome)
    }

    @Test func grpcioClientPassesEveryCaseOverTLS() async throws {
        let outcome = try await onThreadOfItsOwn {
            let certs = try TestCertificates.make()
            let server = try ChildProcess(Repository.binary("tether-echo"),
                                          ["serve", "--listen", "127.0.0.1:0", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey],
                                          readyPrefix: "listening on")
            let port = server.listeningAddress.split(separator: ":").last.map(String.init) ?? ""
            let result = try runProcess(Repository.python, [Self.script, "localhost:\(port)", "--ca", certs.caCert])
            return (result, server.stop())
        }
        Self.expectEveryCasePassed(outcome)
    }

    /// The script's run and the server's exit status on SIGTERM.
    private static func expectEveryCasePassed(_ outcome: (script: ProcessResult, serverExitStatus: Int32)) {
        #expect(outcome.script.status == 0, "\(outcome.script.stdout)\(outcome.script.stderr)")
        #expect(outcome.script.stdout.contains(" 0 failed"))
        #expect(outcome.serverExitStatus == 0, "server did not exit cleanly on SIGTERM")
    }
}
