public import H2
internal import Synchronization
public import TetherWire

/// A gRPC client: one HTTP/2 connection to one server, shared by every call,
/// reconnected with gRPC's connection backoff when it breaks.
///
/// Calls fail fast with UNAVAILABLE while the connection is down (gRPC's default
/// "fail-fast" semantics) and a broken connection fails its in-flight calls with
/// UNAVAILABLE at once. All connection and call state lives on `eventLoop`; start
/// a task with `Task(executorPreference: client.eventLoop)` to run its awaits
/// there with no thread hop.
public final class GRPCClient: Sendable {
    public struct Configuration: Sendable {
        public var target: SocketAddress
        /// TLS (ALPN h2) with the server name checked; nil speaks h2c.
        public var tls: TLSContext?
        /// `:authority`; defaults to the target address.
        public var authority: String?
        /// An HTTP CONNECT proxy to tunnel through (`ProxySettings.fromEnvironment` reads
        /// HTTPS_PROXY and NO_PROXY); nil dials `target` directly. The proxy is asked for
        /// `authority` (default: `target`), so set `authority` to the server's "host:port" to
        /// let the proxy resolve its name; TLS still checks `tls`'s server name. The proxy's
        /// own host name is resolved once, when the client is made.
        public var proxy: ProxySettings?
        public var http2 = HTTP2Configuration()
        public var maxReceiveMessageBytes = 4 << 20
        public var maxSendMessageBytes = 4 << 20
        /// gRPC connection backoff (doc/connection-backoff.md) defaults.
        public var backoff = GRPCConnectionBackoff()
        /// How long the client's own loop may poll before it sleeps (`EventLoop`'s busy
        /// polling); zero never polls. Not used with a loop passed to `init`.
        public var busyPoll = GRPCServer.Configuration.defaultBusyPoll

        public init(target: SocketAddress, tls: TLSContext?) {
            self.target = target
            self.tls = tls
        }
    }

    public let configuration: Configuration
    /// The loop that owns the connection and every call's state.
    public let eventLoop: EventLoop
    /// The client's hold on a loop it started; every call it makes holds it too.
    private let loopLease: Mutex<GRPCLoopLease?>
    private let connection: GRPCClientConnection
    /// Set by the first `close()`, before it lets go of `loopLease`: no call starts after.
    private let closed = Atomic<Bool>(false)

    /// - Parameter eventLoop: the loop to run on; a new one is started if nil.
    /// - Throws: `SocketAddressError` if the proxy's host name does not resolve (a blocking
    ///   lookup: make clients off the event loop); `SystemError` if a loop cannot start.
    public init(configuration: Configuration, eventLoop: EventLoop? = nil) throws {
        self.configuration = configuration
        let proxy = try configuration.proxy.map { settings in
            HTTPConnectProxy(address: try SocketAddress.resolve(host: settings.host, port: UInt16(clamping: settings.port)),
                             username: settings.username, password: settings.password)
        }
        if let eventLoop {
            self.eventLoop = eventLoop
            loopLease = Mutex(nil)
        } else {
            self.eventLoop = try EventLoop.start(name: "grpc-client", busyPoll: configuration.busyPoll)
            loopLease = Mutex(GRPCLoopLease(self.eventLoop))
        }
        connection = GRPCClientConnection(configuration: configuration, proxy: proxy, loop: self.eventLoop)
    }

    /// Closes the connection (in-flight calls fail with UNAVAILABLE) and lets go of an owned
    /// loop, which stops once no call made by this client is left either (each holds it, so
    /// that a call used after the close still reaches a running loop and fails with
    /// UNAVAILABLE instead of waiting). Closing again does nothing; calls started after
    /// `close()` fail with UNAVAILABLE.
    public func close() async {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        await withTaskExecutorPreference(eventLoop) { self.connection.shutdown() }
        let lease = loopLease.withLock { lease in
            defer { lease = nil }
            return lease
        }
        _ = lease   // the loop stops here unless a call still holds it
    }

    /// Starts a call of any shape. Unary and server-streaming callers send one
    /// message then `finishSending()`.
    public func makeCall<Request: WireMessage, Response: WireMessage, Shape: RPCCallShape>(
        _ method: RPCMethod<Request, Response, Shape>, metadata: GRPCMetadata = GRPCMetadata(), timeout: Duration? = nil
    ) async throws(GRPCStatus) -> GRPCClientCall<Request, Response> {
        guard let methodPath = GRPCMethodPath(path: method.path) else {
            throw GRPCStatus(code: .internal, message: "not a gRPC method path: \(method)")
        }
        // The lease first: `close()` marks the client closed before letting go of it, so if
        // the check below passes, the loop runs at least as long as this call holds it.
        let lease = loopLease.withLock { $0 }
        guard !closed.load(ordering: .acquiring) else { throw GRPCStatus(code: .unavailable, message: "the client was closed") }
        let head = GRPCRequestHead(path: methodPath,
                                   authority: configuration.authority ?? configuration.target.description,
                                   timeout: timeout.map(GRPCTimeout.init(rounding:)),
                                   userAgent: "tether-grpc/0.1", acceptEncodings: ["identity"], metadata: metadata)
        let call = GRPCClientCall<Request, Response>(
            loop: eventLoop, loopLease: lease, maxReceiveMessageBytes: configuration.maxReceiveMessageBytes,
            maxSendMessageBytes: configuration.maxSendMessageBytes)
        let scheme = configuration.tls == nil ? "http" : "https"
        let headers = head.wireHeaders(scheme: scheme).map { HTTP2Header($0.name, $0.value) }
        await withTaskExecutorPreference(eventLoop) {
            self.connection.withReadyConnection { outcome in
                switch outcome {
                case .failure(let status):
                    call.core.fail(status)
                case .success(let h2):
                    do {
                        try call.core.open(on: h2, headers: headers, timeout: timeout)
                    } catch {
                        call.core.fail(GRPCStatus(code: .unavailable, message: "could not open stream: \(error)"))
                    }
                }
            }
        }
        return call
    }

    /// One request, one response.
    public func unary<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.Unary>, _ request: Request, metadata: GRPCMetadata = GRPCMetadata(),
        timeout: Duration? = nil
    ) async throws(GRPCStatus) -> Response {
        let call = try await makeCall(method, metadata: metadata, timeout: timeout)
        try await call.send(request)
        await call.finishSending()
        guard let reply = try await call.next() else {
            throw await call.status() ?? GRPCStatus(code: .internal, message: "no response message")
        }
        while try await call.next() != nil {}
        return reply
    }
}

/// gRPC's connection backoff parameters (doc/connection-backoff.md).
public struct GRPCConnectionBackoff: Sendable {
    public var initial: Duration = .seconds(1)
    public var multiplier = 1.6
    public var jitter = 0.2
    public var maximum: Duration = .seconds(120)
    /// How long one connection attempt may take: TCP connect, TLS handshake and the
    /// server's first HTTP/2 SETTINGS frame together. Calls waiting for the connection
    /// fail with UNAVAILABLE when it passes.
    public var minimumConnectTimeout: Duration = .seconds(20)

    public init() {}

    /// The wait before attempt `attempt` (0 = first retry), with jitter from `random`.
    public func delay(attempt: Int, random: Double) -> Duration {
        var seconds = Double(initial.components.seconds) + Double(initial.components.attoseconds) / 1e18
        let cap = Double(maximum.components.seconds)
        for _ in 0..<attempt { seconds = min(seconds * multiplier, cap) }
        let jittered = seconds * (1 + jitter * (2 * random - 1))
        return .milliseconds(Int64(max(0, jittered) * 1000))
    }
}

/// The client's one connection and its reconnect state. Loop thread only.
final class GRPCClientConnection: @unchecked Sendable {
    private enum State {
        case idle
        case connecting(HTTP2Connection)
        case ready(HTTP2Connection)
        case backoff(until: ContinuousClock.Instant, lastError: String)
        case shutdown
    }

    private let configuration: GRPCClient.Configuration
    private let proxy: HTTPConnectProxy?
    /// Where the connection goes, for error messages.
    private let destination: String
    private let loop: EventLoop
    private var state = State.idle
    /// Connections that got GOAWAY: kept alive until their last calls finish.
    private var draining: [ObjectIdentifier: HTTP2Connection] = [:]
    private var waiters: [(Result<HTTP2Connection, GRPCStatus>) -> Void] = []
    private var attempt = 0

    init(configuration: GRPCClient.Configuration, proxy: HTTPConnectProxy?, loop: EventLoop) {
        self.configuration = configuration
        self.proxy = proxy
        destination = proxy.map { "\(configuration.authority ?? configuration.target.description) via proxy \($0.address)" }
            ?? configuration.target.description
        self.loop = loop
    }

    /// Calls `body` with a ready connection, or with UNAVAILABLE if none can be had
    /// now (fail-fast). Loop thread only.
    func withReadyConnection(_ body: @escaping (Result<HTTP2Connection, GRPCStatus>) -> Void) {
        loop.preconditionInEventLoop()
        switch state {
        case .ready(let connection) where connection.isActive:
            body(.success(connection))
        case .ready, .idle:
            waiters.append(body)
            connect()
        case .connecting:
            waiters.append(body)
        case .backoff(let until, let lastError):
            if ContinuousClock.now >= until {
                waiters.append(body)
                connect()
            } else {
                body(.failure(GRPCStatus(code: .unavailable, message: "connection to \(destination) failed: \(lastError)")))
            }
        case .shutdown:
            body(.failure(GRPCStatus(code: .unavailable, message: "client closed")))
        }
    }

    private func connect() {
        let connection: HTTP2Connection
        do {
            let timeout = configuration.backoff.minimumConnectTimeout
            if let proxy {
                connection = try HTTP2Connection.connect(through: proxy,
                                                         to: configuration.authority ?? configuration.target.description,
                                                         tls: configuration.tls, loop: loop, configuration: configuration.http2,
                                                         connectTimeout: timeout)
            } else {
                connection = try HTTP2Connection.connect(to: configuration.target, tls: configuration.tls, loop: loop,
                                                         configuration: configuration.http2, connectTimeout: timeout)
            }
        } catch {
            return failed("\(error)")
        }
        state = .connecting(connection)
        connection.onReady = { [unowned self, unowned connection] in
            attempt = 0
            state = .ready(connection)
            let waiting = waiters
            waiters = []
            for waiter in waiting { waiter(.success(connection)) }
        }
        connection.onGoAway = { [unowned self, unowned connection] _ in
            // Existing calls finish on it; the next call makes a new connection.
            if case .ready(let current) = state, current === connection {
                state = .idle
                draining[ObjectIdentifier(connection)] = connection
            }
        }
        connection.onClose = { [unowned self, unowned connection] reason in
            draining[ObjectIdentifier(connection)] = nil
            switch state {
            case .connecting(let current) where current === connection:
                failed(reason)
            case .ready(let current) where current === connection:
                state = .idle
            default:
                break
            }
        }
    }

    private func failed(_ reason: String) {
        let delay = configuration.backoff.delay(attempt: attempt, random: Double.random(in: 0...1))
        attempt += 1
        state = .backoff(until: .now + delay, lastError: reason)
        let waiting = waiters
        waiters = []
        let status = GRPCStatus(code: .unavailable, message: "connection to \(destination) failed: \(reason)")
        for waiter in waiting { waiter(.failure(status)) }
    }

    func shutdown() {
        let current: HTTP2Connection?
        switch state {
        case .connecting(let c), .ready(let c): current = c
        default: current = nil
        }
        state = .shutdown
        current?.terminate("client closed")
        for connection in draining.values { connection.terminate("client closed") }
        draining = [:]
        let waiting = waiters
        waiters = []
        for waiter in waiting { waiter(.failure(GRPCStatus(code: .unavailable, message: "client closed"))) }
    }
}

/// A hold on an event loop that a client started: the loop stops when the last holder (the
/// client until it closes, and each call it made) lets go.
final class GRPCLoopLease: Sendable {
    let loop: EventLoop

    init(_ loop: EventLoop) { self.loop = loop }

    deinit { loop.stop() }
}
