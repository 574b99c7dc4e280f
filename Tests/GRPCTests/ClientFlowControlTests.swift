import Foundation
import Synchronization
import Testing
@testable import GRPC
import H2
@_spi(Testing) import TetherWire

/// Receive flow control on the client: the stream's window reopens only as the caller
/// takes responses with `next()`, so a server streaming into a caller that stopped reading
/// gets about one window ahead of it and then waits.
@Suite struct ClientFlowControlTests {
    typealias Request = TestingV1.EchoRequest
    typealias Response = TestingV1.EchoResponse

    @Test func serverStreamingIntoACallerThatStopsReadingIsHeldToAboutOneWindow() async throws {
        let messageBytes = 1 << 20
        let messageCount = 64
        let written = Atomic<Int>(0)
        var router = GRPCRouter()
        router.serverStreaming(RPCMethod<Request, Response, RPCShape.ServerStreaming>(path: "/test.Flood/Stream")) { (_: Request, writer: GRPCResponseWriter<Response>, _) in
            var response = Response()
            response.payload = [UInt8](repeating: 7, count: messageBytes)
            for i in 0..<messageCount {
                response.index = UInt32(i)
                try await writer.write(response)
                written.add(1, ordering: .relaxed)
            }
        }
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: router)
        let address = try server.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))

        let call: GRPCClientCall<Request, Response> = try await client.makeCall(RPCMethod<Request, Response, RPCShape.ServerStreaming>(path: "/test.Flood/Stream"))
        try await call.send(Request())
        await call.finishSending()
        #expect(try await call.next()?.index == 0)

        // Proving that something stops means watching it: wait until the handler has written
        // nothing new for 500 ms (or has written everything, which flow control prevents).
        let deadline = ContinuousClock.now + .seconds(30)
        var last = -1
        while ContinuousClock.now < deadline {
            let now = written.load(ordering: .relaxed)
            if now == last || now == messageCount { break }
            last = now
            try await Task.sleep(for: .milliseconds(500))
        }
        let buffered = await call.bufferedResponseBytes()
        let window = Int(client.configuration.http2.initialStreamWindow)
        // One stream window, plus the message whose completing chunk arrived while the queue
        // was empty, plus framing.
        #expect(buffered <= window + messageBytes + (64 << 10), "the client buffered \(buffered >> 10) KiB unread")
        #expect(written.load(ordering: .relaxed) < messageCount / 2, "the handler wrote every message unhindered")

        var indices: [UInt32] = [0]
        while let response = try await call.next() {
            #expect(response.payload.count == messageBytes)
            indices.append(response.index)
        }
        #expect(indices == Array(0..<UInt32(messageCount)))
        #expect(await call.status()?.code == .ok)
        #expect(await call.bufferedResponseBytes() == 0)
        await client.close()
        await server.shutdown(graceful: false)
    }
}
