/// The headers of a gRPC request (gRPC PROTOCOL-HTTP2, *Request-Headers*) as values: what a
/// server reads from an incoming stream's HEADERS, and what a client sends.
///
/// Only `identity` message encoding is supported, so a head has no `grpc-encoding`.
public struct GRPCRequestHead: Hashable, Sendable {
    /// The method called (`:path`).
    public var path: GRPCMethodPath
    /// `:authority`, the virtual host; `nil` when absent.
    public var authority: String?
    /// `grpc-timeout`; `nil` means no deadline.
    public var timeout: GRPCTimeout?
    /// `user-agent`; `nil` when absent.
    public var userAgent: String?
    /// `grpc-accept-encoding`, split on `,` and trimmed, in the peer's order; empty when
    /// absent (the peer accepts `identity` only).
    public var acceptEncodings: [String]
    /// Custom metadata.
    public var metadata: GRPCMetadata

    /// A head for a client to send.
    public init(
        path: GRPCMethodPath,
        authority: String? = nil,
        timeout: GRPCTimeout? = nil,
        userAgent: String? = nil,
        acceptEncodings: [String] = [],
        metadata: GRPCMetadata = GRPCMetadata()
    ) {
        self.path = path
        self.authority = authority
        self.timeout = timeout
        self.userAgent = userAgent
        self.acceptEncodings = acceptEncodings
        self.metadata = metadata
    }

    /// Validates a request's header fields, as a server receives them, and reads the head.
    ///
    /// Checks, in this order (the first failure is thrown):
    /// 1. `:method` is `POST`, else HTTP 405 (not a gRPC request at all).
    /// 2. `content-type` is `application/grpc` or `application/grpc+proto`, optionally
    ///    followed by `;` parameters (compared case-insensitively), else HTTP 415 as the spec
    ///    says. `+json` and other subtypes are refused the same way: we only speak protobuf.
    /// 3. `te`, when present, is `trailers`, else HTTP 400 (RFC 9113 §8.2.2 makes any other
    ///    value malformed). An absent `te` is accepted although the spec's grammar requires
    ///    it: the header exists so that a *client* detects proxies that drop trailers, the
    ///    server needs nothing from it, and grpc-go also accepts its absence.
    /// 4. `:path` is a ``GRPCMethodPath``, else UNIMPLEMENTED.
    /// 5. `grpc-encoding`, when present, is `identity`, else UNIMPLEMENTED (the spec's
    ///    compression doc: the server answers an encoding it lacks with UNIMPLEMENTED and a
    ///    `grpc-accept-encoding` header listing what it accepts; the caller adds
    ///    `grpc-accept-encoding: identity` to that response).
    /// 6. `grpc-timeout`, when present, parses as a ``GRPCTimeout``, else INTERNAL.
    ///
    /// Failures 1–3 mean the peer is not a gRPC client (or a proxy broke the request), so the
    /// answer is a plain HTTP error; 4–6 are answered as a gRPC Trailers-Only response with
    /// `:status 200`, so a real gRPC client sees the code and message. The first value of a
    /// repeated field is used. Everything else not reserved becomes ``metadata`` (see
    /// ``GRPCMetadata/init(wireHeaders:)``).
    /// - Parameter knownPath: a `:path` value already known to be well formed, with its
    ///   parse (a server passes its registered methods'), tried before parsing.
    /// - Throws: ``GRPCRequestHeadError`` with the HTTP status, gRPC code and message to answer.
    public init(validating fields: [(name: String, value: String)],
                knownPath: (String) -> GRPCMethodPath? = { _ in nil }) throws(GRPCRequestHeadError) {
        try self.init(validatingFields: fields, knownPath: knownPath)
    }

    /// ``init(validating:knownPath:)`` for any sequence of fields (a lazy view of a
    /// transport's own header type, say, so nothing is copied).
    init(validatingFields fields: some Sequence<(name: String, value: String)>,
         knownPath: (String) -> GRPCMethodPath?) throws(GRPCRequestHeadError) {
        var method: String?
        var contentType: String?
        var te: String?
        var pathValue: String?
        var encoding: String?
        var timeoutValue: String?
        var authority: String?
        var userAgent: String?
        var acceptEncoding: String?
        var mayHaveMetadata = false
        for (name, value) in fields {
            // The length first: a name compared with each case in turn would cost a string
            // comparison per case, for every field of every request.
            switch name.utf8.count {
            case 2 where name == "te": if te == nil { te = value }
            case 5 where name == ":path": if pathValue == nil { pathValue = value }
            case 7 where name == ":method": if method == nil { method = value }
            case 7 where name == ":scheme": break
            case 10 where name == ":authority": if authority == nil { authority = value }
            case 10 where name == "user-agent": if userAgent == nil { userAgent = value }
            case 12 where name == "content-type": if contentType == nil { contentType = value }
            case 12 where name == "grpc-timeout": if timeoutValue == nil { timeoutValue = value }
            case 13 where name == "grpc-encoding": if encoding == nil { encoding = value }
            case 20 where name == "grpc-accept-encoding": if acceptEncoding == nil { acceptEncoding = value }
            default: mayHaveMetadata = true
            }
        }

        guard method == "POST" else {
            throw GRPCRequestHeadError(httpStatus: 405, code: .internal, message: "HTTP method \(method ?? "(none)") is not supported; gRPC uses POST")
        }
        guard let contentType, contentType == "application/grpc" || Self.isGRPCContentType(contentType) else {
            throw GRPCRequestHeadError(httpStatus: 415, code: .internal, message: "content-type \(contentType ?? "(none)") is not supported; expected application/grpc")
        }
        if let te, te != "trailers", !Self.asciiCaseInsensitiveEquals(te.utf8[...], "trailers") {
            throw GRPCRequestHeadError(httpStatus: 400, code: .internal, message: "te must be 'trailers', not '\(te)'")
        }
        guard let pathValue, let path = knownPath(pathValue) ?? GRPCMethodPath(path: pathValue) else {
            throw GRPCRequestHeadError(httpStatus: 200, code: .unimplemented, message: "malformed method path '\(pathValue ?? "")'")
        }
        if let encoding, encoding != "identity" {
            throw GRPCRequestHeadError(httpStatus: 200, code: .unimplemented, message: "grpc-encoding '\(encoding)' is not supported; this server accepts identity only")
        }
        var timeout: GRPCTimeout?
        if let timeoutValue {
            do {
                timeout = try GRPCTimeout(parsing: timeoutValue)
            } catch {
                // The client's mistake, so INVALID_ARGUMENT (grpc-go says INTERNAL; gRPC core
                // ignores the header, which would run the call with no deadline at all).
                throw GRPCRequestHeadError(httpStatus: 200, code: .invalidArgument, message: "malformed grpc-timeout '\(timeoutValue)'")
            }
        }

        self.path = path
        self.authority = authority
        self.timeout = timeout
        self.userAgent = userAgent
        self.acceptEncodings = acceptEncoding.map(Self.splitEncodings) ?? []
        self.metadata = mayHaveMetadata ? GRPCMetadata(fields: fields) : GRPCMetadata()
    }

    /// The header fields a client sends, in the order the spec asks for: pseudo-headers,
    /// `te`, `grpc-timeout` right after, the other call-definition fields, then metadata.
    /// `scheme` is `https` over TLS and `http` over cleartext h2c.
    public func wireHeaders(scheme: String) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            (":method", "POST"),
            (":scheme", scheme),
            (":path", path.path),
        ]
        if let authority { fields.append((":authority", authority)) }
        if let timeout { fields.append(("grpc-timeout", timeout.wireValue)) }
        fields.append(("content-type", "application/grpc"))
        fields.append(("te", "trailers"))
        if !acceptEncodings.isEmpty { fields.append(("grpc-accept-encoding", acceptEncodings.joined(separator: ","))) }
        if let userAgent { fields.append(("user-agent", userAgent)) }
        fields.append(contentsOf: metadata.wireHeaders)
        return fields
    }

    /// `application/grpc` or `application/grpc+proto`, then the end or `;` parameters
    /// (optional whitespace before `;`).
    static func isGRPCContentType(_ value: String) -> Bool {
        let utf8 = value.utf8[...]
        for accepted in ["application/grpc+proto", "application/grpc"] where utf8.count >= accepted.utf8.count {
            let end = utf8.index(utf8.startIndex, offsetBy: accepted.utf8.count)
            guard asciiCaseInsensitiveEquals(utf8[..<end], accepted) else { continue }
            let rest = utf8[end...].drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            if rest.isEmpty || rest.first == UInt8(ascii: ";") { return true }
        }
        return false
    }

    private static func asciiCaseInsensitiveEquals(_ bytes: Substring.UTF8View, _ lowercase: String) -> Bool {
        bytes.count == lowercase.utf8.count
            && zip(bytes, lowercase.utf8).allSatisfy { a, b in
                ((UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(a) ? a | 0x20 : a) == b
            }
    }

    private static func splitEncodings(_ value: String) -> [String] {
        // Coding names are tokens, so dropping every space and tab only trims.
        value.split(separator: ",").compactMap { part in
            let name = part.filter { $0 != " " && $0 != "\t" }
            return name.isEmpty ? nil : name
        }
    }
}

/// Why a request was refused, and how to answer it.
///
/// `httpStatus` 200 means: answer with a gRPC Trailers-Only response (`:status 200`,
/// `content-type: application/grpc`, `grpc-status`, `grpc-message`). Any other value means:
/// answer with that HTTP status (a gRPC client maps it through
/// ``GRPCStatusCode/init(httpStatus:)``); sending `grpc-status`/`grpc-message` as well is
/// harmless and helps a human reading the response.
public struct GRPCRequestHeadError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The HTTP status to answer with: 200, 400, 405 or 415.
    public let httpStatus: Int
    /// The gRPC code to answer with.
    public let code: GRPCStatusCode
    /// What was wrong, for the `grpc-message`.
    public let message: String

    /// The gRPC status to answer with.
    public var status: GRPCStatus { GRPCStatus(code: code, message: message) }

    /// E.g. `HTTP 415, INTERNAL: content-type text/html is not supported …`.
    public var description: String { "HTTP \(httpStatus), \(code): \(message)" }
}
