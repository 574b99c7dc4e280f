import H2
public import TetherWire

/// One client call of any shape: send requests, then `finishSending()`; read
/// responses with `next()` until it returns nil (status OK) or throws the
/// call's status. `cancel()` sends RST_STREAM(CANCEL); so does cancelling a task
/// that waits in `send` or `next`, which then throws CANCELLED.
///
/// Methods may be called from any task; they run on the client's loop, hopping
/// there only when the caller is elsewhere. A call keeps a loop its client started
/// running; if it runs on a loop that was stopped anyway (one given to the client and
/// stopped by its owner), `send` and `next` throw UNAVAILABLE and the others return at
/// once, instead of waiting for a loop that no longer runs.
public final class GRPCClientCall<Request: WireMessage, Response: WireMessage>: Sendable {
    let core: GRPCClientCallCore
    private let loop: EventLoop
    /// Keeps a loop that the client started running while this call exists.
    private let loopLease: GRPCLoopLease?

    init(loop: EventLoop, loopLease: GRPCLoopLease?, maxReceiveMessageBytes: Int, maxSendMessageBytes: Int) {
        self.loop = loop
        self.loopLease = loopLease
        core = GRPCClientCallCore(loop: loop, maxReceiveMessageBytes: maxReceiveMessageBytes,
                                  maxSendMessageBytes: maxSendMessageBytes)
    }

    /// Sends one request message; waits while the stream's send buffer is full.
    /// - Throws: the call's status if it has already ended.
    public func send(_ message: Request) async throws(GRPCStatus) {
        guard !loop.isStopped else { throw Self.loopStopped }
        let framed = try core.framer.frame(prefixed: encode(message))
        let core = self.core
        // Already on the loop (a caller running there, as a ping-pong loop does): no hop. A
        // task runs on the loop's thread only with the loop as its executor preference, so
        // it also resumes there.
        try await cancellingOnTaskCancel { [loop] () async throws(GRPCStatus) in
            if loop.inEventLoop {
                try core.send(framed: framed)
                return try await core.waitUntilWritable()
            }
            try await withTaskExecutorPreference(loop) { () async throws(GRPCStatus) in
                try core.send(framed: framed)
                try await core.waitUntilWritable()
            }
        }
    }

    /// Half-closes: no more requests.
    public func finishSending() async {
        guard !loop.isStopped else { return }
        let core = self.core
        await withTaskExecutorPreference(loop) { core.finishSending() }
    }

    /// The next response, or nil once the call ended with OK.
    /// - Throws: the call's status when it ends with anything but OK.
    public func next() async throws(GRPCStatus) -> Response? {
        guard !loop.isStopped else { throw Self.loopStopped }
        let core = self.core
        let bytes = try await cancellingOnTaskCancel { [loop] () async throws(GRPCStatus) in
            loop.inEventLoop
                ? try await core.next()
                : try await withTaskExecutorPreference(loop) { () async throws(GRPCStatus) in try await core.next() }
        }
        guard let bytes else { return nil }
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            let status = GRPCStatus(code: .internal, message: "could not decode \(Response.protoName): \(error)")
            await cancel(status)
            throw status
        }
    }

    /// Cancels the call: RST_STREAM(CANCEL) to the server, CANCELLED locally.
    public func cancel() async {
        await cancel(GRPCStatus(code: .cancelled, message: "cancelled by the client"))
    }

    private func cancel(_ status: GRPCStatus) async {
        guard !loop.isStopped else { return }
        let core = self.core
        await withTaskExecutorPreference(loop) { core.cancel(status) }
    }

    /// The call's final status, once it has ended (nil before); UNAVAILABLE once the
    /// client is closed.
    public func status() async -> GRPCStatus? {
        guard !loop.isStopped else { return Self.loopStopped }
        let core = self.core
        return await withTaskExecutorPreference(loop) { core.finalStatus }
    }

    /// Metadata from the response headers (empty until they arrive, and once the client is
    /// closed).
    public func initialMetadata() async -> GRPCMetadata {
        guard !loop.isStopped else { return GRPCMetadata() }
        let core = self.core
        return await withTaskExecutorPreference(loop) { core.initialMetadata }
    }

    /// Response bytes received and not yet taken by `next()`, for tests of receive flow control.
    func bufferedResponseBytes() async -> Int {
        let core = self.core
        return await withTaskExecutorPreference(loop) { core.bufferedResponseBytes }
    }

    /// Runs `wait` (one of the core's waits); cancelling the calling task meanwhile cancels
    /// the call, which ends the wait.
    private func cancellingOnTaskCancel<T: Sendable>(_ wait: () async throws(GRPCStatus) -> T) async throws(GRPCStatus) -> T {
        let core = self.core
        let result = await withTaskCancellationHandler {
            do throws(GRPCStatus) {
                return Result<T, GRPCStatus>.success(try await wait())
            } catch {
                return .failure(error)
            }
        } onCancel: { [loop] in
            loop.execute { core.cancel(GRPCStatus(code: .cancelled, message: "the calling task was cancelled")) }
        }
        return try result.get()
    }

    private static var loopStopped: GRPCStatus { GRPCStatus(code: .unavailable, message: "the call's event loop was stopped") }
}

/// The byte-level state of one client call. Loop thread only.
final class GRPCClientCallCore: HTTP2StreamDelegate, @unchecked Sendable {
    private let loop: EventLoop
    private var stream: HTTP2Stream?
    private var deframer: GRPCMessageDeframer
    /// A `let` of a Sendable value: read from any thread.
    let framer: GRPCMessageFramer
    private var unsent: [[UInt8]] = []       // sends before the stream opened
    private var sendingFinished = false
    private var responses: [[UInt8]] = []
    private var responseHead = 0
    private var queuedResponseBytes = 0
    /// Received DATA bytes not yet reported to the stream as consumed (receive flow control).
    private var withheldBytes = 0
    private var waiter: CheckedContinuation<[UInt8]?, any Error>?
    private var writableWaiters: [CheckedContinuation<Void, any Error>] = []
    private(set) var finalStatus: GRPCStatus?
    private(set) var initialMetadata = GRPCMetadata()
    private var receivedHeaders = false
    private var deadlineTimer: EventLoop.TimerID?
    static let sendBufferBytes = 1 << 20

    init(loop: EventLoop, maxReceiveMessageBytes: Int, maxSendMessageBytes: Int) {
        self.loop = loop
        deframer = GRPCMessageDeframer(maxMessageBytes: maxReceiveMessageBytes)
        framer = GRPCMessageFramer(maxMessageBytes: maxSendMessageBytes)
    }

    func open(on connection: HTTP2Connection, headers: [HTTP2Header], timeout: Duration?) throws {
        guard finalStatus == nil else { return }
        let stream = try connection.openStream(headers: headers, delegate: self)
        // Without this a server could stream responses faster than the caller reads them and
        // the client would queue them all: the window reopens only as `next()` drains the
        // queue (see `streamReceivedData`).
        stream.reportsConsumedData = true
        self.stream = stream
        for message in unsent { stream.sendData(message) }
        unsent = []
        if sendingFinished { stream.finish() }
        if let timeout {
            deadlineTimer = loop.schedule(after: timeout) { [weak self] in
                self?.deadlineTimer = nil
                self?.cancel(GRPCStatus(code: .deadlineExceeded, message: "deadline of \(timeout) exceeded"))
            }
        }
    }

    /// Queues one message framed by `framer`.
    func send(framed: [UInt8]) throws(GRPCStatus) {
        if let finalStatus { throw finalStatus.code == .ok ? GRPCStatus(code: .internal, message: "call already ended") : finalStatus }
        guard !sendingFinished else { throw GRPCStatus(code: .internal, message: "send after finishSending") }
        if let stream { stream.sendData(framed) } else { unsent.append(framed) }
    }

    func waitUntilWritable() async throws(GRPCStatus) {
        guard let stream, stream.bufferedBytes > Self.sendBufferBytes, finalStatus == nil else { return }
        do {
            try await withCheckedThrowingContinuation { writableWaiters.append($0) }
        } catch {
            throw (error as? GRPCStatus) ?? GRPCStatus(code: .cancelled, message: "\(error)")
        }
    }

    func finishSending() {
        guard !sendingFinished else { return }
        sendingFinished = true
        stream?.finish()
    }

    func next() async throws(GRPCStatus) -> [UInt8]? {
        loop.preconditionInEventLoop()
        if responseHead < responses.count {
            let message = responses[responseHead]
            responseHead += 1
            queuedResponseBytes -= message.count
            if responseHead == responses.count {
                responses.removeAll(keepingCapacity: false)
                responseHead = 0
                releaseWithheldBytes()
            }
            return message
        }
        if let finalStatus {
            if finalStatus.code == .ok { return nil }
            throw finalStatus
        }
        do {
            return try await withCheckedThrowingContinuation { waiter = $0 }
        } catch {
            throw (error as? GRPCStatus) ?? GRPCStatus(code: .cancelled, message: "\(error)")
        }
    }

    /// Ends the call locally with `status` and resets the stream.
    func cancel(_ status: GRPCStatus) {
        guard finalStatus == nil else { return }
        stream?.reset(.cancel)
        end(status)
    }

    /// Fails a call that never got a stream.
    func fail(_ status: GRPCStatus) {
        end(status)
    }

    private func end(_ status: GRPCStatus) {
        guard finalStatus == nil else { return }
        finalStatus = status
        if let deadlineTimer { loop.cancelTimer(deadlineTimer) }
        deadlineTimer = nil
        if let waiter {
            self.waiter = nil
            if status.code == .ok { waiter.resume(returning: nil) } else { waiter.resume(throwing: status) }
        }
        let writable = writableWaiters
        writableWaiters = []
        for w in writable { w.resume(throwing: status) }
    }

    private func deliver(_ message: [UInt8]) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: message)
        } else {
            responses.append(message)
            queuedResponseBytes += message.count
        }
    }

    private func releaseWithheldBytes() {
        guard withheldBytes > 0 else { return }
        stream?.consumed(withheldBytes)
        withheldBytes = 0
    }

    /// Queued response messages and a partial one, in bytes.
    var bufferedResponseBytes: Int { queuedResponseBytes + deframer.bufferedByteCount }

    // MARK: HTTP2StreamDelegate

    func streamReceivedHeaders(_ stream: HTTP2Stream, _ headers: [HTTP2Header], endStream: Bool) {
        if !receivedHeaders {
            receivedHeaders = true
            let httpStatus = headers[":status"].flatMap { Int($0) } ?? 0
            if httpStatus != 200 {
                let code = GRPCStatusCode(httpStatus: httpStatus)
                return cancel(GRPCStatus(code: code, message: "HTTP status \(httpStatus) from server"))
            }
            let contentType = headers["content-type"] ?? ""
            guard contentType.hasPrefix("application/grpc") else {
                return cancel(GRPCStatus(code: .unknown, message: "server sent content-type '\(contentType)'"))
            }
            initialMetadata = GRPCMetadata(wireHeaders: headers.map { ($0.name, $0.value) })
            if !endStream { return }
        }
        // Trailers (or Trailers-Only).
        guard endStream else { return }
        end(status(from: headers))
    }

    private func status(from trailers: [HTTP2Header]) -> GRPCStatus {
        let status = GRPCStatus(wireTrailers: trailers.map { ($0.name, $0.value) })
        if status.code == .ok && deframer.hasPartialMessage {
            return GRPCStatus(code: .internal, message: "response stream ended inside a message")
        }
        return status
    }

    func streamReceivedData(_ stream: HTTP2Stream, _ bytes: UnsafeRawBufferPointer, endStream: Bool) {
        guard finalStatus == nil else { return }
        if bytes.count > 0 {
            do {
                try deframer.append(bytes) { deliver($0) }
            } catch {
                return cancel(error)
            }
            // As on the server's request side (GRPCServerCall): while the caller keeps up,
            // bytes count as consumed at once, a partial message included (it may be larger
            // than the window and must be able to complete). Once responses queue up unread,
            // further bytes are withheld until `next()` drains the queue, so the server gets
            // at most one stream window ahead of the caller.
            if responseHead < responses.count {
                withheldBytes += bytes.count
            } else {
                stream.consumed(bytes.count)
            }
        }
        if endStream {
            end(GRPCStatus(code: .internal, message: "server ended the stream without trailers"))
        }
    }

    func streamClosed(_ stream: HTTP2Stream, reason: HTTP2StreamCloseReason) {
        self.stream = nil
        switch reason {
        case .finished:
            end(GRPCStatus(code: .internal, message: "stream closed without a status"))
        case .reset(let code):
            let grpcCode: GRPCStatusCode = code == .refusedStream ? .unavailable : code == .cancel ? .cancelled : .internal
            end(GRPCStatus(code: grpcCode, message: "stream reset by the server: \(code)"))
        case .connectionClosed(let why):
            end(GRPCStatus(code: .unavailable, message: "connection closed: \(why)"))
        }
    }

    func streamWritable(_ stream: HTTP2Stream) {
        let writable = writableWaiters
        writableWaiters = []
        for w in writable { w.resume() }
    }
}
