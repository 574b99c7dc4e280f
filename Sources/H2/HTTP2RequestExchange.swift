extension HTTP2Stream {
    /// Server: answers this stream as a plain HTTP request with `handler`, from its request
    /// header block `headers` (already received by the caller, which owned the stream until
    /// now; `endStream` says whether the request ended with it). The stream's events go to
    /// the exchange from here on: body up to `configuration.maxBodyBytes` (413 past it), then
    /// the handler's task on this loop, then its response. Loop thread only.
    public func answer(with handler: @escaping HTTPHandler, configuration: HTTPConfiguration,
                       headers: [HTTP2Header], endStream: Bool) {
        let exchange = HTTP2RequestExchange(stream: self, handler: handler, configuration: configuration)
        delegate = exchange
        reportsConsumedData = false   // the body is taken as it arrives, up to the limit
        exchange.streamReceivedHeaders(self, headers, endStream: endStream)
    }
}

/// One plain HTTP request on an HTTP/2 stream and its response (see `HTTP2Stream.answer`).
///
/// Threading: the stream's loop, where the handler's task runs too (its executor
/// preference); `@unchecked Sendable` rests on that.
final class HTTP2RequestExchange: HTTP2StreamDelegate, HTTPBodySink, @unchecked Sendable {
    private enum State {
        case receiving      // request headers and body arriving
        case handling       // the handler's task runs; its response not queued yet
        case streaming      // a streamed body goes out
        case done           // response queued, or the stream is gone
    }

    private let stream: HTTP2Stream
    private let loop: EventLoop?
    private let handler: HTTPHandler
    private let configuration: HTTPConfiguration
    private var state = State.receiving
    private var request: HTTPRequest?
    private var body: [UInt8] = []
    private var task: Task<Void, Never>?
    private var writeWaiters: [CheckedContinuation<Bool, Never>] = []

    init(stream: HTTP2Stream, handler: @escaping HTTPHandler, configuration: HTTPConfiguration) {
        self.stream = stream
        self.loop = stream.connection?.loop
        self.handler = handler
        self.configuration = configuration
    }

    func streamReceivedHeaders(_ stream: HTTP2Stream, _ headers: [HTTP2Header], endStream: Bool) {
        guard case .receiving = state else { return }
        if request == nil {
            var method: String?, target: String?, fields: [HTTPHeader] = []
            for header in headers {
                switch header.name {
                case ":method": method = method ?? header.value
                case ":path": target = target ?? header.value
                case ":authority": fields.append(HTTPHeader("host", header.value))
                case let name where name.hasPrefix(":"): continue
                default: fields.append(header)
                }
            }
            guard let method, let target else { return refuse(400, "malformed request: no :method or :path") }
            if let length = fields["content-length"].flatMap({ Int($0) }), length > configuration.maxBodyBytes {
                return refuse(413, "request body exceeds \(configuration.maxBodyBytes) bytes")
            }
            let connection = stream.connection
            request = HTTPRequest(method: method, target: target, headers: fields, version: .http2,
                                  isSecure: connection?.isSecure ?? false, peer: connection?.peerAddress,
                                  peerIdentity: connection?.peerIdentity)
        }
        if endStream { dispatch() }   // a second block is trailers: only its END_STREAM matters
    }

    func streamReceivedData(_ stream: HTTP2Stream, _ bytes: UnsafeRawBufferPointer, endStream: Bool) {
        guard case .receiving = state else { return }
        guard body.count + bytes.count <= configuration.maxBodyBytes else {
            return refuse(413, "request body exceeds \(configuration.maxBodyBytes) bytes")
        }
        body.append(contentsOf: bytes)
        if endStream { dispatch() }
    }

    func streamClosed(_ stream: HTTP2Stream, reason: HTTP2StreamCloseReason) {
        state = .done
        task?.cancel()
        task = nil
        resumeWriters(false)
    }

    func streamWritable(_ stream: HTTP2Stream) {
        resumeWriters(true)
    }

    private func dispatch() {
        guard var request, let loop else { return }
        self.request = nil
        request.body = body
        body = []
        state = .handling
        task = Task(executorPreference: loop) { [self, handler] in
            let response = await handler(request)
            await self.respond(response, isHead: request.method == "HEAD")
        }
    }

    private func respond(_ response: HTTPResponse, isHead: Bool) async {
        guard case .handling = state else { return }
        var fields = [HTTP2Header(":status", String(response.status))]
        for header in response.headers where !HTTPResponse.isConnectionOwned(header.name) && HTTPResponse.isSendable(header) {
            fields.append(HTTP2Header(header.name.lowercased(), header.value))
        }
        switch response.body {
        case .bytes(let body):
            fields.append(HTTP2Header("content-length", String(body.count)))
            state = .done
            task = nil
            if isHead || body.isEmpty { return stream.sendHeadersOnly(fields) }
            stream.sendResponseHeaders(fields)
            stream.sendData(body)
            stream.finish()
        case .stream(let produce):
            if isHead {
                state = .done
                task = nil
                return stream.sendHeadersOnly(fields)
            }
            state = .streaming
            stream.sendResponseHeaders(fields)
            do {
                try await produce(HTTPBodyWriter(sink: self))
            } catch {
                if case .streaming = state { stream.reset(.internalError) }
                state = .done
                return
            }
            guard case .streaming = state else { return }
            state = .done
            task = nil
            stream.finish()
        }
    }

    /// Answers without the handler and ends the stream (RST_STREAM NO_ERROR after, so a
    /// client still sending its body stops).
    private func refuse(_ status: Int, _ message: String) {
        state = .done
        request = nil
        body = []
        stream.sendResponseHeaders([HTTP2Header(":status", String(status)),
                                    HTTP2Header("content-type", "text/plain; charset=utf-8")])
        stream.sendData(Array((message + "\n").utf8))
        stream.finish(resetAfter: .noError)
    }

    // MARK: HTTPBodySink

    func writeBody(_ bytes: [UInt8]) async throws(HTTPClientGoneError) {
        guard let loop else { throw HTTPClientGoneError(reason: "the HTTP/2 stream closed") }
        let written: Bool
        if loop.inEventLoop {
            written = await send(bytes)
        } else {
            written = await withTaskExecutorPreference(loop) { await self.send(bytes) }
        }
        if !written { throw HTTPClientGoneError(reason: "the HTTP/2 stream closed") }
    }

    private func send(_ bytes: [UInt8]) async -> Bool {
        guard case .streaming = state else { return false }
        stream.sendData(bytes)
        guard stream.bufferedBytes > configuration.maxPendingOutputBytes else { return true }
        return await withCheckedContinuation { writeWaiters.append($0) }
    }

    private func resumeWriters(_ ok: Bool) {
        let waiters = writeWaiters
        writeWaiters = []
        for waiter in waiters { waiter.resume(returning: ok) }
    }
}
