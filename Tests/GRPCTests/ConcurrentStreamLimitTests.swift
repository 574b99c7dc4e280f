import Foundation
import Synchronization
import Testing
@testable import GRPC
import H2
import TetherEcho
@_spi(Testing) import TetherWire

/// SETTINGS_MAX_CONCURRENT_STREAMS: our client keeps within the server's limit by queuing
/// calls; a peer that ignores it is refused.
@Suite struct ConcurrentStreamLimitTests {
    typealias Request = TestingV1.EchoRequest
    typealias Response = TestingV1.EchoResponse

    /// A server advertising max concurrent streams 2, on one loop.
    static func limitedServer(router: GRPCRouter = EchoService.router()) throws -> GRPCServer {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        configuration.http2.maxConcurrentStreams = 2
        return try GRPCServer(configuration: configuration, router: router)
    }

    @Test func clientQueuesCallsOverTheServersLimitInsteadOfFailingThem() async throws {
        let gauge = ConcurrencyGauge()
        var router = GRPCRouter()
        router.unary(RPCMethod<Request, Response, RPCShape.Unary>(path: "/test.Limited/Hold")) { (request: Request, _) -> Response in
            gauge.enter()
            defer { gauge.leave() }
            try await Task.sleep(for: .milliseconds(50))
            var response = Response()
            response.text = request.text
            return response
        }
        let server = try Self.limitedServer(router: router)
        let address = try server.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        let texts = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<10 {
                group.addTask {
                    var request = Request()
                    request.text = String(i)
                    let response: Response = try await client.unary(RPCMethod<Request, Response, RPCShape.Unary>(path: "/test.Limited/Hold"), request)
                    return response.text
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(texts) == Set((0..<10).map(String.init)))
        #expect(gauge.peak <= 2, "the handler saw \(gauge.peak) calls at once")
        await client.close()
        await server.shutdown(graceful: false)
    }

    /// The race REFUSED_STREAM exists for: the peer opens streams before it has
    /// acknowledged the limit. The excess stream is refused (UNAVAILABLE to a gRPC client,
    /// safe to retry) and the streams within the limit are served.
    @Test func excessStreamOpenedBeforeTheLimitIsAcknowledgedIsRefused() async throws {
        let server = try Self.limitedServer()
        let address = try server.start()
        let result = try await H2Peer.runClient("too-many-streams", address, ["--limit", "2", "--before-ack"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("RST_STREAM(stream 5, REFUSED_STREAM)"), "\(result.stdout)")
        try await Self.expectServing(address)
        await server.shutdown(graceful: false)
    }

    /// A peer that exceeds a limit it has acknowledged: libnghttp2 1.52 makes that a
    /// connection error, GOAWAY(PROTOCOL_ERROR) "max concurrent streams exceeded", where
    /// RFC 9113 5.1.2 allows a stream error; it checks before any callback of ours runs, so
    /// we cannot turn it into REFUSED_STREAM. A clear error all the same, and only that
    /// connection is lost.
    @Test func excessStreamAfterTheLimitIsAcknowledgedEndsThatConnectionWithProtocolError() async throws {
        let server = try Self.limitedServer()
        let address = try server.start()
        let result = try await H2Peer.runClient("too-many-streams", address, ["--limit", "2", "--after-ack"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("GOAWAY(PROTOCOL_ERROR"), "\(result.stdout)")
        try await Self.expectServing(address)
        await server.shutdown(graceful: false)
    }

    /// A new client completes a call.
    static func expectServing(_ address: SocketAddress) async throws {
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        var request = Request()
        request.text = "after"
        let response: Response = try await client.unary(TestingV1.EchoService.echo, request)
        #expect(response.text == "after")
        await client.close()
    }
}

/// How many calls a handler is running at once, and the most it ever ran.
final class ConcurrencyGauge: Sendable {
    private let counts = Mutex((now: 0, peak: 0))

    func enter() {
        counts.withLock { counts in
            counts.now += 1
            counts.peak = max(counts.peak, counts.now)
        }
    }

    func leave() {
        counts.withLock { $0.now -= 1 }
    }

    var peak: Int { counts.withLock { $0.peak } }
}
