/// The method a call is for, as in the `:path` header: `/package.Service/Method`
/// (gRPC PROTOCOL-HTTP2, *Path*), e.g. `/grpc.health.v1.Health/Check`.
///
/// Validated: the service is one or more dot-separated identifiers (the protobuf package
/// and service name) and the method one identifier, where an identifier is
/// `[A-Za-z_][A-Za-z0-9_]*`. That is exactly what protobuf services produce; anything else
/// (a query string, an extra segment, percent-escapes) cannot name one of our methods, and
/// a server answers it UNIMPLEMENTED. Case-sensitive, as the spec says.
public struct GRPCMethodPath: Hashable, Sendable, CustomStringConvertible {
    /// Fully qualified service name, e.g. `grpc.health.v1.Health`.
    public let service: String
    /// Method name, e.g. `Check`.
    public let method: String
    /// The `:path` value, `/service/method`.
    public let path: String

    /// The path for `method` of `service`; `nil` if either is not well formed.
    public init?(service: String, method: String) {
        guard Self.isQualifiedName(service.utf8[...]), Self.isIdentifier(method.utf8[...]) else { return nil }
        self.service = service
        self.method = method
        self.path = "/\(service)/\(method)"
    }

    /// Parses a `:path` value; `nil` unless it is `/` service `/` method, both well formed.
    public init?(path: String) {
        let utf8 = path.utf8
        guard utf8.first == UInt8(ascii: "/") else { return nil }
        let rest = utf8.dropFirst()
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let service = rest[..<slash]
        let method = rest[rest.index(after: slash)...]
        guard Self.isQualifiedName(service), Self.isIdentifier(method) else { return nil }
        self.service = String(Substring(service))
        self.method = String(Substring(method))
        self.path = path
    }

    /// Same as ``path``.
    public var description: String { path }

    /// Identifiers joined by single dots.
    private static func isQualifiedName(_ name: Substring.UTF8View) -> Bool {
        var segmentStart = name.startIndex
        var index = name.startIndex
        while index != name.endIndex {
            if name[index] == UInt8(ascii: ".") {
                guard isIdentifier(name[segmentStart..<index]) else { return false }
                segmentStart = name.index(after: index)
            }
            index = name.index(after: index)
        }
        return isIdentifier(name[segmentStart...])
    }

    private static func isIdentifier(_ name: Substring.UTF8View) -> Bool {
        guard let first = name.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                true
            default:
                false
            }
        }
    }
}
