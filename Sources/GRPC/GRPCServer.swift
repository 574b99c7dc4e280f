#if canImport(Glibc)
internal import Glibc
#endif
public import H2
public import TetherWire

/// A gRPC server on our HTTP/2 transport. Every server also answers
/// `grpc.health.v1.Health` (see `health`), and server reflection when given the
/// descriptors of its services (`GRPCReflectionService`).
///
/// Thread model: `loopCount` event loops (default: one per core), each with its
/// own listening socket (SO_REUSEPORT). A call's handler runs as a task on the
/// loop that owns its connection, so frames are parsed, dispatched and answered
/// on one thread; handlers that block must move that work elsewhere.
public final class GRPCServer: Sendable {
    /// Per-call limits.
    public struct Limits: Sendable {
        /// Larger request messages fail the call with RESOURCE_EXHAUSTED.
        public var maxReceiveMessageBytes = 4 << 20
        /// Larger response messages fail the call with RESOURCE_EXHAUSTED.
        public var maxSendMessageBytes = 4 << 20
        /// Streaming writers wait while more than this is queued on the stream.
        public var sendBufferBytes = 1 << 20
        public init() {}
    }

    public struct Configuration: Sendable {
        public var address: SocketAddress
        /// TLS with ALPN h2; nil serves plaintext h2c (prior knowledge).
        public var tls: TLSContext?
        public var limits = Limits()
        /// HTTP/2 settings, including max concurrent streams per connection.
        public var http2 = HTTP2Configuration()
        public var maxConnections = 10_000
        public var loopCount = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        /// How long a loop may poll before it sleeps (`EventLoop`'s busy polling: it spins
        /// only while events come closer together than this); zero never polls.
        public var busyPoll = defaultBusyPoll
        /// 200 µs, as the Linux guest haltpoll governor's default. On this project's VM a
        /// loopback gRPC round trip takes ~15 µs with both sides polling, ~75-100 µs sleeping.
        public static let defaultBusyPoll = Duration.microseconds(200)

        public init(address: SocketAddress, tls: TLSContext?) {
            self.address = address
            self.tls = tls
        }
    }

    public let configuration: Configuration
    /// The health service's statuses; the server's own ("") starts SERVING.
    public let health: GRPCHealthService
    private let loops: [EventLoop]
    private let transport: HTTP2Server

    /// - Parameters:
    ///   - health: the statuses `grpc.health.v1.Health` answers with; pass one when the
    ///     router's handlers must set them before the server exists.
    ///   - reflection: compiled `.proto` files declaring every service the router answers
    ///     (and health and reflection's own), e.g. `WireRegistry.fileDescriptors`: the
    ///     server then answers gRPC server reflection (v1 and v1alpha) about every service
    ///     it serves. nil: no reflection.
    /// - Throws: `GRPCReflectionService.ConfigurationError` if `reflection` lacks a service's
    ///   file; the transport's errors if a loop cannot start.
    public init(configuration: Configuration, router: GRPCRouter, health: GRPCHealthService = GRPCHealthService(),
                reflection: [ProtoFileDescriptor]? = nil) throws {
        self.configuration = configuration
        self.health = health
        var router = router
        health.register(in: &router)
        if let reflection {
            let services = router.paths.map(\.service) + GRPCReflectionService.serviceNames
            try GRPCReflectionService(services: services, files: reflection).register(in: &router)
        }
        loops = try (0..<configuration.loopCount).map { try EventLoop.start(name: "grpc-\($0)", busyPoll: configuration.busyPoll) }
        var transportConfiguration = HTTP2Server.Configuration(address: configuration.address, tls: configuration.tls)
        transportConfiguration.http2 = configuration.http2
        transportConfiguration.maxConnections = configuration.maxConnections
        transport = HTTP2Server(configuration: transportConfiguration, loops: loops,
                                delegate: CallFactory(router: router, limits: configuration.limits))
    }

    /// Starts listening; returns the bound address (with the real port if 0 was asked).
    public func start() throws -> SocketAddress {
        try transport.start()
    }

    /// Open connections right now.
    public var openConnections: Int { transport.openConnections }

    /// Stops: marks health NOT_SERVING, closes the listening socket, sends GOAWAY, runs
    /// `whileDraining` (no new call can arrive by then; end long-lived calls there), lets
    /// in-flight calls finish within `http2.gracefulShutdownTimeout` (when graceful),
    /// closes every connection and stops the loops.
    public func shutdown(graceful: Bool = true, whileDraining: @Sendable () async -> Void = {}) async {
        health.shutDown()
        await transport.shutdown(graceful: graceful, whileDraining: whileDraining)
        for loop in loops { loop.stop() }
    }
}

/// Makes a `GRPCServerCall` for each new stream.
private final class CallFactory: HTTP2ServerDelegate {
    let router: GRPCRouter
    let limits: GRPCServer.Limits

    init(router: GRPCRouter, limits: GRPCServer.Limits) {
        self.router = router
        self.limits = limits
    }

    func connection(_ connection: HTTP2Connection, didOpen stream: HTTP2Stream) -> any HTTP2StreamDelegate {
        GRPCServerCall(stream: stream, loop: connection.loop, router: router, limits: limits)
    }
}
