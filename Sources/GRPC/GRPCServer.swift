#if canImport(Glibc)
internal import Glibc
#endif
public import H2
public import TetherWire

/// A gRPC server on our HTTP/2 transport. Every server also answers
/// `grpc.health.v1.Health` (see `health`), and server reflection when given the
/// descriptors of its services (`GRPCReflectionService`).
///
/// With an `HTTPHandler` it answers plain HTTP on the same port too: HTTP/1.1 connections
/// (detected once per connection; see `HTTP2Server`) and HTTP/2 requests that are not gRPC
/// (no `application/grpc*` content-type). gRPC requests keep their own path untouched; one
/// sent over HTTP/1.1 is answered 505, since gRPC needs HTTP/2.
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
        /// Limits and timers for plain HTTP requests (with an `HTTPHandler`).
        public var http = HTTPConfiguration()
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
    ///   - httpHandler: answers plain HTTP requests (see above); nil serves gRPC only, and
    ///     then anything else gets what the gRPC path answers (405, 415). With TLS, make the
    ///     context with `TLSConfiguration.acceptsHTTP11` so HTTP/1.1-only clients get in.
    ///   - transportCounters: where the transport counts connections, streams and bytes
    ///     (pass one to read it before the server exists); one per server.
    /// - Throws: `GRPCReflectionService.ConfigurationError` if `reflection` lacks a service's
    ///   file; the transport's errors if a loop cannot start.
    public init(configuration: Configuration, router: GRPCRouter, health: GRPCHealthService = GRPCHealthService(),
                reflection: [ProtoFileDescriptor]? = nil, httpHandler: HTTPHandler? = nil,
                transportCounters: HTTPServerCounters = HTTPServerCounters()) throws {
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
        transportConfiguration.http = configuration.http
        let plainHTTP = httpHandler.map { PlainHTTPService(handler: Self.refusingGRPC($0), configuration: configuration.http) }
        transport = HTTP2Server(configuration: transportConfiguration, loops: loops,
                                delegate: CallFactory(router: router, limits: configuration.limits, plainHTTP: plainHTTP),
                                httpHandler: plainHTTP?.handler, counters: transportCounters)
    }

    /// Starts listening; returns the bound address (with the real port if 0 was asked).
    public func start() throws -> SocketAddress {
        try transport.start()
    }

    /// Open connections right now.
    public var openConnections: Int { transport.openConnections }

    /// The transport's connections, streams and bytes since `start` (`HTTPServerCounters`).
    public var transportCounters: HTTPServerCounters { transport.counters }

    /// Stops: marks health NOT_SERVING, closes the listening socket, sends GOAWAY, runs
    /// `whileDraining` (no new call can arrive by then; end long-lived calls there), lets
    /// in-flight calls finish within `http2.gracefulShutdownTimeout` (when graceful),
    /// closes every connection and stops the loops.
    public func shutdown(graceful: Bool = true, whileDraining: @Sendable () async -> Void = {}) async {
        health.shutDown()
        await transport.shutdown(graceful: graceful, whileDraining: whileDraining)
        for loop in loops { loop.stop() }
    }

    /// `handler`, except that a gRPC request (which can only have come over HTTP/1.1: on
    /// HTTP/2 those never reach it) is answered 505.
    private static func refusingGRPC(_ handler: @escaping HTTPHandler) -> HTTPHandler {
        { request in
            guard let type = request.header("content-type"), PlainHTTPService.isGRPCContentType(type) else {
                return await handler(request)
            }
            return .text(505, "gRPC needs HTTP/2: this server speaks gRPC over HTTP/2 only (h2c with prior knowledge, "
                         + "or TLS with ALPN h2); this request came over \(request.version)")
        }
    }
}

/// Makes a `GRPCServerCall` for each new stream.
private final class CallFactory: HTTP2ServerDelegate {
    let router: GRPCRouter
    let limits: GRPCServer.Limits
    let plainHTTP: PlainHTTPService?

    init(router: GRPCRouter, limits: GRPCServer.Limits, plainHTTP: PlainHTTPService?) {
        self.router = router
        self.limits = limits
        self.plainHTTP = plainHTTP
    }

    func connection(_ connection: HTTP2Connection, didOpen stream: HTTP2Stream) -> any HTTP2StreamDelegate {
        GRPCServerCall(stream: stream, loop: connection.loop, router: router, limits: limits, plainHTTP: plainHTTP)
    }
}

/// Where an HTTP/2 request that is not gRPC goes: the server's `HTTPHandler`. A stream is
/// handed over only once its head has failed gRPC's checks (not POST, or not a gRPC
/// content-type), so gRPC calls never look here.
final class PlainHTTPService: Sendable {
    let handler: HTTPHandler
    let configuration: HTTPConfiguration

    init(handler: @escaping HTTPHandler, configuration: HTTPConfiguration) {
        self.handler = handler
        self.configuration = configuration
    }

    /// Whether a request with `headers` is meant as gRPC: its content-type starts with
    /// `application/grpc` (any subtype or parameters). Those stay on the gRPC path, errors
    /// and all.
    static func isGRPCRequest(_ headers: [HTTP2Header]) -> Bool {
        headers.first { $0.name == "content-type" }.map { isGRPCContentType($0.value) } ?? false
    }

    static func isGRPCContentType(_ value: String) -> Bool {
        value.utf8.count >= 16 && value.prefix(16).lowercased() == "application/grpc"
    }
}
