#if canImport(Glibc)
internal import Glibc
#endif

/// One server-side HTTP/1.1 connection (plaintext or TLS) on the event loop that accepted
/// it, answering requests with an `HTTPHandler`.
///
/// Keep-alive, `Connection: close`, HTTP/1.0, HEAD, chunked request bodies (parsed by
/// `HTTP1RequestParser`), `Expect: 100-continue`, whole responses with `content-length`
/// and streamed ones (chunked). Pipelined requests are answered in order, one at a time:
/// the parser stops after each request and the bytes behind it wait in `unparsed` (at most
/// `inputLimit`; past that we stop reading) until its response is queued.
///
/// A request that cannot be read is answered (400, 413, 431, 501, 505) and the connection
/// closes; so does one that is too slow (`HTTPConfiguration`'s timers) or idle. Closing after
/// a response shuts our write side and reads what the client still sends for a moment
/// (lingering close), so a client still sending a body reads the error instead of a reset.
///
/// Threading: everything on `loop`; the handler's task runs there too (its executor
/// preference), which is what `@unchecked Sendable` rests on.
final class HTTP1Connection: EventLoopSelectable, EventLoopFlushable, @unchecked Sendable {
    let loop: EventLoop
    let peerAddress: SocketAddress?
    /// Called once when the connection has closed, with why.
    var onClose: ((String) -> Void)?

    private enum State {
        case reading        // between requests, or reading one
        case responding     // a request's handler runs or its streamed body goes out
        case closing        // the last response is queued: write it, then linger
        case lingering      // write side shut; reading to EOF (bounded) before closing
        case closed
    }

    private var state = State.reading
    private var fd: Int32
    private let tls: TLSSession?
    private let peerIdentity: TLSPeerIdentity?
    private var registration: EventLoop.RegistrationID?
    private let configuration: HTTPConfiguration
    private let gracefulShutdownTimeout: Duration
    private let handler: HTTPHandler
    private let counters: HTTPServerCounters?
    private let parser: HTTP1RequestParser
    /// Received bytes not yet parsed: what follows a request that is being answered.
    private var unparsed: [UInt8] = []
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var tlsReadWantsWrite = false
    /// The client closed its side (EOF): answer what was received, then close.
    private var inputClosed = false
    private var shuttingDown = false
    private var timer: EventLoop.TimerID?
    private var shutdownTimer: EventLoop.TimerID?
    private var lingeredBytes = 0

    // The request being answered (state .responding).
    private var exchangeID: UInt64 = 0
    private var task: Task<Void, Never>?
    private var closeAfterResponse = false
    private var respondingToHead = false
    /// A streamed body is going out, chunked (HTTP/1.1) or until the connection closes (HTTP/1.0).
    private var streamingChunked: Bool?
    private var writeWaiters: [CheckedContinuation<Bool, Never>] = []

    /// Bytes kept behind a request being answered before we stop reading.
    private var inputLimit: Int { configuration.maxHeadBytes + (64 << 10) }
    private var backlog: Int { output.count - outputOffset }

    init(loop: EventLoop, fd: Int32, tls: TLSSession?, peer: SocketAddress?, configuration: HTTPConfiguration,
         gracefulShutdownTimeout: Duration, handler: @escaping HTTPHandler, counters: HTTPServerCounters? = nil) {
        self.counters = counters
        self.loop = loop
        self.fd = fd
        self.tls = tls
        self.peerIdentity = tls?.peerIdentity
        self.peerAddress = peer
        self.configuration = configuration
        self.gracefulShutdownTimeout = gracefulShutdownTimeout
        self.handler = handler
        self.parser = HTTP1RequestParser(limits: configuration)
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Registers with the loop and parses `initialBytes` (what protocol detection read
    /// off the socket). Loop thread only.
    func start(initialBytes: [UInt8]) throws(SystemError) {
        loop.preconditionInEventLoop()
        registration = try loop.register(fd, handler: self)
        armTimer(.head)   // a new connection owes its first request head within headerTimeout
        if !initialBytes.isEmpty {
            initialBytes.withUnsafeBytes { received($0) }
            loop.scheduleFlush(self)
        }
    }

    // MARK: Timers

    private enum Deadline {
        case idle, head, body

        func duration(_ configuration: HTTPConfiguration) -> Duration {
            switch self {
            case .idle: configuration.idleTimeout
            case .head: configuration.headerTimeout
            case .body: configuration.bodyTimeout
            }
        }
    }
    private var deadline: Deadline?

    private func armTimer(_ kind: Deadline?) {
        if let timer { loop.cancelTimer(timer) }
        timer = nil
        deadline = kind
        guard let kind else { return }
        let duration = kind.duration(configuration)
        timer = loop.schedule(after: duration) { [unowned self] in
            self.timer = nil
            switch kind {
            case .idle: self.terminate("idle for \(duration)")
            case .head: self.terminate("request head not complete within \(duration)")
            case .body: self.terminate("request body not complete within \(duration)")
            }
        }
    }

    // MARK: Reading

    func eventLoopReadable() {
        switch state {
        case .reading, .responding: readAvailable()
        case .lingering: discardInput()
        case .closing, .closed: return
        }
    }

    func eventLoopWritable() {
        if tlsReadWantsWrite {
            tlsReadWantsWrite = false
            readAvailable()
        }
        eventLoopFlush()
    }

    func eventLoopHangup() {
        if case .lingering = state { return terminate("closed") }
        terminate("connection reset by the client")
    }

    private enum ReadOutcome {
        case bytes(Int), wouldBlock, wantWrite, endOfInput
        case failed(String)
    }

    private func readSome(into buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        if let tls {
            do {
                switch try tls.read(into: buffer) {
                case .bytes(let count): return .bytes(count)
                case .wantRead: return .wouldBlock
                case .wantWrite: return .wantWrite
                case .closed: return .endOfInput
                }
            } catch {
                return .failed("TLS read failed: \(error)")
            }
        }
        while true {
            let rc = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if rc > 0 { return .bytes(rc) }
            if rc == 0 { return .endOfInput }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            return .failed("read failed: \(SystemError("read", errno: errno))")
        }
    }

    private func readAvailable() {
        reads: for _ in 0..<8 where wantsRead {
            switch readSome(into: loop.readBuffer) {
            case .bytes(let n):
                counters?.didReceive(n)
                received(UnsafeRawBufferPointer(rebasing: loop.readBuffer[0..<n]))
                // A short plaintext read drained the socket (see HTTP2Connection.readAvailable).
                if tls == nil && n < loop.readBuffer.count { break reads }
            case .wouldBlock:
                break reads
            case .wantWrite:
                tlsReadWantsWrite = true
                break reads
            case .endOfInput:
                inputEnded()
                break reads
            case .failed(let reason):
                return terminate(reason)
            }
        }
        if case .closed = state { return }
        updateInterest()
        loop.scheduleFlush(self)
    }

    /// Bytes from the client: parsed now, or kept while a request is being answered.
    private func received(_ bytes: UnsafeRawBufferPointer) {
        switch state {
        case .reading where unparsed.isEmpty: parse(bytes)
        case .reading, .responding: unparsed.append(contentsOf: bytes)
        case .closing, .lingering, .closed: return
        }
    }

    private func parse(_ bytes: UnsafeRawBufferPointer) {
        let heads = parser.headsCompleted
        let progress = parser.parse(bytes)
        if parser.headsCompleted != heads {
            armTimer(.body)
            if parser.expectsContinue {
                parser.expectsContinue = false
                appendOutput(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            }
        } else if parser.isInsideRequest, deadline == .idle {
            armTimer(.head)
        }
        switch progress {
        case .needMore:
            return
        case .request(let request, let consumed):
            if consumed < bytes.count { unparsed = Array(bytes[consumed...]) }
            dispatch(request)
        case .failed(let error):
            refuse(error.status, error.message)
        }
    }

    private func inputEnded() {
        inputClosed = true
        switch state {
        case .reading:
            if parser.isInsideRequest {
                terminate("client closed the connection inside a request")
            } else if backlog == 0 {
                terminate("client closed the connection")
            } else {
                state = .closing
            }
        case .responding:
            // A browser leaving a streamed response (server-sent events) closes like this;
            // a client that only half-closed after its request still gets a whole answer.
            if streamingChunked != nil { terminate("client went away") }
        case .lingering:
            terminate("closed")
        case .closing, .closed:
            return
        }
    }

    private var wantsRead: Bool {
        switch state {
        case .reading, .responding:
            !inputClosed && unparsed.count < inputLimit && backlog <= configuration.maxPendingOutputBytes
        case .lingering: true
        case .closing, .closed: false
        }
    }

    // MARK: Requests

    private func dispatch(_ parsed: HTTP1ParsedRequest) {
        counters?.requestRead()
        state = .responding
        armTimer(nil)
        exchangeID &+= 1
        closeAfterResponse = !parsed.keepAlive || parsed.upgrade || shuttingDown
        respondingToHead = parsed.method == "HEAD"
        if parsed.version == .http1_1 && parsed.headers["host"] == nil {
            return refuse(400, "malformed request: HTTP/1.1 requires a Host header field")
        }
        let request = HTTPRequest(method: parsed.method, target: parsed.target, headers: parsed.headers, body: parsed.body,
                                  version: parsed.version, isSecure: tls != nil, peer: peerAddress, peerIdentity: peerIdentity)
        let id = exchangeID
        let http10 = parsed.version == .http1_0
        task = Task(executorPreference: loop) { [self, handler] in
            let response = await handler(request)
            await self.respond(response, exchange: id, http10: http10)
        }
    }

    /// Queues `response` for exchange `id` (dropped if that exchange is over); a streamed
    /// body is produced here, in the handler's task.
    private func respond(_ response: HTTPResponse, exchange id: UInt64, http10: Bool) async {
        guard isCurrent(id) else { return }
        switch response.body {
        case .bytes(let body):
            appendOutput(head(response.status, response.headers, framing: .length(body.count)))
            if !respondingToHead { appendOutput(body) }
        case .stream(let produce):
            let chunked = !http10
            if !chunked { closeAfterResponse = true }   // the body ends where the connection does
            appendOutput(head(response.status, response.headers, framing: chunked ? .chunked : .untilClose))
            if !respondingToHead {
                streamingChunked = chunked
                do {
                    try await produce(HTTPBodyWriter(sink: HTTP1BodyStream(connection: self, exchange: id)))
                } catch {
                    if isCurrent(id) { terminate("handler failed its streamed body: \(error)") }
                    return
                }
                guard isCurrent(id) else { return }
                streamingChunked = nil
                if chunked { appendOutput(Array("0\r\n\r\n".utf8)) }
            }
        }
        finishExchange()
    }

    private func isCurrent(_ id: UInt64) -> Bool {
        guard case .responding = state else { return false }
        return exchangeID == id
    }

    /// The response is queued: close after it, or read the next request.
    private func finishExchange() {
        task = nil
        streamingChunked = nil
        if closeAfterResponse {
            state = .closing
        } else {
            state = .reading
            armTimer(.idle)
            if !unparsed.isEmpty && backlog <= configuration.maxPendingOutputBytes { parseUnparsed() }
            if case .reading = state, inputClosed, !parser.isInsideRequest { state = .closing }
        }
        updateInterest()
        loop.scheduleFlush(self)
    }

    private func parseUnparsed() {
        let input = unparsed
        unparsed = []
        input.withUnsafeBytes { parse($0) }
    }

    /// Answers without the handler (a request that could not be read, or a shutdown) and closes.
    private func refuse(_ status: Int, _ message: String) {
        task = nil
        closeAfterResponse = true
        respondingToHead = false
        let body = Array((message + "\n").utf8)
        appendOutput(head(status, [HTTPHeader("content-type", "text/plain; charset=utf-8")], framing: .length(body.count)))
        appendOutput(body)
        unparsed = []
        state = .closing
        armTimer(nil)
        updateInterest()
        loop.scheduleFlush(self)
    }

    private enum Framing { case length(Int), chunked, untilClose }

    private func head(_ status: Int, _ headers: [HTTPHeader], framing: Framing) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(httpReasonPhrase(status))\r\n"
        for header in headers where !HTTPResponse.isConnectionOwned(header.name) && HTTPResponse.isSendable(header) {
            text += "\(header.name): \(header.value)\r\n"
        }
        text += "date: \(HTTPDate.now())\r\n"
        switch framing {
        case .length(let count): text += "content-length: \(count)\r\n"
        case .chunked: text += "transfer-encoding: chunked\r\n"
        case .untilClose: break
        }
        if closeAfterResponse || shuttingDown { text += "connection: close\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    // MARK: Streamed bodies (the handler's task, on the loop)

    fileprivate func writeBody(_ bytes: [UInt8], exchange id: UInt64) async -> Bool {
        guard isCurrent(id), let chunked = streamingChunked else { return false }
        if chunked {
            appendOutput(Array("\(String(bytes.count, radix: 16))\r\n".utf8))
            appendOutput(bytes)
            appendOutput([0x0d, 0x0a])
        } else {
            appendOutput(bytes)
        }
        loop.scheduleFlush(self)
        guard backlog > configuration.maxPendingOutputBytes else { return true }
        return await withCheckedContinuation { writeWaiters.append($0) }
    }

    private func resumeWriters(_ ok: Bool) {
        let waiters = writeWaiters
        writeWaiters = []
        for waiter in waiters { waiter.resume(returning: ok) }
    }

    // MARK: Writing

    private func appendOutput(_ bytes: [UInt8]) {
        if output.isEmpty { output = bytes } else { output.append(contentsOf: bytes) }
        loop.scheduleFlush(self)
    }

    func eventLoopFlush() {
        switch state {
        case .closed, .lingering: return
        case .reading, .responding, .closing: break
        }
        while outputOffset < output.count {
            let n = output.withUnsafeBytes { writeSome(UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }
            guard let n else { break }
            if n < 0 { return }
            outputOffset += n
        }
        if outputOffset == output.count {
            output = []
            outputOffset = 0
        }
        afterFlush()
    }

    /// One write; nil when the socket would block, -1 after a fatal error (the connection
    /// is closed by then).
    private func writeSome(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if let tls {
            do {
                switch try tls.write(bytes) {
                case .wrote(let n):
                    counters?.didSend(n)
                    return n
                case .wantRead, .wantWrite: return nil
                }
            } catch {
                terminate("TLS write failed: \(error)")
                return -1
            }
        }
        while true {
            let rc = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if rc >= 0 {
                counters?.didSend(rc)
                return rc
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            terminate("write failed: \(SystemError("send", errno: errno))")
            return -1
        }
    }

    private func afterFlush() {
        if backlog <= configuration.maxPendingOutputBytes {
            resumeWriters(true)
            if case .reading = state, !unparsed.isEmpty { parseUnparsed() }
        }
        if case .closing = state, backlog == 0 { return beginLingering() }
        updateInterest()
    }

    private func updateInterest() {
        guard let registration else { return }
        loop.setInterest(registration, read: wantsRead, write: backlog > 0 || tlsReadWantsWrite)
    }

    // MARK: Closing

    /// Everything is written: shut our side, then read (and drop) what the client still
    /// sends until it closes too, for at most a second or 1 MiB.
    private func beginLingering() {
        state = .lingering
        tls?.shutdown()
        Glibc.shutdown(fd, Int32(SHUT_WR))
        if let timer { loop.cancelTimer(timer) }
        timer = loop.schedule(after: .seconds(1)) { [unowned self] in
            self.timer = nil
            self.terminate("closed")
        }
        updateInterest()
        discardInput()
    }

    private func discardInput() {
        while true {
            let rc = Glibc.read(fd, loop.readBuffer.baseAddress, loop.readBuffer.count)
            if rc > 0 {
                lingeredBytes += rc
                if lingeredBytes > 1 << 20 { return terminate("closed") }
                continue
            }
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            return terminate("closed")
        }
    }

    /// Graceful: an idle connection closes now; one answering a request closes after the
    /// response (a streamed one: its handler is cancelled, so it ends the stream), within
    /// `gracefulShutdownTimeout`. Loop thread only.
    func shutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        switch state {
        case .reading:
            if !parser.isInsideRequest {
                if backlog == 0 { return terminate("server shutting down") }
                state = .closing
                updateInterest()
                return
            }
        case .responding:
            closeAfterResponse = true
            if streamingChunked != nil { task?.cancel() }
        case .closing, .lingering, .closed:
            return
        }
        shutdownTimer = loop.schedule(after: gracefulShutdownTimeout) { [unowned self] in
            self.shutdownTimer = nil
            self.terminate("graceful shutdown timed out")
        }
    }

    /// Closes now; a handler still running is cancelled and its body writes fail.
    func terminate(_ reason: String) {
        if case .closed = state { return }
        state = .closed
        if let registration { loop.unregister(registration) }
        registration = nil
        if let timer { loop.cancelTimer(timer) }
        timer = nil
        if let shutdownTimer { loop.cancelTimer(shutdownTimer) }
        shutdownTimer = nil
        Glibc.close(fd)
        fd = -1
        output = []
        outputOffset = 0
        unparsed = []
        task?.cancel()
        task = nil
        resumeWriters(false)
        let onClose = self.onClose
        self.onClose = nil
        onClose?(reason)
    }
}

/// The body sink of one exchange: writes go to its connection while that exchange lasts.
private final class HTTP1BodyStream: HTTPBodySink, @unchecked Sendable {
    let connection: HTTP1Connection
    let exchange: UInt64

    init(connection: HTTP1Connection, exchange: UInt64) {
        self.connection = connection
        self.exchange = exchange
    }

    func writeBody(_ bytes: [UInt8]) async throws(HTTPClientGoneError) {
        let connection = self.connection, exchange = self.exchange
        let written: Bool
        if connection.loop.inEventLoop {
            written = await connection.writeBody(bytes, exchange: exchange)
        } else {
            written = await withTaskExecutorPreference(connection.loop) {
                await connection.writeBody(bytes, exchange: exchange)
            }
        }
        if !written { throw HTTPClientGoneError(reason: "the HTTP/1.1 connection closed") }
    }
}

/// The `date` field's value (RFC 9110 IMF-fixdate), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
enum HTTPDate {
    static func now() -> String {
        var seconds = time(nil)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 40)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
