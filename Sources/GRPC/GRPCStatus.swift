/// A gRPC status code, as in the public gRPC status code list.
public struct GRPCStatusCode: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
}
