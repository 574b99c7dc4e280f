import Foundation
import Testing
import TetherTestSupport

/// A stock grpcio client (Python, from Protos/) against our server
/// (`tether-echo serve`), over h2c and TLS: all four call shapes, deadlines,
/// cancellation, 4 MiB messages, status + message, metadata, health, concurrency.
@Suite struct StockClientInteropTests {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/grpc_interop.py").path

    @Test func grpcioClientPassesEveryCaseOverH2C() throws {
        let server = try ChildProcess(Repository.binary("tether-echo"), ["serve", "--listen", "127.0.0.1:0"],
                                      readyPrefix: "listening on")
        let result = try runProcess(Repository.python, [Self.script, server.listeningAddress])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(" 0 failed"))
        #expect(server.stop() == 0, "server did not exit cleanly on SIGTERM")
    }

    @Test func grpcioClientPassesEveryCaseOverTLS() throws {
        let certs = try TestCertificates.make()
        let server = try ChildProcess(Repository.binary("tether-echo"),
                                      ["serve", "--listen", "127.0.0.1:0", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey],
                                      readyPrefix: "listening on")
        let port = server.listeningAddress.split(separator: ":").last.map(String.init) ?? ""
        let result = try runProcess(Repository.python, [Self.script, "localhost:\(port)", "--ca", certs.caCert])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(" 0 failed"))
        #expect(server.stop() == 0, "server did not exit cleanly on SIGTERM")
    }
}
