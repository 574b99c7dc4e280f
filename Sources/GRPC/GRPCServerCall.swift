public import H2

/// What a handler knows about its call.
public struct GRPCServerContext: Sendable {
    /// The request's headers: method, authority, timeout, metadata.
    public let head: GRPCRequestHead
    /// The peer's address, "host:port".
    public let peer: String
    /// The verified TLS client certificate, when the server asked for one.
    public let peerIdentity: TLSPeerIdentity?
    /// When the call's deadline passes (from `grpc-timeout`), if it has one.
    public let deadline: ContinuousClock.Instant?
}

/// One server-side gRPC call on one HTTP/2 stream: validates the request head,
/// deframes request messages, runs the handler as a task on the connection's
/// event loop, frames responses and ends the stream with status trailers.
///
/// State lives on the loop. The handler is a task whose executor preference is
/// the loop, so its nonisolated code (and the request stream and response writer
/// it uses) run there too; `@unchecked Sendable` rests on that.
final class GRPCServerCall: HTTP2StreamDelegate, @unchecked Sendable {
    private enum State {
        case awaitingHead
        case running            // handler started; responses may flow
        case finished           // status sent (or stream gone); nothing more goes out
    }

    let stream: HTTP2Stream
    let loop: EventLoop
    private let router: GRPCRouter
    private let limits: GRPCServer.Limits
    /// Takes over a stream whose request is not gRPC at all (nil: gRPC's own answer stands).
    private let plainHTTP: PlainHTTPService?
    private var state = State.awaitingHead
    private var deframer: GRPCMessageDeframer
    private let framer: GRPCMessageFramer
    let requests = GRPCRequestBuffer()
    private var responseHeadersSent = false
    private var task: Task<Void, Never>?
    /// What the handler's task runs, from the head until the task starts.
    private var handlerMethod: GRPCRouter.Method?
    private var handlerContext: GRPCServerContext?
    private var deadlineTimer: EventLoop.TimerID?
    private var writableWaiters: [CheckedContinuation<Void, any Error>] = []
    /// Received DATA bytes not yet reported to the stream as consumed (receive flow control).
    private var withheldBytes = 0

    init(stream: HTTP2Stream, loop: EventLoop, router: GRPCRouter, limits: GRPCServer.Limits, plainHTTP: PlainHTTPService?) {
        self.stream = stream
        self.loop = loop
        self.router = router
        self.limits = limits
        self.plainHTTP = plainHTTP
        self.deframer = GRPCMessageDeframer(maxMessageBytes: limits.maxReceiveMessageBytes)
        self.framer = GRPCMessageFramer(maxMessageBytes: limits.maxSendMessageBytes)
        // Without this a client could stream requests faster than the handler reads them
        // and the server would queue them all: the window now reopens only as the handler
        // drains its queue (see `streamReceivedData`).
        stream.reportsConsumedData = true
        requests.call = self
    }

    // MARK: HTTP2StreamDelegate

    func streamReceivedHeaders(_ stream: HTTP2Stream, _ headers: [HTTP2Header], endStream: Bool) {
        guard case .awaitingHead = state else {
            // Client trailers are not part of gRPC; only their END_STREAM matters.
            if endStream { endOfRequests() }
            return
        }
        let head: GRPCRequestHead
        var registered: GRPCRouter.Method?
        do {
            head = try GRPCRequestHead(validatingFields: headers.lazy.map { (name: $0.name, value: $0.value) }) { text in
                let entry = router.registeredMethod(text)
                registered = entry?.method
                return entry?.path
            }
        } catch {
            if error.httpStatus == 200 {
                var status = error.status
                if error.code == .unimplemented, error.message.contains("encoding") {
                    status.message = error.message
                }
                return finish(status, extraHeaders: [HTTP2Header("grpc-accept-encoding", "identity")])
            }
            state = .finished
            // Not POST or not a gRPC content-type: a plain HTTP request, if the server answers those.
            if let plainHTTP, !PlainHTTPService.isGRPCRequest(headers) {
                return stream.answer(with: plainHTTP.handler, configuration: plainHTTP.configuration,
                                     headers: headers, endStream: endStream)
            }
            return stream.sendHeadersOnly([HTTP2Header(":status", String(error.httpStatus)),
                                           HTTP2Header("content-type", "text/plain")])
        }
        guard let method = registered else {
            return finish(GRPCStatus(code: .unimplemented, message: "unknown method \(head.path)"))
        }
        var deadline: ContinuousClock.Instant?
        if let timeout = head.timeout {
            let duration = timeout.duration
            deadline = .now + duration
            deadlineTimer = loop.schedule(after: duration) {
                self.deadlineTimer = nil
                self.end(GRPCStatus(code: .deadlineExceeded, message: "deadline of \(timeout) exceeded"))
            }
        }
        let connection = stream.connection
        let context = GRPCServerContext(head: head, peer: connection?.peerDescription ?? "unknown",
                                        peerIdentity: connection?.peerIdentity, deadline: deadline)
        state = .running
        handlerMethod = method
        handlerContext = context
        if endStream { requests.finish() }
        // The task captures only `self` (method and context wait in properties): a closure
        // with one object for its context needs no allocation of its own.
        task = Task(executorPreference: loop) { [self] in
            let status: GRPCStatus
            do {
                if let method = handlerMethod, let context = handlerContext {
                    handlerMethod = nil
                    handlerContext = nil
                    try await method.run(self, context)
                }
                status = .ok
            } catch let error as GRPCStatus {
                status = error
            } catch is CancellationError {
                status = GRPCStatus(code: .cancelled, message: "call cancelled")
            } catch {
                status = GRPCStatus(code: .unknown, message: String(describing: error))
            }
            self.finish(status)
        }
    }

    func streamReceivedData(_ stream: HTTP2Stream, _ bytes: UnsafeRawBufferPointer, endStream: Bool) {
        guard case .running = state else {
            stream.consumed(bytes.count)   // nobody reads these: keep the client's window open
            return
        }
        if bytes.count > 0 {
            do {
                try deframer.append(bytes) { requests.push($0) }
            } catch {
                stream.consumed(bytes.count)
                return end(error)
            }
            // While the handler keeps up (its queue is empty), bytes count as consumed at
            // once; that includes a message still being received, which may be larger than
            // the stream window and must be able to complete. Once messages queue up unread,
            // further bytes are withheld until the handler drains the queue, so the client
            // gets at most one stream window ahead of it.
            if requests.hasBacklog {
                withheldBytes += bytes.count
            } else {
                stream.consumed(bytes.count)
            }
        }
        if endStream { endOfRequests() }
    }

    fileprivate func releaseWithheldBytes() {
        guard withheldBytes > 0 else { return }
        stream.consumed(withheldBytes)
        withheldBytes = 0
    }

    func streamClosed(_ stream: HTTP2Stream, reason: HTTP2StreamCloseReason) {
        let wasRunning: Bool
        if case .running = state { wasRunning = true } else { wasRunning = false }
        state = .finished
        if let deadlineTimer { loop.cancelTimer(deadlineTimer) }
        deadlineTimer = nil
        let task = self.task
        self.task = nil
        // The usual close comes after the status went out (`finish`, or `end`, which
        // already failed the handler's reads and writes): nobody is left to tell.
        guard wasRunning else { return }
        let status = GRPCStatus(code: .cancelled, message: "stream closed: \(reason)")
        requests.fail(status)
        resumeWritableWaiters(throwing: status)
        task?.cancel()
    }

    func streamWritable(_ stream: HTTP2Stream) {
        resumeWritableWaiters(throwing: nil)
    }

    private func endOfRequests() {
        guard case .running = state else { return }
        if deframer.hasPartialMessage {
            return end(GRPCStatus(code: .internal, message: "request stream ended inside a message"))
        }
        requests.finish()
    }

    // MARK: Responses (loop only; called by the handler task)

    /// Frames and queues one response message (from `encode`), sending response headers first.
    func send(_ message: consuming [UInt8]) throws(GRPCStatus) {
        loop.preconditionInEventLoop()
        guard case .running = state else { throw GRPCStatus(code: .cancelled, message: "call already finished") }
        if !responseHeadersSent {
            responseHeadersSent = true
            stream.sendResponseHeaders(Self.responseHeaders)
        }
        stream.sendData(try framer.frame(prefixed: message))
    }

    /// Frames `messages` (each already encoded) into one buffer and queues it at once, so
    /// a batch costs one DATA chunk, not one per message.
    func send(encoded messages: [[UInt8]]) throws(GRPCStatus) {
        loop.preconditionInEventLoop()
        guard case .running = state else { throw GRPCStatus(code: .cancelled, message: "call already finished") }
        guard !messages.isEmpty else { return }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(messages.reduce(0) { $0 + $1.count + GRPCMessageFramer.prefixLength })
        for message in messages { try framer.frame(message, into: &buffer) }
        if !responseHeadersSent {
            responseHeadersSent = true
            stream.sendResponseHeaders(Self.responseHeaders)
        }
        stream.sendData(buffer)
    }

    private static let okTrailers = HTTP2PreparedHeaders(GRPCStatus.ok.wireTrailers.map { HTTP2Header($0.name, $0.value) })
    private static let responseHeaders = HTTP2PreparedHeaders([
        HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc"),
        HTTP2Header("grpc-accept-encoding", "identity"),
    ])

    /// Whether more than `GRPCServer.Limits.sendBufferBytes` are queued: checked before
    /// calling `waitUntilWritable`, which as an async call costs an executor check.
    var mustWaitUntilWritable: Bool { stream.bufferedBytes > limits.sendBufferBytes }

    /// Suspends while more than `GRPCServer.Limits.sendBufferBytes` are queued.
    func waitUntilWritable() async throws {
        loop.preconditionInEventLoop()
        guard stream.bufferedBytes > limits.sendBufferBytes else { return }
        try await withCheckedThrowingContinuation { writableWaiters.append($0) }
    }

    private func resumeWritableWaiters(throwing error: GRPCStatus?) {
        let waiters = writableWaiters
        writableWaiters = []
        for waiter in waiters {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }

    /// Ends the call with `status` now (deadline, bad input, `GRPCResponseWriter.end`):
    /// the handler is cancelled, and its waiting reads and writes throw `status`.
    func end(_ status: GRPCStatus) {
        guard case .running = state else { return }
        // The client may still be sending: RST_STREAM(NO_ERROR) after the status
        // tells it to stop, as RFC 9113 8.1 allows once the response is complete.
        finish(status, resetAfter: .noError)
        task?.cancel()
        requests.fail(status)
        resumeWritableWaiters(throwing: status)
    }

    /// Sends the status: as trailers after responses, or Trailers-Only.
    func finish(_ status: GRPCStatus, extraHeaders: [HTTP2Header] = [], resetAfter: HTTP2ErrorCode? = nil) {
        if case .finished = state { return }
        state = .finished
        releaseWithheldBytes()   // queued requests will not be read; let a still-sending client finish
        if let deadlineTimer { loop.cancelTimer(deadlineTimer) }
        deadlineTimer = nil
        if responseHeadersSent && status == .ok {
            return stream.finish(trailers: Self.okTrailers, resetAfter: resetAfter)
        }
        let trailers = status.wireTrailers.map { HTTP2Header($0.name, $0.value) }
        if responseHeadersSent {
            stream.finish(trailers: trailers, resetAfter: resetAfter)
        } else {
            stream.sendHeadersOnly([HTTP2Header(":status", "200"), HTTP2Header("content-type", "application/grpc")]
                                   + extraHeaders + trailers, resetAfter: resetAfter)
        }
    }
}

/// Request messages waiting for the handler. Loop thread only.
final class GRPCRequestBuffer: @unchecked Sendable {
    /// Queued messages, oldest first: `first`, then `more[moreHead...]`; `more` is empty
    /// while `first` is nil. One queued message, the usual case, needs no array.
    private var first: [UInt8]?
    private var more: [[UInt8]] = []
    private var moreHead = 0
    private var ended: GRPCStatus?      // .ok = clean end of stream
    private var waiter: CheckedContinuation<[UInt8]?, any Error>?
    /// Told when the handler takes the last queued message, to reopen the flow-control
    /// window. (A reference, not a callback: a closure would cost an allocation per call.)
    unowned var call: GRPCServerCall?

    /// Whether messages are queued that the handler has not taken yet.
    var hasBacklog: Bool { first != nil }

    func push(_ message: [UInt8]) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: message)
        } else if first == nil {
            first = message
        } else {
            more.append(message)
        }
    }

    func finish() { end(.ok) }

    func fail(_ status: GRPCStatus) { end(status) }

    private func end(_ status: GRPCStatus) {
        guard ended == nil else { return }
        ended = status
        if let waiter {
            self.waiter = nil
            if status.code == .ok { waiter.resume(returning: nil) } else { waiter.resume(throwing: status) }
        }
    }

    /// The next message, nil at a clean end; throws the call's status if it failed.
    func next() async throws -> [UInt8]? {
        if let message = nextQueued() { return message }
        if let ended {
            if ended.code == .ok { return nil }
            throw ended
        }
        return try await withCheckedThrowingContinuation { waiter = $0 }
    }

    /// The one message of a request that has cleanly ended with exactly one, or nil
    /// (nothing is taken then).
    func singleIfComplete() -> [UInt8]? {
        guard ended?.code == .ok, first != nil, more.isEmpty else { return nil }
        return nextQueued()
    }

    /// A message already received and not yet taken, or nil.
    func nextQueued() -> [UInt8]? {
        guard let message = first else { return nil }
        if moreHead < more.count {
            first = more[moreHead]
            moreHead += 1
            if moreHead == more.count {
                more.removeAll(keepingCapacity: false)
                moreHead = 0
            }
        } else {
            first = nil
            call?.releaseWithheldBytes()
        }
        return message
    }
}
