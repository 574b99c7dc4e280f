#if canImport(Glibc)
internal import Glibc
#endif
internal import CNGHTTP2

/// Accepts the streams a peer opens on a server connection.
/// Called on the connection's event loop; one delegate may serve several loops.
public protocol HTTP2ServerDelegate: AnyObject, Sendable {
    /// A peer opened `stream`; return who receives its events.
    func connection(_ connection: HTTP2Connection, didOpen stream: HTTP2Stream) -> any HTTP2StreamDelegate
}

/// One HTTP/2 connection over TCP or TLS, server or client side, driven by an
/// nghttp2 session on one event loop.
///
/// Read path: socket -> the loop's shared read buffer -> `nghttp2_session_mem_recv`
/// -> stream delegates, all on the loop thread. Write path: stream and control
/// frames -> `nghttp2_session_mem_send`, gathered in the loop's write buffer and
/// written once per loop iteration. If the peer stops reading, unsent bytes stay
/// in `pending` (bounded by `maxPendingOutputBytes`) and we stop reading from it
/// until it drains, so a stalled peer cannot make us buffer without bound.
///
/// Threading: everything on `loop`; the class is not Sendable.
public final class HTTP2Connection: EventLoopSelectable, EventLoopFlushable {
    public enum Role: Sendable { case server, client }

    public let loop: EventLoop
    public let role: Role
    public let peerAddress: SocketAddress?
    /// `peerAddress` as text ("unknown" without one), formatted once per connection.
    public private(set) lazy var peerDescription: String = peerAddress?.description ?? "unknown"
    public let configuration: HTTP2Configuration
    /// The verified certificate identity of the peer, after a TLS handshake.
    public private(set) var peerIdentity: TLSPeerIdentity?
    /// Called once when the connection has closed, with why.
    public var onClose: ((String) -> Void)?
    /// Client side: called when the peer sent GOAWAY (no new streams may be opened).
    public var onGoAway: ((HTTP2ErrorCode) -> Void)?
    /// Client side: called once the connection is ready for streams: TCP (and TLS) are
    /// up and the peer's first SETTINGS frame has arrived, so it speaks HTTP/2 and its
    /// limits (max concurrent streams, windows) apply to the first request.
    public var onReady: (() -> Void)?
    var serverDelegate: (any HTTP2ServerDelegate)?
    /// Server side: the server's counters (bytes, streams); nil on a client.
    var counters: HTTPServerCounters?

    private enum State: Equatable {
        case connecting      // client TCP connect in progress (to the proxy, if there is one)
        case tunneling       // client: CONNECT sent to the proxy, its answer not yet complete
        case handshaking     // TLS handshake in progress
        case awaitingSettings  // client: preface sent, the peer's first SETTINGS not yet received
        case open
        case draining        // GOAWAY sent or received; finishing streams
        case closed
    }
    private var state: State
    private var fd: Int32
    private var registration: EventLoop.RegistrationID?
    private let tls: TLSSession?
    /// Client through a proxy: the CONNECT exchange, until the tunnel is open.
    private var tunnel: HTTPConnectHandshake?
    private var session: OpaquePointer!
    private var streams: [Int32: HTTP2Stream] = [:]
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var wantsWrite = false
    private var readPaused = false
    private var tlsReadWantsWrite = false
    private var lastReceive = MonotonicClock.nanoseconds()
    private var keepaliveTimer: EventLoop.TimerID?
    private var pingOutstanding = false
    private var shutdownTimer: EventLoop.TimerID?
    private var connectTimer: EventLoop.TimerID?
    private var closeReason: String?
    /// Client: the first bytes received before the peer's SETTINGS, to say what it speaks
    /// instead when it never sends them (an HTTP/1.1 server answers the preface with a 400).
    private var bytesBeforeSettings: [UInt8] = []
    /// The header block being received (HTTP/2 never interleaves two) and its size as
    /// SETTINGS_MAX_HEADER_LIST_SIZE counts it.
    private var block: [HTTP2Header] = []
    private var blockBytes = 0
    /// Long header names and values received lately (at most 8, of at most 256 bytes).
    private var recentHeaderStrings: [String] = []
    private var nextRecentHeaderString = 0

    /// Whether the connection runs over TLS.
    var isSecure: Bool { tls != nil }
    /// Number of streams currently open.
    public var openStreamCount: Int { streams.count }
    /// Whether new streams may be opened (client) or accepted (server).
    public var isActive: Bool { state == .open }

    init(loop: EventLoop, fd: Int32, role: Role, connecting: Bool, tls: TLSSession?, tunnel: HTTPConnectHandshake? = nil,
         peer: SocketAddress?, configuration: HTTP2Configuration) throws(HTTP2Error) {
        self.loop = loop
        self.fd = fd
        self.role = role
        self.tls = tls
        self.tunnel = tunnel
        self.peerAddress = peer
        self.configuration = configuration
        self.state = .connecting
        if !connecting { state = tls == nil ? transportEstablishedState : .handshaking }
        try makeSession()
    }

    deinit {
        if let session { nghttp2_session_del(session) }
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Registers with the loop and starts the handshake. Loop thread only.
    func start() throws(SystemError) {
        loop.preconditionInEventLoop()
        registration = try loop.register(fd, handler: self, write: state == .connecting || state == .handshaking)
        if state == .open || state == .awaitingSettings { transportEstablished() }
        scheduleKeepalive()
    }

    /// Server: bytes that protocol detection already read off the socket (the client
    /// preface), given to nghttp2 ahead of anything read later. Loop thread only, after `start`.
    func receive(initialBytes bytes: [UInt8]) {
        guard !bytes.isEmpty, state == .open else { return }
        let consumed = bytes.withUnsafeBufferPointer { nghttp2_session_mem_recv(session, $0.baseAddress!, $0.count) }
        if consumed < 0 {
            return terminate("protocol error: \(String(cString: nghttp2_strerror(Int32(consumed))))")
        }
        loop.scheduleFlush(self)
    }

    /// Client: closes the connection unless it is ready within `timeout` (TCP connect, the
    /// proxy's CONNECT, TLS handshake and the peer's first SETTINGS together). Loop thread only.
    func startConnectTimer(_ timeout: Duration) {
        guard state != .open, state != .closed else { return }
        connectTimer = loop.schedule(after: timeout) {
            self.connectTimer = nil
            self.connectTimedOut(after: timeout)
        }
    }

    private func connectTimedOut(after timeout: Duration) {
        let unfinished: String
        switch state {
        case .connecting:
            unfinished = tunnel.map { "TCP connect to proxy \($0.proxy.address) not complete" } ?? "TCP connect not complete"
        case .tunneling:
            unfinished = tunnel.map { "no answer from proxy \($0.proxy.address) to CONNECT \($0.target)" } ?? "no answer to CONNECT"
        case .handshaking: unfinished = "TLS handshake not complete"
        case .awaitingSettings: unfinished = "no HTTP/2 SETTINGS from the peer"
        case .open, .draining, .closed: return
        }
        terminate("\(unfinished) within \(timeout)")
    }

    // MARK: nghttp2 session setup

    private func makeSession() throws(HTTP2Error) {
        var callbacks: OpaquePointer?
        try check(nghttp2_session_callbacks_new(&callbacks), "nghttp2_session_callbacks_new")
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSend)

        var option: OpaquePointer?
        try check(nghttp2_option_new(&option), "nghttp2_option_new")
        defer { nghttp2_option_del(option) }
        // Flood protections (libnghttp2 1.52 + Debian's backports).
        nghttp2_option_set_max_settings(option, 32)
        nghttp2_option_set_max_outbound_ack(option, 1000)
        nghttp2_option_set_stream_reset_rate_limit(option, configuration.streamResetBurst, configuration.streamResetRatePerSecond)
        nghttp2_option_set_max_continuations(option, 8)
        nghttp2_option_set_max_send_header_block_length(option, 64 << 10)
        nghttp2_option_set_peer_max_concurrent_streams(option, 100)
        // Receive windows reopen when data is consumed, not when it arrives (see
        // `dataChunk`), so a peer cannot send faster than a slow stream reader takes it.
        nghttp2_option_set_no_auto_window_update(option, 1)

        let me = Unmanaged.passUnretained(self).toOpaque()
        var raw: OpaquePointer?
        let rc = role == .server
            ? nghttp2_session_server_new2(&raw, callbacks, me, option)
            : nghttp2_session_client_new2(&raw, callbacks, me, option)
        try check(rc, "nghttp2_session_new")
        session = raw

        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: configuration.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(configuration.initialStreamWindow)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: configuration.maxHeaderListSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: configuration.maxFrameSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ]
        if role == .server { settings.removeLast() }
        try check(nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count), "nghttp2_submit_settings")
        try check(nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, configuration.connectionWindow),
                  "nghttp2_session_set_local_window_size")
    }

    private func check(_ rc: Int32, _ what: String) throws(HTTP2Error) {
        if rc != 0 { throw HTTP2Error(what, code: rc) }
    }

    // MARK: Event loop callbacks

    public func eventLoopReadable() {
        switch state {
        case .connecting: return
        case .tunneling: continueTunnel()
        case .handshaking: continueHandshake()
        case .awaitingSettings, .open, .draining: readAvailable()
        case .closed: return
        }
    }

    public func eventLoopWritable() {
        switch state {
        case .connecting: finishConnect()
        case .tunneling: continueTunnel()
        case .handshaking: continueHandshake()
        case .awaitingSettings, .open, .draining:
            if tlsReadWantsWrite {
                tlsReadWantsWrite = false
                readAvailable()
            }
            eventLoopFlush()
        case .closed: return
        }
    }

    public func eventLoopHangup() {
        if state == .connecting { finishConnect(); return }
        if state == .tunneling {
            // Read what the proxy said before it hung up; a hangup right behind a complete
            // answer is seen again, by the next state, on the next iteration.
            continueTunnel()
            if state == .tunneling { terminate("proxy hung up before answering CONNECT") }
            return
        }
        // Read what is left (a GOAWAY, a last response) before giving up.
        if state == .awaitingSettings || state == .open || state == .draining { readAvailable() }
        peerEnded("peer hung up")
    }

    private func finishConnect() {
        let error = Socket.connectResult(fd)
        guard error == 0 else {
            let what = tunnel.map { "connect to proxy \($0.proxy.address)" } ?? "connect"
            terminate("\(what) failed: \(SystemError("connect", errno: error))")
            return
        }
        if tunnel != nil {
            state = .tunneling
            continueTunnel()
        } else {
            tcpEstablished()
        }
    }

    /// Sends CONNECT and reads the proxy's answer; once it is 2xx, carries on as a direct
    /// connection would after TCP connect.
    private func continueTunnel() {
        do {
            switch try tunnel?.advance(fd: fd, scratch: loop.readBuffer) {
            case .done?:
                tunnel = nil
                tcpEstablished()
            case .wantRead?: updateInterest(write: false)
            case .wantWrite?: updateInterest(write: true)
            case nil: return
            }
        } catch {
            terminate(error.description)
        }
    }

    /// TCP is up, directly or through the proxy's tunnel: TLS (to the target) or HTTP/2 starts.
    private func tcpEstablished() {
        if tls == nil {
            state = transportEstablishedState
            transportEstablished()
        } else {
            state = .handshaking
            continueHandshake()
        }
    }

    private func continueHandshake() {
        guard let tls else { return }
        do {
            switch try tls.handshake() {
            case .done:
                peerIdentity = tls.peerIdentity
                state = transportEstablishedState
                transportEstablished()
            case .wantRead: updateInterest(write: false)
            case .wantWrite: updateInterest(write: true)
            }
        } catch {
            terminate("TLS handshake failed: \(error)")
        }
    }

    /// Once TCP (and TLS) are up: a server serves at once; a client has sent its preface
    /// and waits for the peer's SETTINGS, which prove the peer speaks HTTP/2.
    private var transportEstablishedState: State { role == .client ? .awaitingSettings : .open }

    private func transportEstablished() {
        updateInterest(write: false)
        loop.scheduleFlush(self)
        if state == .open { becameReady() }
    }

    /// Transition awaitingSettings -> open, on the peer's first SETTINGS frame.
    private func peerSettingsArrived() {
        guard state == .awaitingSettings else { return }
        state = .open
    }

    /// Announces an open connection; called outside nghttp2's callbacks, since `onReady`
    /// opens streams.
    private func becameReady() {
        if let connectTimer { loop.cancelTimer(connectTimer) }
        connectTimer = nil
        bytesBeforeSettings = []
        onReady?()
    }

    /// The peer closed or broke the connection; before its SETTINGS, says that too.
    private func peerEnded(_ what: String) {
        terminate(state == .awaitingSettings ? beforeSettings(what) : what)
    }

    /// Why a client connection ended (`what`) before the peer's first SETTINGS.
    private func beforeSettings(_ what: String) -> String {
        let text = bytesBeforeSettings.prefix { $0 >= 0x20 && $0 < 0x7f }
        // A SETTINGS frame starts with binary length bytes; readable text is another protocol.
        guard text.count >= 4 else { return "\(what) before sending HTTP/2 SETTINGS" }
        return "peer does not speak HTTP/2: it answered \"\(String(decoding: text, as: UTF8.self))\" instead of SETTINGS"
    }

    private func readAvailable() {
        for _ in 0..<8 where !readPaused && state != .closed {
            let n: Int
            if let tls {
                do {
                    switch try tls.read(into: loop.readBuffer) {
                    case .bytes(let count): n = count
                    case .wantRead: return finishRead()
                    case .wantWrite:
                        tlsReadWantsWrite = true
                        updateInterest(write: true)
                        return finishRead()
                    case .closed: return peerEnded("peer closed the connection")
                    }
                } catch {
                    return terminate("TLS read failed: \(error)")
                }
            } else {
                let rc = Glibc.read(fd, loop.readBuffer.baseAddress, loop.readBuffer.count)
                if rc == 0 { return peerEnded("peer closed the connection") }
                if rc < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return finishRead() }
                    return peerEnded("read failed: \(SystemError("read", errno: errno))")
                }
                n = rc
            }
            counters?.didReceive(n)
            lastReceive = MonotonicClock.nanoseconds()
            let awaitingSettings = state == .awaitingSettings
            if awaitingSettings && bytesBeforeSettings.count < 64 {
                bytesBeforeSettings += UnsafeRawBufferPointer(rebasing: loop.readBuffer[0..<min(n, 64)])
            }
            let consumed = nghttp2_session_mem_recv(session, loop.readBuffer.baseAddress!.assumingMemoryBound(to: UInt8.self), n)
            if consumed < 0 {
                // Errors nghttp2 handles itself (bad frames, rapid reset, ...) come back as
                // consumed input with a GOAWAY already queued. The fatal ones that come back
                // here — a bad client preface, a SETTINGS/PING flood, too many CONTINUATIONs —
                // queue nothing, and the peer would see a bare close. Queue the GOAWAY that
                // says why (RFC 9113 5.4.1; a no-op if one is already queued), send, close.
                let reason = String(cString: nghttp2_strerror(Int32(consumed)))
                nghttp2_session_terminate_session(session, Self.goAwayCode(forFatal: Int32(consumed)).rawValue)
                closeReason = "protocol error: \(reason)"
                eventLoopFlush()
                return terminate("protocol error: \(reason)")
            }
            if awaitingSettings && state == .open { becameReady() }
            // A short plaintext read drained the socket. Reading again would only return
            // EAGAIN, one more system call before this wake-up's answers go out; if bytes
            // arrived meanwhile, the level-triggered poll reports them. (A TLS read returns
            // at most one record, so a short one says nothing about the socket.)
            if tls == nil && n < loop.readBuffer.count { break }
        }
        finishRead()
    }

    /// The GOAWAY error code for a fatal `nghttp2_session_mem_recv` result.
    private static func goAwayCode(forFatal error: Int32) -> HTTP2ErrorCode {
        switch error {
        case NGHTTP2_ERR_FLOODED.rawValue, NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue: .enhanceYourCalm
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue: .protocolError
        default: .internalError
        }
    }

    private func finishRead() {
        loop.scheduleFlush(self)
    }

    // MARK: Writing

    public func eventLoopFlush() {
        guard state == .awaitingSettings || state == .open || state == .draining else { return }
        guard writePending() else { return }
        let scratch = loop.writeBuffer
        var used = 0
        while true {
            var chunk: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &chunk)
            if n < 0 {
                return terminate("nghttp2_session_mem_send: \(String(cString: nghttp2_strerror(Int32(n))))")
            }
            if n == 0 { break }
            if used + n > scratch.count {
                // Scratch full: write what is gathered, keep going only if it all went.
                guard writeOut(UnsafeRawBufferPointer(rebasing: scratch[0..<used])) else {
                    appendPending(UnsafeRawBufferPointer(start: chunk, count: n))
                    return afterFlush()
                }
                used = 0
                if n > scratch.count {
                    guard writeOut(UnsafeRawBufferPointer(start: chunk, count: n)) else { return afterFlush() }
                    continue
                }
            }
            (scratch.baseAddress! + used).copyMemory(from: chunk!, byteCount: n)
            used += n
            if pending.count - pendingOffset > configuration.maxPendingOutputBytes { break }
        }
        if used > 0 { _ = writeOut(UnsafeRawBufferPointer(rebasing: scratch[0..<used])) }
        afterFlush()
    }

    /// Writes `bytes`; whatever the socket does not take goes to `pending`.
    /// Returns whether everything was written.
    private func writeOut(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard let n = writeSome(rest) else {
                appendPending(rest)
                return false
            }
            if n < 0 { return false }
            offset += n
        }
        return true
    }

    /// One write; nil when the socket would block, -1 after a fatal error.
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

    private func appendPending(_ bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes)
    }

    /// Writes bytes left from earlier flushes. Returns whether none are left.
    private func writePending() -> Bool {
        guard pendingOffset < pending.count else { return true }
        while pendingOffset < pending.count {
            let n = pending.withUnsafeBytes { writeSome(UnsafeRawBufferPointer(rebasing: $0[pendingOffset...])) }
            guard let n, n >= 0 else {
                afterFlush()
                return false
            }
            pendingOffset += n
        }
        pending = []   // release the memory: idle connections keep no buffer
        pendingOffset = 0
        return true
    }

    private func afterFlush() {
        guard state != .closed else { return }
        let backlog = pending.count - pendingOffset
        readPaused = backlog > configuration.maxPendingOutputBytes
        updateInterest(write: backlog > 0 || tlsReadWantsWrite)
        if backlog == 0, nghttp2_session_want_read(session) == 0, nghttp2_session_want_write(session) == 0 {
            // Before the peer's SETTINGS, nghttp2 ends the session when the peer sent anything else.
            let reason = closeReason ?? "session finished"
            terminate(state == .awaitingSettings ? beforeSettings(reason) : reason)
        } else if state == .draining, streams.isEmpty, backlog == 0, role == .server {
            terminate(closeReason ?? "graceful shutdown complete")
        }
    }

    private func updateInterest(write: Bool) {
        guard let registration else { return }
        wantsWrite = write
        loop.setInterest(registration, read: !readPaused, write: write)
    }

    // MARK: Streams (called by HTTP2Stream and the client)

    /// Client: opens a stream with request headers; DATA may follow.
    public func openStream(headers: [HTTP2Header], delegate: any HTTP2StreamDelegate) throws(HTTP2Error) -> HTTP2Stream {
        loop.preconditionInEventLoop()
        guard role == .client, state == .open else { throw HTTP2Error("openStream", code: Int32(NGHTTP2_ERR_INVALID_STATE.rawValue)) }
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readStreamData)
        let id = withNameValues(headers) { nva, count in
            nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        guard id > 0 else { throw HTTP2Error("nghttp2_submit_request", code: id) }
        let stream = HTTP2Stream(id: id, connection: self)
        stream.delegate = delegate
        stream.markOpened()
        streams[id] = stream
        loop.scheduleFlush(self)
        return stream
    }

    func submitResponse(_ stream: HTTP2Stream, headers: HTTP2HeaderBlock, endStream: Bool) {
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: readStreamData)
        let rc = withNameValues(headers) { nva, count in
            endStream
                ? nghttp2_submit_response(session, stream.id, nva, count, nil)
                : nghttp2_submit_response(session, stream.id, nva, count, &provider)
        }
        if rc != 0 { nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, HTTP2ErrorCode.internalError.rawValue) }
        loop.scheduleFlush(self)
    }

    func submitTrailers(_ stream: HTTP2Stream, _ trailers: HTTP2HeaderBlock) {
        let rc = withNameValues(trailers) { nva, count in nghttp2_submit_trailer(session, stream.id, nva, count) }
        if rc != 0 { nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, HTTP2ErrorCode.internalError.rawValue) }
    }

    func submitReset(_ stream: HTTP2Stream, code: HTTP2ErrorCode) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, code.rawValue)
        loop.scheduleFlush(self)
    }

    /// Reopens `stream`'s receive window by `byteCount` consumed bytes.
    func consume(_ stream: HTTP2Stream, _ byteCount: Int) {
        guard state != .closed else { return }
        // Fails only for a bad argument or out of memory; either way the session is unusable.
        if nghttp2_session_consume_stream(session, stream.id, byteCount) != 0 {
            nghttp2_session_terminate_session(session, HTTP2ErrorCode.internalError.rawValue)
        }
        loop.scheduleFlush(self)
    }

    func resumeData(_ stream: HTTP2Stream) {
        nghttp2_session_resume_data(session, stream.id)
        loop.scheduleFlush(self)
    }

    // MARK: Shutdown

    /// Graceful: sends GOAWAY (no new streams), lets open streams finish within
    /// `gracefulShutdownTimeout`, then closes. Loop thread only.
    public func shutdown(reason: String = "shutting down") {
        guard state == .open || state == .awaitingSettings || state == .handshaking || state == .tunneling
                || state == .connecting else { return }
        if state != .open { return terminate(reason) }
        state = .draining
        closeReason = reason
        let lastStream = role == .server ? nghttp2_session_get_last_proc_stream_id(session) : 0
        nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStream, HTTP2ErrorCode.noError.rawValue, nil, 0)
        shutdownTimer = loop.schedule(after: configuration.gracefulShutdownTimeout) {
            self.terminate("graceful shutdown timed out")
        }
        loop.scheduleFlush(self)
    }

    /// Closes now: every open stream sees `.connectionClosed(reason)`.
    public func terminate(_ reason: String) {
        guard state != .closed else { return }
        state = .closed
        if let registration { loop.unregister(registration) }
        registration = nil
        if let keepaliveTimer { loop.cancelTimer(keepaliveTimer) }
        if let shutdownTimer { loop.cancelTimer(shutdownTimer) }
        if let connectTimer { loop.cancelTimer(connectTimer) }
        connectTimer = nil
        tls?.shutdown()
        Glibc.close(fd)
        fd = -1
        pending = []
        let open = streams.values.sorted { $0.id < $1.id }
        streams = [:]
        counters?.streamsClosed(open.count)
        for stream in open { stream.close(.connectionClosed(reason)) }
        let onClose = self.onClose
        self.onClose = nil
        onReady = nil
        onGoAway = nil
        onClose?(reason)
    }

    // MARK: Keepalive

    private func scheduleKeepalive() {
        guard let interval = configuration.keepaliveInterval else { return }
        keepaliveTimer = loop.schedule(after: interval) { self.keepaliveTick() }
    }

    private func keepaliveTick() {
        guard state != .closed, let interval = configuration.keepaliveInterval else { return }
        if pingOutstanding {
            return terminate("keepalive timeout: no PING ack within \(configuration.keepaliveTimeout)")
        }
        let idle = MonotonicClock.nanoseconds() - lastReceive
        guard idle >= interval.nanoseconds else {
            keepaliveTimer = loop.schedule(after: .nanoseconds(interval.nanoseconds - idle)) {
                self.keepaliveTick()
            }
            return
        }
        switch state {
        case .open, .draining:
            pingOutstanding = true
            nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
            loop.scheduleFlush(self)
            keepaliveTimer = loop.schedule(after: configuration.keepaliveTimeout) { self.keepaliveTick() }
        case .handshaking where role == .server:
            // No HTTP/2 yet, so no PING: a client that stalls its TLS handshake would
            // otherwise hold the connection for good.
            terminate("TLS handshake not complete within \(interval)")
        case .connecting, .tunneling, .handshaking, .awaitingSettings:
            // A client's connect timer covers these.
            keepaliveTimer = loop.schedule(after: interval) { self.keepaliveTick() }
        case .closed:
            return
        }
    }

    // MARK: nghttp2 callbacks, forwarded from the C functions below

    fileprivate func beginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        // A block refused half-way (too large) never reached `frameReceived`.
        block.removeAll(keepingCapacity: true)
        blockBytes = 0
        let id = frame.pointee.hd.stream_id
        guard role == .server, frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
        let stream = HTTP2Stream(id: id, connection: self)
        streams[id] = stream
        counters?.streamOpened()
        return 0
    }

    fileprivate func header(_ frame: UnsafePointer<nghttp2_frame>, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Int32 {
        guard streams[frame.pointee.hd.stream_id] != nil else { return 0 }
        blockBytes += name.count + value.count + 32
        if blockBytes > Int(configuration.maxHeaderListSize) {
            // nghttp2 advertises SETTINGS_MAX_HEADER_LIST_SIZE but does not enforce it on
            // receipt: this does, for requests, trailers and responses alike. nghttp2 resets
            // the stream (INTERNAL_ERROR) and keeps decoding the block to stay in HPACK sync.
            return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        if block.capacity == 0 { block.reserveCapacity(12) }
        block.append(HTTP2Header(headerString(name), headerString(value)))
        return 0
    }

    /// `bytes` of a received header field as a String. One longer than 15 bytes is a heap
    /// object, so those are looked up first: among the names and values gRPC peers send on
    /// every call, then among those this connection received lately. A client sends the
    /// same few paths, user agent and metadata values again and again.
    private func headerString(_ bytes: UnsafeRawBufferPointer) -> String {
        guard bytes.count > 15 else { return String(decoding: bytes, as: UTF8.self) }
        if let common = HTTP2Header.common(bytes) { return common }
        guard bytes.count <= 256 else { return String(decoding: bytes, as: UTF8.self) }
        for recent in recentHeaderStrings where HTTP2Header.equals(recent, bytes) { return recent }
        let string = String(decoding: bytes, as: UTF8.self)
        if recentHeaderStrings.count < 8 {
            recentHeaderStrings.append(string)
        } else {
            recentHeaderStrings[nextRecentHeaderString] = string
            nextRecentHeaderString = (nextRecentHeaderString + 1) % 8
        }
        return string
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch Int32(hd.type) {
        case Int32(NGHTTP2_HEADERS.rawValue):
            guard let stream = streams[hd.stream_id] else { return 0 }
            if role == .server && !stream.receivedInitialHeaders {
                stream.receivedInitialHeaders = true
                guard state == .open, let serverDelegate else {
                    stream.reset(.refusedStream)
                    return 0
                }
                stream.delegate = serverDelegate.connection(self, didOpen: stream)
            }
            stream.receivedInitialHeaders = true
            // Handed over, then emptied for the next block: unless the delegate kept a copy,
            // the array's storage is reused, so a header block costs no array allocation.
            stream.delegate?.streamReceivedHeaders(stream, block, endStream: endStream)
            block.removeAll(keepingCapacity: block.capacity <= 64)
        case Int32(NGHTTP2_DATA.rawValue):
            if endStream, let stream = streams[hd.stream_id] {
                stream.delegate?.streamReceivedData(stream, UnsafeRawBufferPointer(start: nil, count: 0), endStream: true)
            }
        case Int32(NGHTTP2_SETTINGS.rawValue):
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) == 0 { peerSettingsArrived() }
        case Int32(NGHTTP2_PING.rawValue):
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { pingOutstanding = false }
        case Int32(NGHTTP2_GOAWAY.rawValue):
            if state == .open { state = .draining }
            onGoAway?(HTTP2ErrorCode(rawValue: frame.pointee.goaway.error_code))
        default:
            break
        }
        return 0
    }

    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        guard hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0, let stream = streams[hd.stream_id],
              let code = stream.resetAfterEnd else { return 0 }
        stream.resetAfterEnd = nil
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), hd.stream_id, code.rawValue)
        return 0
    }

    fileprivate func dataChunk(streamID: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        // The connection window reopens on arrival, so one slow stream never stalls the
        // others; a stream's own window too, unless its delegate reports consumption itself
        // (`HTTP2Stream.reportsConsumedData`): then the peer gets at most one stream window
        // ahead of that delegate's reader.
        let stream = streams[streamID]
        let rc = stream?.reportsConsumedData == true
            ? nghttp2_session_consume_connection(session, bytes.count)
            : nghttp2_session_consume(session, streamID, bytes.count)
        if rc != 0 { return Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
        if let stream { stream.delegate?.streamReceivedData(stream, bytes, endStream: false) }
        return 0
    }

    fileprivate func streamClosed(_ id: Int32, errorCode: UInt32) -> Int32 {
        guard let stream = streams.removeValue(forKey: id) else { return 0 }
        counters?.streamsClosed(1)
        stream.close(errorCode == 0 ? .finished : .reset(HTTP2ErrorCode(rawValue: errorCode)))
        return 0
    }

    fileprivate func readData(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int,
                              flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = streams[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        return stream.readOutbound(into: buffer, length: length, flags: flags)
    }
}

/// An nghttp2 call that failed.
public struct HTTP2Error: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32
    init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }
    public var description: String { "\(operation): \(String(cString: nghttp2_strerror(code))) (\(code))" }
}

/// Calls `body` with `block` as nghttp2 name/value pairs (nghttp2 copies them).
private func withNameValues<R>(_ block: HTTP2HeaderBlock, _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    switch block {
    case .prepared(let prepared):
        return withExtendedLifetime(prepared) { body(prepared.pairs.baseAddress!, prepared.headers.count) }
    case .fields(let headers):
        return withNameValues(headers, body)
    }
}

/// Calls `body` with `headers` as nghttp2 name/value pairs (nghttp2 copies them).
/// The pairs and their bytes live in temporary (usually stack) memory.
private func withNameValues<R>(_ headers: [HTTP2Header], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(byteCountOfFields(headers), 1)) { bytes in
        withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(headers.count, 1)) { pairs in
            layOut(headers, bytes: bytes, pairs: pairs)
            return body(pairs.baseAddress!, headers.count)
        }
    }
}

// MARK: - nghttp2 C callbacks: recover the connection, call one method.

private func connection(_ userData: UnsafeMutableRawPointer?) -> HTTP2Connection {
    Unmanaged<HTTP2Connection>.fromOpaque(userData!).takeUnretainedValue()
}

private func onBeginHeaders(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                            _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).beginHeaders(frame!)
}

private func onHeader(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                      _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
                      _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
                      _ flags: UInt8, _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).header(frame!, name: UnsafeRawBufferPointer(start: name, count: nameLength),
                                value: UnsafeRawBufferPointer(start: value, count: valueLength))
}

private func onFrameRecv(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                         _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).frameReceived(frame!)
}

private func onFrameSend(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                         _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).frameSent(frame!)
}

private func onDataChunkRecv(_ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32,
                             _ data: UnsafePointer<UInt8>?, _ length: Int,
                             _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).dataChunk(streamID: streamID, UnsafeRawBufferPointer(start: data, count: length))
}

private func onStreamClose(_ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32,
                           _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).streamClosed(streamID, errorCode: errorCode)
}

private func readStreamData(_ session: OpaquePointer?, _ streamID: Int32, _ buffer: UnsafeMutablePointer<UInt8>?,
                            _ length: Int, _ flags: UnsafeMutablePointer<UInt32>?,
                            _ source: UnsafeMutablePointer<nghttp2_data_source>?,
                            _ userData: UnsafeMutableRawPointer?) -> Int {
    connection(userData).readData(streamID: streamID, into: buffer!, length: length, flags: flags!)
}

extension HTTP2Connection {
    /// Client: starts a connection to `address` (TLS if `tls` is set) on `loop`.
    /// Loop thread only. Set `onReady` / `onClose` before returning to the loop:
    /// `onReady` fires once TCP (and TLS) are up and the peer's first SETTINGS frame has
    /// arrived; `onClose` if it fails or ends, with why: a peer that closes first or
    /// answers in another protocol, or nothing of the three within `connectTimeout`.
    public static func connect(to address: SocketAddress, tls: TLSContext?, loop: EventLoop,
                               configuration: HTTP2Configuration = HTTP2Configuration(),
                               connectTimeout: Duration = .seconds(20)) throws -> HTTP2Connection {
        try connect(address, tunnel: nil, tls: tls, loop: loop, configuration: configuration, connectTimeout: connectTimeout)
    }

    /// Client: as `connect(to:tls:loop:configuration:connectTimeout:)`, through a tunnel that
    /// `proxy` opens to `target` ("host:port", which the proxy resolves) with HTTP CONNECT.
    /// Once the proxy answers 2xx the connection carries on exactly as a direct one: `tls`
    /// checks the target's certificate against its own server name (never the proxy's),
    /// or h2c starts. `connectTimeout` covers the proxy step too. `onClose` names a failed
    /// proxy step, e.g. "proxy 127.0.0.1:3128 refused CONNECT to example:443: 403 Forbidden".
    /// `peerAddress` is the proxy's: that is where the socket goes.
    /// - Throws: `HTTPConnectError` if `target` is not "host:port"; `SystemError`/`TLSError`
    ///   if the socket or TLS session cannot be made.
    public static func connect(through proxy: HTTPConnectProxy, to target: String, tls: TLSContext?, loop: EventLoop,
                               configuration: HTTP2Configuration = HTTP2Configuration(),
                               connectTimeout: Duration = .seconds(20)) throws -> HTTP2Connection {
        let tunnel = try HTTPConnectHandshake(proxy: proxy, target: target)
        return try connect(proxy.address, tunnel: tunnel, tls: tls, loop: loop, configuration: configuration,
                           connectTimeout: connectTimeout)
    }

    private static func connect(_ address: SocketAddress, tunnel: HTTPConnectHandshake?, tls: TLSContext?, loop: EventLoop,
                                configuration: HTTP2Configuration, connectTimeout: Duration) throws -> HTTP2Connection {
        loop.preconditionInEventLoop()
        let fd = try Socket.startConnect(to: address)
        let session: TLSSession?
        do {
            session = try tls.map { try TLSSession(context: $0, fileDescriptor: fd) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        let connection = try HTTP2Connection(loop: loop, fd: fd, role: .client, connecting: true, tls: session,
                                             tunnel: tunnel, peer: address, configuration: configuration)
        try connection.start()
        connection.startConnectTimer(connectTimeout)
        return connection
    }
}
