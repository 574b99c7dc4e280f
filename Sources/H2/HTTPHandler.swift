/// A header field of an HTTP request or response, whichever protocol carries it: the same
/// value as `HTTP2Header`. Names are lower case (HTTP/1.1 names are lowered when parsed).
public typealias HTTPHeader = HTTP2Header

/// Answers plain HTTP requests (not gRPC), over HTTP/1.1 and HTTP/2 alike.
///
/// Called as a task whose executor preference is the event loop that owns the request's
/// connection (no thread hop), so it must not block: move blocking work elsewhere. The task
/// is cancelled when the client goes away (connection closed, stream reset, server stopping
/// its stream); a response returned after that is dropped.
public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse

/// A complete request, with its body, as an `HTTPHandler` receives it.
public struct HTTPRequest: Sendable {
    public enum Version: Sendable, Equatable, CustomStringConvertible {
        case http1_0, http1_1, http2

        public var description: String {
            switch self {
            case .http1_0: "HTTP/1.0"
            case .http1_1: "HTTP/1.1"
            case .http2: "HTTP/2"
            }
        }
    }

    /// The method as sent, e.g. "GET".
    public var method: String
    /// The request target as sent (`:path` on HTTP/2), e.g. "/readyz?verbose".
    public var target: String
    /// The path part of `target`, e.g. "/readyz".
    public var path: String
    /// What follows `?` in `target`, if anything did.
    public var query: String?
    /// Header fields in the order received, names in lower case. On HTTP/2, `:authority`
    /// appears as `host` and the other pseudo-headers are left out.
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    public var version: Version
    /// Whether the connection is TLS.
    public var isSecure: Bool
    /// The client's address.
    public var peer: SocketAddress?
    /// The verified TLS client certificate, when the server asked for one.
    public var peerIdentity: TLSPeerIdentity?

    public init(method: String, target: String, headers: [HTTPHeader] = [], body: [UInt8] = [],
                version: Version = .http1_1, isSecure: Bool = false, peer: SocketAddress? = nil,
                peerIdentity: TLSPeerIdentity? = nil) {
        self.method = method
        self.target = target
        (path, query) = Self.split(target)
        self.headers = headers
        self.body = body
        self.version = version
        self.isSecure = isSecure
        self.peer = peer
        self.peerIdentity = peerIdentity
    }

    /// The first value of header `name` (lower case), if any.
    public func header(_ name: String) -> String? { headers[name] }

    /// Path and query of an origin-form target ("/a?b"); an absolute-form target
    /// ("http://host/a?b") gives its path and query too.
    static func split(_ target: String) -> (path: String, query: String?) {
        var rest = Substring(target)
        if !rest.hasPrefix("/"), let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
            let authority = rest[rest.index(colon, offsetBy: 3)...]
            rest = authority.firstIndex(where: { $0 == "/" || $0 == "?" }).map { authority[$0...] } ?? ""
            if !rest.hasPrefix("/") { rest = "/" + rest }
        }
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        guard let mark = rest.firstIndex(of: "?") else { return (String(rest), nil) }
        return (String(rest[..<mark]), String(rest[rest.index(after: mark)...]))
    }
}

/// What an `HTTPHandler` answers: a status, header fields and a body, either whole (sent
/// with `content-length`) or streamed over time (chunked on HTTP/1.1, DATA frames on
/// HTTP/2), e.g. server-sent events.
///
/// The connection adds `content-length`, `transfer-encoding`, `connection` and `date`
/// itself; a handler's own copies of those are dropped, as are fields whose name or value
/// could split the head (CR, LF, NUL). To a HEAD request only the head goes out.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes([UInt8])
        /// Runs after the head went out, in the handler's task; each `write` sends a part.
        /// Returning ends the body; throwing cuts it (the connection or stream is reset,
        /// so the client sees a truncated response, not a complete one).
        case stream(@Sendable (HTTPBodyWriter) async throws -> Void)
    }

    public var status: Int
    public var headers: [HTTPHeader]
    public var body: Body

    public init(status: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = .bytes(body)
    }

    /// A `text/plain; charset=utf-8` response; the body is `text`, a newline added if missing.
    public static func text(_ status: Int, _ text: String, headers: [HTTPHeader] = []) -> HTTPResponse {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        return HTTPResponse(status: status, headers: [HTTPHeader("content-type", "text/plain; charset=utf-8")] + headers,
                            body: Array(line.utf8))
    }

    /// A streamed response: the head now, the body as `produce` writes it.
    public static func stream(status: Int = 200, headers: [HTTPHeader] = [],
                              _ produce: @escaping @Sendable (HTTPBodyWriter) async throws -> Void) -> HTTPResponse {
        var response = HTTPResponse(status: status, headers: headers)
        response.body = .stream(produce)
        return response
    }

    /// Fields the connection owns and writes itself (see the type's comment).
    static func isConnectionOwned(_ name: String) -> Bool {
        switch name.lowercased() {
        case "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "date",
             "proxy-connection", "te", "trailer":
            return true
        default:
            return false
        }
    }

    /// Whether `header` can go on the wire as it is: a token name and a value without
    /// CR, LF or NUL (which would end the field or the head early).
    static func isSendable(_ header: HTTPHeader) -> Bool {
        !header.name.isEmpty
            && header.name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ":") }
            && !header.value.utf8.contains { $0 == 0 || $0 == 0x0a || $0 == 0x0d }
    }
}

/// The client went away (connection closed or reset, stream reset, server stopping) before
/// a streamed body was complete.
public struct HTTPClientGoneError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { "client gone: \(reason)" }
}

/// Writes a streamed response body (`HTTPResponse.Body.stream`).
public struct HTTPBodyWriter: Sendable {
    let sink: any HTTPBodySink

    /// Sends `bytes` as the next part of the body. Suspends while the client is not reading
    /// fast enough (more than the connection's output limit is waiting), so a slow client
    /// cannot make the server buffer without bound.
    /// - Throws: `HTTPClientGoneError` once the client has gone; `CancellationError` never
    ///   (cancellation is how the handler learns the same thing while not writing).
    public func write(_ bytes: [UInt8]) async throws(HTTPClientGoneError) {
        guard !bytes.isEmpty else { return }
        try await sink.writeBody(bytes)
    }

    /// `text` as UTF-8.
    public func write(_ text: String) async throws(HTTPClientGoneError) {
        try await write(Array(text.utf8))
    }
}

/// Where a streamed body goes: one exchange of one connection or stream. Implemented per
/// protocol; called from the handler's task, which runs on the connection's loop.
protocol HTTPBodySink: AnyObject, Sendable {
    func writeBody(_ bytes: [UInt8]) async throws(HTTPClientGoneError)
}

/// Limits and timers for plain HTTP requests (HTTP/1.1 connections, and the HTTP/2 streams
/// an `HTTPHandler` answers).
public struct HTTPConfiguration: Sendable {
    /// Request line and header fields together; more is answered 431 and the connection closed.
    public var maxHeadBytes = 16 << 10
    /// A larger request body is answered 413 (before it is read, when `content-length` says so).
    public var maxBodyBytes = 1 << 20
    /// From a request's first byte until its head is complete; past it the connection
    /// closes (slowloris). Also bounds the TLS handshake and the first bytes of a connection.
    public var headerTimeout: Duration = .seconds(10)
    /// From a request's head until its body is complete.
    public var bodyTimeout: Duration = .seconds(30)
    /// A kept-alive connection with no request in progress closes after this long.
    public var idleTimeout: Duration = .seconds(60)
    /// Stop reading (and suspend streamed body writes) while this many bytes wait to be
    /// written to a client.
    public var maxPendingOutputBytes = 1 << 20

    public init() {}
}
