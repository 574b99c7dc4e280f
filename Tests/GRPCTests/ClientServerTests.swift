import Foundation
import Synchronization
import Testing
@testable import GRPC
import H2
import TetherEcho
import TetherTestSupport
@_spi(Testing) import TetherWire

/// Our client against our server, in process, over h2c on 127.0.0.1.
@Suite struct ClientServerTests {
    typealias Request = TestingV1.EchoRequest
    typealias Response = TestingV1.EchoResponse
    static let echo = TestingV1.EchoService.echo

    @Test func unaryCallEchoesPayloadTextAndMetadata() async throws {
        try await withServer { client in
            var request = Request()
            request.payload = [0, 1, 2, 255]
            request.text = "ünïcødé"
            var metadata = GRPCMetadata()
            try metadata.addString("abc", forKey: "x-trace")
            try metadata.addBinary([0, 255], forKey: "x-blob-bin")
            let response: Response = try await client.unary(Self.echo, request, metadata: metadata)
            #expect(response.payload == request.payload)
            #expect(response.text == request.text)
            #expect(response.metadata.contains("x-trace=abc"))
            #expect(response.metadata.contains("x-blob-bin=0,255"))
        }
    }

    /// The server keeps recently received long header values per connection to reuse their
    /// Strings: values of one length that differ, and more of them than it keeps, must still
    /// arrive exactly.
    @Test func longMetadataValuesOfOneLengthArriveExactlyCallAfterCall() async throws {
        try await withServer { client in
            let values = (0..<12).map { "trace-\(String(repeating: "x", count: 20))-\(String(format: "%04d", $0))" }
            for value in values + values.reversed() {
                var metadata = GRPCMetadata()
                try metadata.addString(value, forKey: "x-trace")
                let response: Response = try await client.unary(Self.echo, Request(), metadata: metadata)
                #expect(response.metadata.contains("x-trace=\(value)"))
            }
        }
    }

    @Test func serverStreamingDeliversEveryResponseInOrder() async throws {
        try await withServer { client in
            let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.expand)
            var request = Request()
            request.repeat = 100
            try await call.send(request)
            await call.finishSending()
            var indices: [UInt32] = []
            while let response = try await call.next() { indices.append(response.index) }
            #expect(indices == Array(0..<100))
            #expect(await call.status()?.code == .ok)
        }
    }

    @Test func clientStreamingJoinsEveryRequest() async throws {
        try await withServer { client in
            let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.collect)
            for i in 0..<50 {
                var request = Request()
                request.text = String(i)
                try await call.send(request)
            }
            await call.finishSending()
            let response = try await call.next()
            #expect(response?.text == (0..<50).map(String.init).joined())
            #expect(try await call.next() == nil)
        }
    }

    @Test func bidirectionalPingPongAnswersEachMessageInOrder() async throws {
        try await withServer { client in
            let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
            for i in 0..<200 {
                var request = Request()
                request.text = "ping \(i)"
                try await call.send(request)
                let pong = try await call.next()
                #expect(pong?.text == "ping \(i)" && pong?.index == UInt32(i))
            }
            await call.finishSending()
            #expect(try await call.next() == nil)
        }
    }

    /// A task on the client's own loop sends and reads without hopping (the ping-pong
    /// benchmark's shape); every answer must still arrive, in order, on that loop.
    @Test func callDrivenFromTheClientsLoopAnswersInOrderThere() async throws {
        try await withServer { client in
            let loop = client.eventLoop
            let answers = try await Task(executorPreference: loop) { () async throws -> [String] in
                let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
                var answers: [String] = []
                for i in 0..<200 {
                    var request = Request()
                    request.text = "ping \(i)"
                    try await call.send(request)
                    let pong = try await call.next()
                    #expect(loop.inEventLoop)
                    answers.append(pong?.text ?? "(none)")
                }
                await call.finishSending()
                #expect(try await call.next() == nil)
                return answers
            }.value
            #expect(answers == (0..<200).map { "ping \($0)" })
        }
    }

    @Test(.timeLimit(.minutes(1)))  // a call that reached a stopped loop would wait forever
    func aCallUsedAfterItsClientClosedFailsWithUnavailable() async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: EchoService.router())
        let client = try GRPCClient(configuration: .init(target: try server.start(), tls: nil))
        var call: GRPCClientCall<Request, Response>? = try await client.makeCall(TestingV1.EchoService.chat)
        try await call?.send(Request())
        #expect(try await call?.next() != nil)
        await client.close()
        await server.shutdown(graceful: false)
        // The call keeps the client's loop running, so using it fails instead of waiting.
        #expect(!client.eventLoop.isStopped)
        await #expect { try await call?.send(Request()) } throws: { ($0 as? GRPCStatus)?.code == .unavailable }
        await #expect { try await call?.next() } throws: { ($0 as? GRPCStatus)?.code == .unavailable }
        await call?.finishSending()
        await call?.cancel()
        #expect(await call?.status()?.code == .unavailable)
        // The last call gone, the loop stops.
        call = nil
        #expect(client.eventLoop.isStopped)
    }

    @Test(.timeLimit(.minutes(1)))  // without the check these would wait forever
    func aCallWhoseLoopWasStoppedFailsWithUnavailable() async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: EchoService.router())
        let loop = try EventLoop.start(name: "test-client")
        let client = try GRPCClient(configuration: .init(target: try server.start(), tls: nil), eventLoop: loop)
        let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
        try await call.send(Request())
        #expect(try await call.next() != nil)
        await client.close()
        await server.shutdown(graceful: false)
        loop.stop()   // the loop's owner stops it; the call outlives it
        let stopped = GRPCStatus(code: .unavailable, message: "the call's event loop was stopped")
        await #expect(throws: stopped) { try await call.send(Request()) }
        await #expect(throws: stopped) { try await call.next() }
        await call.finishSending()
        await call.cancel()
        #expect(await call.status() == stopped)
        #expect(await call.initialMetadata().isEmpty)
    }

    /// As in other gRPC libraries, cancelling the task that waits for a response cancels the
    /// call: a time limit or a task group's cancellation ends the wait instead of leaving it
    /// hung on a server that never answers.
    @Test func cancellingATaskWaitingInNextCancelsTheCall() async throws {
        try await withServer { client in
            let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
            try await call.send(Request())
            #expect(try await call.next() != nil)
            let waiting = Task { try await call.next() }  // the server answers nothing more
            waiting.cancel()
            let ended = Signal<Result<Response?, any Error>>()
            Task { ended.fire(await waiting.result) }  // without the fix it never does
            let outcome = await ended.wait(within: .seconds(10))
            guard case .failure(let error)? = outcome else {
                Issue.record("the cancelled task's next() did not end within 10 s: \(String(describing: outcome))")
                return
            }
            #expect((error as? GRPCStatus)?.code == .cancelled)
            #expect(await call.status()?.code == .cancelled)
        }
    }

    /// Closing a client with no call left stops the loop it started.
    @Test func closingAClientWithNoCallsLeftStopsItsLoop() async throws {
        let client = try GRPCClient(configuration: .init(target: try SocketAddress(parsing: "127.0.0.1:9"), tls: nil))
        #expect(!client.eventLoop.isStopped)
        await client.close()
        #expect(client.eventLoop.isStopped)
    }

    @Test func errorStatusAndMessageReachTheClient() async throws {
        try await withServer { client in
            var request = Request()
            request.failWithCode = 5
            request.failWithMessage = "nöt fóund: 100%"
            await #expect(throws: GRPCStatus(code: .notFound, message: "nöt fóund: 100%")) {
                let _: Response = try await client.unary(Self.echo, request)
            }
        }
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        try await withServer { client in
            await #expect {
                let _: Response = try await client.unary(RPCMethod<Request, Response, RPCShape.Unary>(path: "/tether.testing.v1.EchoService/Nope"), Request())
            } throws: { ($0 as? GRPCStatus)?.code == .unimplemented }
        }
    }

    @Test func deadlineCancelsTheServerHandler() async throws {
        let observed = AsyncStream.makeStream(of: String.self)
        var router = GRPCRouter()
        router.unary(RPCMethod<Request, Response, RPCShape.Unary>(path: "/test.Slow/Wait")) { (_: Request, context: GRPCServerContext) -> Response in
            observed.continuation.yield(context.deadline == nil ? "started without deadline" : "started")
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                observed.continuation.yield("cancelled")
            }
            return Response()
        }
        try await withServer(router: router) { client in
            let call = Task { () -> GRPCStatusCode? in
                do {
                    // 5 s, so that even a fully loaded 2-core machine gets the request to the
                    // handler before the deadline; the test then waits for the cancellation.
                    let _: Response = try await client.unary(RPCMethod<Request, Response, RPCShape.Unary>(path: "/test.Slow/Wait"), Request(), timeout: .seconds(5))
                    return .ok
                } catch {
                    return (error as? GRPCStatus)?.code
                }
            }
            var events = observed.stream.makeAsyncIterator()
            // The deadline is generous so the request reaches the handler even on a loaded machine.
            let started = try await next(&events, within: .seconds(10))
            #expect(started == "started")
            let cancelled = try await next(&events, within: .seconds(20))
            #expect(cancelled == "cancelled")
            #expect(await call.value == .deadlineExceeded)
        }
    }

    @Test func clientCancellationReachesTheHandlerAsCancellation() async throws {
        let observed = AsyncStream.makeStream(of: String.self)
        var router = GRPCRouter()
        router.bidirectionalStreaming(RPCMethod<Request, Response, RPCShape.BidirectionalStreaming>(path: "/test.Hold/Open")) { (requests: GRPCRequestStream<Request>, writer: GRPCResponseWriter<Response>, _) in
            observed.continuation.yield("started")
            do {
                for try await _ in requests {}
                observed.continuation.yield("ended normally")
            } catch {
                observed.continuation.yield("cancelled")
                throw error
            }
        }
        try await withServer(router: router) { client in
            let call: GRPCClientCall<Request, Response> = try await client.makeCall(RPCMethod<Request, Response, RPCShape.BidirectionalStreaming>(path: "/test.Hold/Open"))
            try await call.send(Request())
            var events = observed.stream.makeAsyncIterator()
            let started = try await next(&events, within: .seconds(10))
            #expect(started == "started")
            await call.cancel()
            let cancelled = try await next(&events, within: .seconds(20))
            #expect(cancelled == "cancelled")
            #expect(await call.status()?.code == .cancelled)
        }
    }

    @Test func oversizedRequestIsResourceExhaustedAndTheConnectionSurvives() async throws {
        try await withServer { client in
            var big = Request()
            big.payload = [UInt8](repeating: 7, count: (4 << 20) + 1)
            await #expect {
                let _: Response = try await client.unary(Self.echo, big)
            } throws: { ($0 as? GRPCStatus)?.code == .resourceExhausted }
            var small = Request()
            small.text = "after"
            let response: Response = try await client.unary(Self.echo, small)
            #expect(response.text == "after")
        }
    }

    @Test func fourMebibyteMessagesCrossBothWays() async throws {
        try await withServer { client in
            var request = Request()
            request.payload = (0..<((4 << 20) - 64)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let response: Response = try await client.unary(Self.echo, request)
            #expect(response.payload == request.payload)
        }
    }

    @Test func aThousandConcurrentStreamsOnOneConnectionComplete() async throws {
        try await withServer { client in
            let texts = try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<1000 {
                    group.addTask {
                        var request = Request()
                        request.text = String(i)
                        request.delayMs = 20
                        let response: Response = try await client.unary(Self.echo, request)
                        return response.text
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(texts) == Set((0..<1000).map(String.init)))
        }
    }

    @Test func gracefulShutdownFinishesInFlightCallsAndRefusesNewOnes() async throws {
        let server = try GRPCServer(configuration: .init(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil),
                                    router: EchoService.router())
        let address = try server.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        var slow = Request()
        slow.delayMs = 500
        slow.text = "slow"
        let inFlight = Task { () throws -> Response in try await client.unary(Self.echo, slow) }
        try await Task.sleep(for: .milliseconds(100))
        let stopping = Task { await server.shutdown(graceful: true) }
        #expect(try await inFlight.value.text == "slow")
        await stopping.value
        await #expect {
            let _: Response = try await client.unary(Self.echo, Request())
        } throws: { ($0 as? GRPCStatus)?.code == .unavailable }
        await client.close()
    }

    /// A port whose server is stopping must refuse connections at once: a connection left in
    /// the listening socket's backlog would wait, unanswered, until the last stream ended.
    @Test func aStoppingServerRefusesNewConnectionsWhileItsOpenStreamsFinish() async throws {
        let server = try GRPCServer(configuration: .init(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil),
                                    router: EchoService.router())
        let address = try server.start()
        #expect(tcpConnectError(port: address.port) == 0)
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
        try await call.send(Request())
        _ = try await call.next()
        let whileDraining = Mutex<Int32?>(nil)
        let stopping = Task {
            await server.shutdown(graceful: true) {
                whileDraining.withLock { $0 = tcpConnectError(port: address.port) }
                await call.finishSending()   // the open stream may end now
            }
        }
        while try await call.next() != nil {}
        await stopping.value
        #expect(whileDraining.withLock { $0 } == ECONNREFUSED)
        await client.close()
    }

    @Test func aBrokenConnectionFailsInFlightCallsWithUnavailable() async throws {
        let server = try GRPCServer(configuration: .init(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil),
                                    router: EchoService.router())
        let address = try server.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        let call: GRPCClientCall<Request, Response> = try await client.makeCall(TestingV1.EchoService.chat)
        try await call.send(Request())
        _ = try await call.next()
        await server.shutdown(graceful: false)
        let start = ContinuousClock.now
        await #expect {
            _ = try await call.next()
        } throws: { ($0 as? GRPCStatus)?.code == .unavailable }
        // Well under the 30 s keepalive: the close itself is noticed, not a timeout.
        #expect(ContinuousClock.now - start < .seconds(10))
        await client.close()
    }

    @Test func callingAnAddressWithNoServerIsUnavailable() async throws {
        // Bind and close a listener to find a port nobody listens on.
        let server = try GRPCServer(configuration: .init(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil),
                                    router: GRPCRouter())
        let address = try server.start()
        await server.shutdown(graceful: false)
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        await #expect {
            let _: Response = try await client.unary(Self.echo, Request())
        } throws: { ($0 as? GRPCStatus)?.code == .unavailable }
        await client.close()
    }

    // MARK: -

    private func withServer(router: GRPCRouter = EchoService.router(),
                            _ body: (GRPCClient) async throws -> Void) async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 2
        let server = try GRPCServer(configuration: configuration, router: router)
        let address = try server.start()
        let client = try GRPCClient(configuration: .init(target: address, tls: nil))
        do {
            try await body(client)
        } catch {
            await client.close()
            await server.shutdown(graceful: false)
            throw error
        }
        await client.close()
        await server.shutdown(graceful: false)
    }
}

/// The next element of `events`, failing the test instead of hanging if none
/// arrives within `limit`.
func next(_ events: inout AsyncStream<String>.Iterator, within limit: Duration) async throws -> String? {
    let box = UnsafeSendableBox(events)
    defer { events = box.value }
    return try await withThrowingTaskGroup(of: String?.self) { group in
        group.addTask { await box.next() }
        group.addTask {
            try await Task.sleep(for: limit)
            Issue.record("no event within \(limit)")
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// Lets a test hand its stream iterator to a child task; only one task uses it at a time.
final class UnsafeSendableBox: @unchecked Sendable {
    var value: AsyncStream<String>.Iterator
    init(_ value: AsyncStream<String>.Iterator) { self.value = value }
    func next() async -> String? { await value.next() }
}
