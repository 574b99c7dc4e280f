/// One RPC of a service in Protos/: its path and its request, response and call shape
/// as types. The generated code declares one per method (`ControlV1.ControlService.getRun`),
/// and the gRPC layer takes nothing else, so a misspelt method or a wrong request type
/// does not compile.
public struct RPCMethod<Request: WireMessage, Response: WireMessage, Shape: RPCCallShape>: Sendable, Hashable, CustomStringConvertible {
    /// `/package.Service/Method`, the HTTP/2 `:path`.
    public let path: String

    /// Only generated code declares methods; tests may declare others (`@_spi(Testing)`).
    @_spi(Testing) public init(path: String) { self.path = path }

    public var description: String { path }
}

/// How many messages each side of a call sends.
public protocol RPCCallShape: Sendable {}

/// The call shapes of `RPCMethod`.
public enum RPCShape {
    /// One request, one response.
    public enum Unary: RPCCallShape {}
    /// One request, a stream of responses.
    public enum ServerStreaming: RPCCallShape {}
    /// A stream of requests, one response.
    public enum ClientStreaming: RPCCallShape {}
    /// Streams both ways.
    public enum BidirectionalStreaming: RPCCallShape {}
}
