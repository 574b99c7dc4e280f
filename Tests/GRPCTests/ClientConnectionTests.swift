import Foundation
import Testing
@testable import GRPC
import H2
import TetherWire

/// Our client against peers that accept TCP but never become an HTTP/2 connection: a
/// connection is ready only once the peer's first SETTINGS frame arrives, so calls fail
/// promptly with UNAVAILABLE and a reason instead of waiting out keepalive.
@Suite struct ClientConnectionTests {
    typealias Request = TestingV1.EchoRequest
    typealias Response = TestingV1.EchoResponse
    static let echo = TestingV1.EchoService.echo

    @Test func peerAnsweringHTTP1IsUnavailableAsSoonAsItCloses() async throws {
        let peer = try await H2Peer.startServer("http1-server")
        // The connect timeout is left at its 20 s default: the close is what must end the call.
        let client = try GRPCClient(configuration: .init(target: peer.address, tls: nil))
        let start = ContinuousClock.now
        let status = await Self.failure(client)
        #expect(status?.code == .unavailable, "\(String(describing: status))")
        #expect(status?.message.contains("answered \"HTTP/1.1 400 Bad Request\" instead of SETTINGS") == true,
                "\(String(describing: status))")
        #expect(ContinuousClock.now - start < .seconds(10))
        await client.close()
        try await peer.stop()
    }

    @Test func silentPeerIsUnavailableAfterTheConnectTimeout() async throws {
        let peer = try await H2Peer.startServer("silent-server")
        var configuration = GRPCClient.Configuration(target: peer.address, tls: nil)
        configuration.backoff.minimumConnectTimeout = .milliseconds(300)
        let client = try GRPCClient(configuration: configuration)
        let start = ContinuousClock.now
        let status = await Self.failure(client)
        #expect(status?.code == .unavailable, "\(String(describing: status))")
        #expect(status?.message.contains("no HTTP/2 SETTINGS from the peer within 0.3 seconds") == true,
                "\(String(describing: status))")
        #expect(ContinuousClock.now - start < .seconds(10))
        await client.close()
        try await peer.stop()
    }

    @Test func aClosedClientClosesAgainAtOnceAndFailsNewCallsAsUnavailable() async throws {
        // Its loop is stopped by the first close: anything sent to it would wait forever.
        let client = try GRPCClient(configuration: .init(target: try SocketAddress(parsing: "127.0.0.1:9"), tls: nil))
        await client.close()
        await client.close()
        let status = await Self.failure(client)
        #expect(status?.code == .unavailable && status?.message == "the client was closed", "\(String(describing: status))")
    }

    /// The status an Echo call fails with (nil if it succeeds).
    static func failure(_ client: GRPCClient) async -> GRPCStatus? {
        do {
            let _: Response = try await client.unary(echo, Request())
            return nil
        } catch {
            return error
        }
    }
}
