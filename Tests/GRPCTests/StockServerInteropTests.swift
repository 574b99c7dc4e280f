import Foundation
import Testing
@testable import GRPC
import H2
import TetherTestSupport
import TetherWire

/// Our client against a stock grpcio server (Tests/Interop/grpc_echo_server.py),
/// over h2c and TLS: all four call shapes, deadlines, cancellation, 4 MiB
/// messages, status + message, metadata.
@Suite struct StockServerInteropTests {
    typealias Request = TestingV1.EchoRequest
    typealias Response = TestingV1.EchoResponse
    static let script = Repository.root.appendingPathComponent("Tests/Interop/grpc_echo_server.py").path

    @Test func ourClientWorksAgainstGrpcioOverH2C() async throws {
        let server = try await Self.startServer([])
        let client = try GRPCClient(configuration: .init(target: try SocketAddress(parsing: server.listeningAddress), tls: nil))
        try await exerciseEveryCallShape(client)
        await client.close()
        try await Self.expectCleanStop(server)
    }

    @Test func ourClientWorksAgainstGrpcioOverTLS() async throws {
        let certs = try await onThreadOfItsOwn { try TestCertificates.make() }
        let server = try await Self.startServer(["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey])
        var configuration = GRPCClient.Configuration(target: try SocketAddress(parsing: server.listeningAddress),
                                                     tls: try TLSContext(.client(caFile: certs.caCert, serverName: "localhost")))
        configuration.authority = "localhost"
        let client = try GRPCClient(configuration: configuration)
        try await exerciseEveryCallShape(client)
        await client.close()
        try await Self.expectCleanStop(server)
    }

    /// Starts the grpcio server; the wait for its ready line runs off the cooperative pool.
    private static func startServer(_ arguments: [String]) async throws -> ChildProcess {
        try await onThreadOfItsOwn { try ChildProcess(Repository.python, [script] + arguments, readyPrefix: "listening on") }
    }

    /// Stops the server (SIGTERM, waiting off the cooperative pool); it must exit 0.
    private static func expectCleanStop(_ server: ChildProcess) async throws {
        let status = try await onThreadOfItsOwn { server.stop() }
        #expect(status == 0, "\(server.recentOutput)")
    }

    private func exerciseEveryCallShape(_ client: GRPCClient) async throws {
        // Unary with metadata and unicode.
        var request = Request()
        request.text = "ünïcødé-日本"
        request.payload = [0, 1, 255]
        var metadata = GRPCMetadata()
        try metadata.addString("abc", forKey: "x-trace")
        try metadata.addBinary([0, 255], forKey: "x-blob-bin")
        let echoed: Response = try await client.unary(TestingV1.EchoService.echo, request, metadata: metadata)
        #expect(echoed.text == request.text && echoed.payload == request.payload)
        #expect(echoed.metadata == ["x-blob-bin=0,255", "x-trace=abc"])

        // Server streaming.
        let expand: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.expand)
        var expandRequest = Request()
        expandRequest.repeat = 20
        try await expand.send(expandRequest)
        await expand.finishSending()
        var indices: [UInt32] = []
        while let r = try await expand.next() { indices.append(r.index) }
        #expect(indices == Array(0..<20))

        // Client streaming.
        let collect: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.collect)
        for i in 0..<10 {
            var r = Request()
            r.text = String(i)
            try await collect.send(r)
        }
        await collect.finishSending()
        #expect(try await collect.next()?.text == "0123456789")

        // Bidirectional ping-pong.
        let chat: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
        for i in 0..<50 {
            var r = Request()
            r.text = "ping \(i)"
            try await chat.send(r)
            #expect(try await chat.next()?.text == "ping \(i)")
        }
        await chat.finishSending()
        #expect(try await chat.next() == nil)

        // Error status with a message that needs percent-encoding.
        var failing = Request()
        failing.failWithCode = 9
        failing.failWithMessage = "nöt ready: 100%"
        await #expect(throws: GRPCStatus(code: .failedPrecondition, message: "nöt ready: 100%")) {
            let _: Response = try await client.unary(TestingV1.EchoService.echo, failing)
        }

        // Deadline.
        var slow = Request()
        slow.delayMs = 30_000
        let start = ContinuousClock.now
        await #expect {
            let _: Response = try await client.unary(TestingV1.EchoService.echo, slow, timeout: .milliseconds(300))
        } throws: { ($0 as? GRPCStatus)?.code == .deadlineExceeded }
        #expect(ContinuousClock.now - start < .seconds(20))

        // Cancellation of a stream.
        let cancelled: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.expand)
        var many = Request()
        many.repeat = 1_000
        many.delayMs = 10
        try await cancelled.send(many)
        await cancelled.finishSending()
        _ = try await cancelled.next()
        await cancelled.cancel()
        #expect(await cancelled.status()?.code == .cancelled)

        // 4 MiB both ways, and the server's 4 MiB limit.
        var big = Request()
        big.payload = [UInt8](repeating: 9, count: (4 << 20) - 64)
        let bigEcho: Response = try await client.unary(TestingV1.EchoService.echo, big)
        #expect(bigEcho.payload.count == big.payload.count)
        var tooBig = Request()
        tooBig.payload = [UInt8](repeating: 9, count: (4 << 20) + 1)
        await #expect {
            let _: Response = try await client.unary(TestingV1.EchoService.echo, tooBig)
        } throws: { ($0 as? GRPCStatus)?.code == .resourceExhausted }

        // Still usable afterwards.
        let after: Response = try await client.unary(TestingV1.EchoService.echo, request)
        #expect(after.text == request.text)
    }
}
