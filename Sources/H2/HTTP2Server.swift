#if canImport(Glibc)
internal import Glibc
#endif
import Synchronization

/// An HTTP/2 server: one listening socket per event loop (SO_REUSEPORT, so the
/// kernel spreads connections across loops with no hand-off between threads);
/// each connection lives on the loop that accepted it.
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
        /// Connections over this many are closed as soon as they are accepted.
        public var maxConnections = 10_000

        public init(address: SocketAddress, tls: TLSContext?) {
            self.address = address
            self.tls = tls
        }
    }

    public let configuration: Configuration
    private let loops: [EventLoop]
    private let delegate: any HTTP2ServerDelegate
    private let listeners = Mutex<[Listener]>([])
    private let connectionCount = Atomic<Int>(0)

    public init(configuration: Configuration, loops: [EventLoop], delegate: any HTTP2ServerDelegate) {
        precondition(!loops.isEmpty)
        self.configuration = configuration
        self.loops = loops
        self.delegate = delegate
    }

    /// Open connections right now, across every loop.
    public var openConnections: Int { connectionCount.load(ordering: .relaxed) }

    /// Binds and starts accepting. Returns the bound address (with the real port).
    public func start() throws -> SocketAddress {
        var address = configuration.address
        let reusePort = loops.count > 1
        var created: [Listener] = []
        do {
            for loop in loops {
                let fd = try Socket.listen(on: address, reusePort: reusePort)
                if address.port == 0, let bound = Socket.localAddress(fd) { address = bound }
                created.append(Listener(fd: fd, loop: loop, server: self))
            }
        } catch {
            for listener in created { Glibc.close(listener.fd) }
            throw error
        }
        listeners.withLock { $0 = created }
        for listener in created {
            listener.loop.execute { listener.register() }
        }
        return address
    }

    /// Stops accepting and closes every connection: gracefully (GOAWAY, open
    /// streams finish within `gracefulShutdownTimeout`) or at once. Returns when
    /// every connection is closed.
    public func shutdown(graceful: Bool = true) async {
        let all = listeners.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for listener in all {
                group.addTask {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        listener.loop.execute { listener.shutdown(graceful: graceful) { done.resume() } }
                    }
                }
            }
        }
    }

    fileprivate func reserveConnection() -> Bool {
        let now = connectionCount.add(1, ordering: .relaxed).newValue
        if now > configuration.maxConnections {
            connectionCount.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    fileprivate func releaseConnection() {
        connectionCount.subtract(1, ordering: .relaxed)
    }

    fileprivate var serverDelegate: any HTTP2ServerDelegate { delegate }
}

/// One loop's listening socket and the connections it accepted. Loop thread only
/// after `register`.
private final class Listener: EventLoopSelectable, @unchecked Sendable {
    let fd: Int32
    let loop: EventLoop
    unowned let server: HTTP2Server
    private var registration: EventLoop.RegistrationID?
    private var connections: [ObjectIdentifier: HTTP2Connection] = [:]
    private var stopped = false
    private var onDrained: (() -> Void)?

    init(fd: Int32, loop: EventLoop, server: HTTP2Server) {
        self.fd = fd
        self.loop = loop
        self.server = server
    }

    func register() {
        do {
            registration = try loop.register(fd, handler: self)
        } catch {
            Glibc.close(fd)
            stopped = true
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
            open(accepted.fd, peer: accepted.peer)
        }
    }

    private func open(_ fd: Int32, peer: SocketAddress?) {
        let connection: HTTP2Connection
        do {
            let tls = try server.configuration.tls.map { try TLSSession(context: $0, fileDescriptor: fd) }
            // From here the connection owns the fd (its deinit closes it, even if init throws).
            connection = try HTTP2Connection(loop: loop, fd: fd, role: .server, connecting: false, tls: tls,
                                             peer: peer, configuration: server.configuration.http2)
        } catch is HTTP2Error {
            server.releaseConnection()
            return
        } catch {
            Glibc.close(fd)
            server.releaseConnection()
            return
        }
        connection.serverDelegate = server.serverDelegate
        let key = ObjectIdentifier(connection)
        connection.onClose = { [unowned self] _ in
            self.connections[key] = nil
            self.server.releaseConnection()
            if self.connections.isEmpty, let done = self.onDrained {
                self.onDrained = nil
                done()
            }
        }
        connections[key] = connection
        do {
            try connection.start()
        } catch {
            connection.terminate("could not register: \(error)")
        }
    }

    func eventLoopWritable() {}
    func eventLoopHangup() {}

    func shutdown(graceful: Bool, done: @escaping () -> Void) {
        if !stopped {
            stopped = true
            if let registration { loop.unregister(registration) }
            registration = nil
            Glibc.close(fd)
        }
        if connections.isEmpty { return done() }
        onDrained = done
        for connection in connections.values {
            if graceful { connection.shutdown() } else { connection.terminate("server shutting down") }
        }
    }
}
