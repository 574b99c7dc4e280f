import Foundation
import Testing
@testable import GRPC
import H2
import TetherEcho
import TetherTestSupport
import TetherWire

/// Keepalive on both sides: after `keepaliveInterval` without receiving anything a side
/// sends PING, and closes the connection if no ACK comes within `keepaliveTimeout`.
/// The peers (Tests/Interop/h2_peers.py) complete the HTTP/2 handshake, then stop reading.
@Suite struct KeepaliveTests {
    static func shortKeepalive() -> HTTP2Configuration {
        var http2 = HTTP2Configuration()
        http2.keepaliveInterval = .milliseconds(200)
        http2.keepaliveTimeout = .milliseconds(300)
        return http2
    }

    @Test func serverClosesAConnectionWhosePeerStopsAnsweringPings() async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        configuration.http2 = Self.shortKeepalive()
        let server = try GRPCServer(configuration: configuration, router: EchoService.router())
        let address = try server.start()
        // The peer waits (up to 10 s) for the close without reading, then reads what came before it.
        let result = try await H2Peer.runClient("unresponsive-client", address, ["--wait", "10"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("PING(stream 0, flags 0x0"), "the server never pinged: \(result.stdout)")
        // Not closed before the interval passed: it is the unanswered PING that closed it.
        let waited = result.stdout.split(separator: " ").drop { $0 != "after" }.dropFirst().first.flatMap { Double($0) }
        #expect((waited ?? 0) >= 0.2, "\(result.stdout)")
        #expect(await eventually { server.openConnections == 0 })
        await server.shutdown(graceful: false)
    }

    /// Over TLS a connection is not HTTP/2 until its handshake completes, so there is no
    /// PING to send: a client that never finishes the handshake is closed once it has been
    /// silent for the keepalive interval.
    @Test func serverClosesATLSConnectionWhoseHandshakeStalls() async throws {
        let certs = try await onThreadOfItsOwn { try TestCertificates.make() }
        var configuration = GRPCServer.Configuration(
            address: try SocketAddress(parsing: "127.0.0.1:0"),
            tls: try TLSContext(.server(certificateChainFile: certs.serverCert, privateKeyFile: certs.serverKey)))
        configuration.loopCount = 1
        configuration.http2 = Self.shortKeepalive()
        let server = try GRPCServer(configuration: configuration, router: EchoService.router())
        let address = try server.start()
        let result = try await H2Peer.runClient("silent-client", address, ["--wait", "10"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(await eventually { server.openConnections == 0 })
        await server.shutdown(graceful: false)
    }

    @Test func clientFailsCallsWithUnavailableWhenTheServerStopsAnsweringPings() async throws {
        let peer = try await H2Peer.startServer("unresponsive-server")
        var configuration = GRPCClient.Configuration(target: peer.address, tls: nil)
        configuration.http2 = Self.shortKeepalive()
        let client = try GRPCClient(configuration: configuration)
        let start = ContinuousClock.now
        // The peer takes the call's HEADERS, then never reads or answers again.
        let status = await ClientConnectionTests.failure(client)
        #expect(status?.code == .unavailable, "\(String(describing: status))")
        #expect(status?.message.contains("keepalive timeout: no PING ack within 0.3 seconds") == true,
                "\(String(describing: status))")
        #expect(ContinuousClock.now - start < .seconds(10))
        await client.close()
        try await peer.stop()
    }
}
