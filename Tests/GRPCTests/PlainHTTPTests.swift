import Foundation
import Testing
@testable import GRPC
import H2
import TetherEcho
import TetherTestSupport
@_spi(Testing) import TetherWire

/// A `GRPCServer` with an `HTTPHandler`: plain HTTP over HTTP/2 and HTTP/1.1 reaches the
/// handler, gRPC keeps its own path, gRPC over HTTP/1.1 is refused. Driven with curl, a
/// stock client of both protocols.
@Suite struct PlainHTTPTests {
    static let curl = URL(fileURLWithPath: "/usr/bin/curl")

    static let handler: HTTPHandler = { request in
        .text(200, "\(request.method) \(request.path) over \(request.version)")
    }

    /// `curl ARGS URL` against `address`: status line code and body.
    static func curl(_ arguments: [String], _ address: SocketAddress, path: String) async throws -> (status: Int, body: String) {
        let url = "http://\(address)\(path)"
        let result = try await onThreadOfItsOwn {
            try runProcess(Self.curl, ["-sS", "--max-time", "10", "-w", "\n%{http_code}"] + arguments + [url])
        }
        #expect(result.status == 0, "curl: \(result.stderr)")
        var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.popLast() ?? "") ?? 0
        return (status, lines.joined(separator: "\n").trimmingCharacters(in: .newlines))
    }

    @Test func plainHTTPReachesTheHandlerOverBothProtocolsAndGRPCStillWorks() async throws {
        try await withServer(handler: Self.handler) { address, client in
            let h1 = try await Self.curl(["--http1.1"], address, path: "/hello")
            #expect(h1.status == 200 && h1.body == "GET /hello over HTTP/1.1")
            let h2 = try await Self.curl(["--http2-prior-knowledge"], address, path: "/hello")
            #expect(h2.status == 200 && h2.body == "GET /hello over HTTP/2")
            let posted = try await Self.curl(["--http2-prior-knowledge", "-d", "x=1"], address, path: "/form")
            #expect(posted.body == "POST /form over HTTP/2")
            var request = TestingV1.EchoRequest()
            request.text = "still gRPC"
            let response: TestingV1.EchoResponse = try await client.unary(TestingV1.EchoService.echo, request)
            #expect(response.text == "still gRPC")
        }
    }

    @Test func grpcOverHTTP1IsRefusedWith505() async throws {
        try await withServer(handler: Self.handler) { address, _ in
            let refused = try await Self.curl(["--http1.1", "-X", "POST", "-H", "content-type: application/grpc"], address,
                                              path: "/tether.testing.v1.EchoService/Echo")
            #expect(refused.status == 505)
            #expect(refused.body.contains("gRPC needs HTTP/2"))
        }
    }

    @Test func grpcContentTypeOverHTTP2KeepsGRPCsOwnAnswer() async throws {
        try await withServer(handler: Self.handler) { address, _ in
            // A GET with a gRPC content-type is a broken gRPC request, not a plain one: 405 as before.
            let broken = try await Self.curl(["--http2-prior-knowledge", "-H", "content-type: application/grpc"], address,
                                             path: "/tether.testing.v1.EchoService/Echo")
            #expect(broken.status == 405)
        }
    }

    @Test func withoutAHandlerPlainHTTPOverHTTP2GetsGRPCsAnswer() async throws {
        try await withServer(handler: nil) { address, _ in
            let plain = try await Self.curl(["--http2-prior-knowledge"], address, path: "/hello")
            #expect(plain.status == 405)
        }
    }

    private func withServer(handler: HTTPHandler?, _ body: (SocketAddress, GRPCClient) async throws -> Void) async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: EchoService.router(), httpHandler: handler)
        let address = try server.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        do {
            try await body(address, client)
        } catch {
            await client.close()
            await server.shutdown(graceful: false)
            throw error
        }
        await client.close()
        await server.shutdown(graceful: false)
    }
}
