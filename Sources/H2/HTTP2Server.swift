#if canImport(Glibc)
internal import Glibc
#endif
import Synchronization

/// An HTTP/2 server: one listening socket watched by every event loop with
/// EPOLLEXCLUSIVE, so a new connection wakes one loop, which accepts it and hands it to
/// the loop that owns the fewest connections (itself on a tie), which owns it from then
/// on. The kernel wakes the same idle loop for nearly every connection, so without the
/// hand-off one loop would serve them all. (Not SO_REUSEPORT: that would also let a
/// second process bind the same port and take half the connections.)
///
/// With an `HTTPHandler` it serves HTTP/1.1 on the same port too: each connection's
/// protocol is detected once, when it opens (`HTTPProtocolDetector`: the client preface in
/// plaintext, ALPN over TLS), and its HTTP/1.1 requests go to that handler on the same
/// loop. `maxConnections` counts both kinds. Without one, every connection is HTTP/2.
///
/// Threading: `start` and `shutdown` from any thread; stream delegates are called
/// on the loop that owns their connection.
public final class HTTP2Server: Sendable {
    public struct Configuration: Sendable {
        /// Where to listen; port 0 picks a free port (see `start()`'s result).
        public var address: SocketAddress
        /// TLS (ALPN h2 required); nil serves plaintext h2c with prior knowledge.
        public var tls: TLSContext?
        /// Per-connection HTTP/2 settings.
        public var http2 = HTTP2Configuration()
        /// Connections over this many (HTTP/2 and HTTP/1.1 together) are closed as soon as
        /// they are accepted.
        public var maxConnections = 10_000
        /// Limits and timers of HTTP/1.1 connections (used with an `HTTPHandler`).
        public var http = HTTPConfiguration()

        public init(address: SocketAddress, tls: TLSContext?) {
            self.address = address
            self.tls = tls
        }
    }

    public let configuration: Configuration
    private let loops: [EventLoop]
    private let delegate: any HTTP2ServerDelegate
    /// Answers HTTP/1.1 requests; nil serves HTTP/2 only.
    let httpHandler: HTTPHandler?
    private let listeners = Mutex<[Listener]>([])
    private let listenerFD = Mutex<Int32>(-1)
    /// Connections, streams and bytes since `start`; also what `maxConnections` is checked against.
    public let counters: HTTPServerCounters

    /// - Parameters:
    ///   - httpHandler: answers HTTP/1.1 requests on the same port (see above); with TLS,
    ///     give the context `TLSConfiguration.acceptsHTTP11` so ALPN can pick it. (Plain HTTP
    ///     requests on HTTP/2 streams are `delegate`'s to route.)
    ///   - counters: where this server counts; one per server (its open connections are
    ///     what `maxConnections` is checked against).
    public init(configuration: Configuration, loops: [EventLoop], delegate: any HTTP2ServerDelegate,
                httpHandler: HTTPHandler? = nil, counters: HTTPServerCounters = HTTPServerCounters()) {
        precondition(!loops.isEmpty)
        self.configuration = configuration
        self.counters = counters
        self.loops = loops
        self.delegate = delegate
        self.httpHandler = httpHandler
    }

    /// Open connections right now, across every loop.
    public var openConnections: Int { counters.connectionsOpen }

    /// Connections each loop owns right now (with those handed to it and not yet opened),
    /// in the order of the loops given at init.
    public var connectionsPerLoop: [Int] { listeners.withLock { $0.map { $0.owned.load(ordering: .relaxed) } } }

    /// Binds and starts accepting. Returns the bound address (with the real port).
    public func start() throws -> SocketAddress {
        let fd = try Socket.listen(on: configuration.address, reusePort: false)
        let address = Socket.localAddress(fd) ?? configuration.address
        let created = loops.map { Listener(fd: fd, loop: $0, server: self) }
        listeners.withLock { $0 = created }
        listenerFD.withLock { $0 = fd }
        // Register on each loop's thread and wait, so a failure is an error here,
        // not a server that silently never accepts.
        let results = Mutex<[SystemError?]>([])
        for listener in created {
            listener.loop.execute {
                let outcome = listener.register()
                results.withLock { $0.append(outcome) }
            }
        }
        while results.withLock({ $0.count }) < created.count { sched_yield() }
        if let failure = results.withLock({ $0.compactMap { $0 }.first }) {
            throw failure
        }
        return address
    }

    /// Stops accepting and closes every connection: gracefully (GOAWAY, open
    /// streams finish within `gracefulShutdownTimeout`) or at once.
    ///
    /// In order: every loop stops accepting and sends GOAWAY on its connections (or
    /// closes them), then the listening socket is closed, so a new connection is refused
    /// at once instead of waiting in a backlog nobody accepts; then `whileDraining` runs
    /// (no new connection or stream can arrive by then: a place to end long-lived
    /// streams); then this returns when every connection is closed.
    public func shutdown(graceful: Bool = true, whileDraining: @Sendable () async -> Void = {}) async {
        let all = listeners.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for listener in all {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        listener.loop.execute {
                            listener.stopAccepting(graceful: graceful)
                            done.resume()
                        }
                    }
                }
            }
        }
        // Every loop has unregistered it by now.
        let fd = listenerFD.withLock { fd in defer { fd = -1 }; return fd }
        if fd >= 0 { Glibc.close(fd) }
        await whileDraining()
        await withTaskGroup(of: Void.self) { group in
            for listener in all {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        listener.loop.execute { listener.whenDrained { done.resume() } }
                    }
                }
            }
        }
    }

    fileprivate func reserveConnection() -> Bool {
        counters.reserveConnection(limit: configuration.maxConnections)
    }

    fileprivate func releaseConnection() {
        counters.connectionClosed()
    }

    fileprivate var serverDelegate: any HTTP2ServerDelegate { delegate }

    /// The listener whose loop owns the fewest connections; `preferred` on a tie.
    fileprivate func leastLoaded(preferring preferred: Listener) -> Listener {
        listeners.withLock { all in
            all.reduce(preferred) { best, next in next.owned.load(ordering: .relaxed) < best.owned.load(ordering: .relaxed) ? next : best }
        }
    }
}

/// A server-side connection a `Listener` tracks until it closes: HTTP/2, HTTP/1.1, or one
/// whose protocol is still being detected. Loop thread only.
protocol ServerSideConnection: AnyObject {
    /// Stop taking requests; close once those in flight are answered (or at once if idle).
    func shutdownGracefully()
    func terminate(_ reason: String)
}

extension HTTP2Connection: ServerSideConnection {
    func shutdownGracefully() { shutdown() }
}

extension HTTP1Connection: ServerSideConnection {
    func shutdownGracefully() { shutdown() }
}

extension HTTPProtocolDetector: ServerSideConnection {
    func shutdownGracefully() { terminate("server shutting down") }
}

/// One loop's listening socket and the connections it accepted. Loop thread only
/// after `register`.
private final class Listener: EventLoopSelectable, @unchecked Sendable {
    let fd: Int32
    let loop: EventLoop
    unowned let server: HTTP2Server
    private var registration: EventLoop.RegistrationID?
    private var connections: [ObjectIdentifier: any ServerSideConnection] = [:]
    private var stopped = false
    private var onDrained: (() -> Void)?
    /// Connections this loop owns or has been handed and not yet opened; read by other
    /// loops to pick the least loaded one.
    let owned = Atomic<Int>(0)

    init(fd: Int32, loop: EventLoop, server: HTTP2Server) {
        self.fd = fd
        self.loop = loop
        self.server = server
    }

    /// Starts watching the listening socket; nil on success.
    func register() -> SystemError? {
        do {
            registration = try loop.register(fd, handler: self, exclusive: true)
            return nil
        } catch {
            stopped = true
            return error
        }
    }

    func eventLoopReadable() {
        // Bounded per wake-up so one busy listener cannot starve the loop's connections.
        for _ in 0..<64 {
            let accepted: (fd: Int32, peer: SocketAddress?)?
            do {
                accepted = try Socket.accept(fd)
            } catch {
                // EMFILE and friends: leave the rest in the backlog for the next wake-up.
                return
            }
            guard let accepted else { return }
            guard !stopped, server.reserveConnection() else {
                Glibc.close(accepted.fd)
                continue
            }
            let owner = server.leastLoaded(preferring: self)
            owner.owned.add(1, ordering: .relaxed)
            if owner === self {
                open(accepted.fd, peer: accepted.peer)
            } else {
                owner.loop.execute { owner.adopt(accepted.fd, peer: accepted.peer) }
            }
        }
    }

    /// A connection another loop accepted for this one.
    private func adopt(_ fd: Int32, peer: SocketAddress?) {
        guard !stopped else {
            Glibc.close(fd)
            return released()
        }
        open(fd, peer: peer)
    }

    /// A connection of this loop's is gone (closed, or never opened).
    private func released() {
        owned.subtract(1, ordering: .relaxed)
        server.releaseConnection()
    }

    private func open(_ fd: Int32, peer: SocketAddress?) {
        let tls: TLSSession?
        do {
            tls = try server.configuration.tls.map { try TLSSession(context: $0, fileDescriptor: fd) }
        } catch {
            Glibc.close(fd)
            return released()
        }
        guard let handler = server.httpHandler else { return openHTTP2(fd, tls: tls, peer: peer, initialBytes: []) }
        let detector = HTTPProtocolDetector(loop: loop, fd: fd, tls: tls, counters: server.counters)
        detector.onDetected = { [unowned self] detected, fd, tls, initialBytes in
            self.forget(detector)
            switch detected {
            case .http2: self.openHTTP2(fd, tls: tls, peer: peer, initialBytes: initialBytes)
            case .http1: self.openHTTP1(fd, tls: tls, peer: peer, initialBytes: initialBytes, handler: handler)
            }
        }
        track(detector) { detector.onClose = $0 }
        do {
            try detector.start(timeout: server.configuration.http.headerTimeout)
        } catch {
            detector.terminate("could not register: \(error)")
        }
    }

    private func openHTTP2(_ fd: Int32, tls: TLSSession?, peer: SocketAddress?, initialBytes: [UInt8]) {
        let connection: HTTP2Connection
        do {
            // From here the connection owns the fd (its deinit closes it, even if init throws).
            connection = try HTTP2Connection(loop: loop, fd: fd, role: .server, connecting: false, tls: tls,
                                             peer: peer, configuration: server.configuration.http2)
        } catch {
            return released()
        }
        connection.serverDelegate = server.serverDelegate
        connection.counters = server.counters
        track(connection) { connection.onClose = $0 }
        do {
            try connection.start()
            connection.receive(initialBytes: initialBytes)
        } catch {
            connection.terminate("could not register: \(error)")
        }
    }

    private func openHTTP1(_ fd: Int32, tls: TLSSession?, peer: SocketAddress?, initialBytes: [UInt8], handler: @escaping HTTPHandler) {
        let connection = HTTP1Connection(loop: loop, fd: fd, tls: tls, peer: peer, configuration: server.configuration.http,
                                         gracefulShutdownTimeout: server.configuration.http2.gracefulShutdownTimeout,
                                         handler: handler, counters: server.counters)
        track(connection) { connection.onClose = $0 }
        do {
            try connection.start(initialBytes: initialBytes)
        } catch {
            connection.terminate("could not register: \(error)")
        }
    }

    /// Tracks `connection` until it closes (`setOnClose` installs the callback that ends
    /// that), counted against `maxConnections` until then.
    private func track(_ connection: any ServerSideConnection, setOnClose: (@escaping (String) -> Void) -> Void) {
        let key = ObjectIdentifier(connection)
        connections[key] = connection
        setOnClose { [unowned self] _ in
            self.connections[key] = nil
            self.released()
            self.closedOne()
        }
    }

    /// Stops tracking a detector that handed its connection on (still counted: the
    /// connection it became takes its place).
    private func forget(_ detector: HTTPProtocolDetector) {
        connections[ObjectIdentifier(detector)] = nil
    }

    private func closedOne() {
        if connections.isEmpty, let done = onDrained {
            onDrained = nil
            done()
        }
    }

    func eventLoopWritable() {}
    func eventLoopHangup() {}

    /// Stops accepting; sends GOAWAY on every connection (`graceful`) or closes it.
    func stopAccepting(graceful: Bool) {
        if !stopped {
            stopped = true
            if let registration { loop.unregister(registration) }
            registration = nil
        }
        for connection in Array(connections.values) {
            if graceful { connection.shutdownGracefully() } else { connection.terminate("server shutting down") }
        }
    }

    /// Calls `done` once every connection has closed (at once if none is open).
    func whenDrained(_ done: @escaping () -> Void) {
        if connections.isEmpty { return done() }
        onDrained = done
    }
}
