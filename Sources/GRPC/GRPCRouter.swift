public import TetherWire

/// The methods a server answers, by path, each with its handler. Built once
/// before the server starts; read-only afterwards.
public struct GRPCRouter: Sendable {
    struct Method: Sendable {
        let run: @Sendable (GRPCServerCall, GRPCServerContext) async throws -> Void
    }

    /// Registered methods by their `:path` text: a request for one of them needs no parsing
    /// and one lookup. (A parsed path keeps its text, so a text not found here names no
    /// registered method.)
    private var registered: [String: (path: GRPCMethodPath, method: Method)] = [:]

    public init() {}

    /// The registered method whose `:path` text is `text`, with its path parsed once at
    /// registration.
    func registeredMethod(_ text: String) -> (path: GRPCMethodPath, method: Method)? { registered[text] }

    /// Every registered path, e.g. for reflection or health.
    public var paths: [GRPCMethodPath] { registered.values.map(\.path) }

    private mutating func add<Request, Response, Shape>(_ method: RPCMethod<Request, Response, Shape>, _ run: Method) {
        guard let path = GRPCMethodPath(path: method.path) else { preconditionFailure("invalid gRPC method path \(method)") }
        precondition(registered[path.path] == nil, "\(path) registered twice")
        registered[path.path] = (path, run)
    }

    /// One request, one response.
    public mutating func unary<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.Unary>,
        _ handler: @escaping @Sendable (Request, GRPCServerContext) async throws -> Response
    ) {
        add(method, Method { call, context in
            let request: Request = try await singleRequest(of: call)
            let response = try await handler(request, context)
            try call.send(try encode(response))
        })
    }

    /// One request, a stream of responses.
    public mutating func serverStreaming<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.ServerStreaming>,
        _ handler: @escaping @Sendable (Request, GRPCResponseWriter<Response>, GRPCServerContext) async throws -> Void
    ) {
        add(method, Method { call, context in
            let request: Request = try await singleRequest(of: call)
            try await handler(request, GRPCResponseWriter(call), context)
        })
    }

    /// A stream of requests, one response.
    public mutating func clientStreaming<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.ClientStreaming>,
        _ handler: @escaping @Sendable (GRPCRequestStream<Request>, GRPCServerContext) async throws -> Response
    ) {
        add(method, Method { call, context in
            let response = try await handler(GRPCRequestStream(call), context)
            try call.send(try encode(response))
        })
    }

    /// Streams both ways.
    public mutating func bidirectionalStreaming<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.BidirectionalStreaming>,
        _ handler: @escaping @Sendable (GRPCRequestStream<Request>, GRPCResponseWriter<Response>, GRPCServerContext) async throws -> Void
    ) {
        add(method, Method { call, context in
            try await handler(GRPCRequestStream(call), GRPCResponseWriter(call), context)
        })
    }
}

/// The one request message of a unary or server-streaming call.
///
/// The usual case, a small request complete before its handler's task first runs, is taken
/// with no suspension and no `GRPCRequestStream`, whose metadata unspecialised generic
/// code (a handler registered from another module) would look up on every call.
func singleRequest<M: WireMessage>(of call: GRPCServerCall) async throws -> M {
    let request: M
    if let bytes = call.requests.singleIfComplete() {
        request = try decode(bytes)
    } else {
        request = try await GRPCRequestStream<M>(call).single()
    }
    return request
}

/// `bytes` decoded as an `M`.
///
/// - Throws: INVALID_ARGUMENT for well-formed protobuf carrying text the client must fix
///   (a string field that is not UTF-8 or holds U+0000); RESOURCE_EXHAUSTED when decoding
///   would allocate past the limit; INTERNAL for bytes that are not protobuf at all, as
///   stock gRPC servers answer.
func decode<M: WireMessage>(_ bytes: [UInt8]) throws(GRPCStatus) -> M {
    do {
        return try M(serializedBytes: bytes)
    } catch {
        let code: GRPCStatusCode
        switch error {
        case .invalidUTF8, .embeddedNUL: code = .invalidArgument
        case .tooLarge: code = .resourceExhausted
        case .malformed: code = .internal
        }
        throw GRPCStatus(code: code, message: "could not decode \(M.protoName): \(error)")
    }
}

/// `message` encoded after room for its gRPC prefix, for `GRPCMessageFramer.frame(prefixed:)`.
func encode<M: WireMessage>(_ message: M) throws(GRPCStatus) -> [UInt8] {
    do {
        return try message.serializedBytes(afterPrefix: GRPCMessageFramer.prefixLength)
    } catch {
        throw GRPCStatus(code: .internal, message: "could not encode \(M.protoName): \(error)")
    }
}

/// The request messages of a call, decoded, in order. Iterate it once.
/// Ends at the client's half-close; throws the call's status if the call fails.
public struct GRPCRequestStream<Message: WireMessage>: AsyncSequence, Sendable {
    private let call: GRPCServerCall

    init(_ call: GRPCServerCall) { self.call = call }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let call: GRPCServerCall

        public mutating func next() async throws -> Message? {
            guard let bytes = try await call.requests.next() else { return nil }
            return try decode(bytes)
        }

        /// The next message if it has already arrived, without waiting: nil when none is
        /// queued (more may still come; `next()` tells the end). Lets a handler take
        /// messages that arrived together as one batch. Call it on the call's event loop,
        /// where handlers run unless they move off it; elsewhere it traps.
        public mutating func nextIfReceived() throws -> Message? {
            call.loop.preconditionInEventLoop()
            return try call.requests.nextQueued().map { (bytes) throws(GRPCStatus) in try decode(bytes) }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(call: call) }

    /// Exactly one message, as unary and server-streaming calls need.
    func single() async throws -> Message {
        var iterator = makeAsyncIterator()
        guard let first = try await iterator.next() else {
            throw GRPCStatus(code: .internal, message: "client half-closed without a request message")
        }
        guard try await iterator.next() == nil else {
            throw GRPCStatus(code: .internal, message: "more than one request message for a single-request method")
        }
        return first
    }
}

/// Sends response messages of a streaming call. `write` suspends while the
/// client is not reading (the stream's send buffer is full), so a slow client
/// cannot make the server buffer without bound.
public struct GRPCResponseWriter<Message: WireMessage>: Sendable {
    private let call: GRPCServerCall

    init(_ call: GRPCServerCall) { self.call = call }

    /// Queues one message. Throws the call's status if the call has ended.
    public func write(_ message: Message) async throws {
        if call.mustWaitUntilWritable { try await call.waitUntilWritable() }
        try call.send(try encode(message))
    }

    /// Queues messages that the caller encoded already (so an event fanned out to many
    /// calls is encoded once), in one DATA chunk. Each must be a valid encoding of `Message`.
    public func write(serialized messages: [[UInt8]]) async throws {
        if call.mustWaitUntilWritable { try await call.waitUntilWritable() }
        try call.send(encoded: messages)
    }

    /// Ends the call now with `status`, from any thread: the status goes out (then
    /// RST_STREAM), the handler's pending and later reads and writes throw it, and its
    /// task is cancelled. For a client that stopped reading, whose writes would otherwise
    /// wait for room forever. Nothing happens if the call has ended already.
    public func end(_ status: GRPCStatus) {
        let call = self.call
        call.loop.execute { call.end(status) }
    }
}
