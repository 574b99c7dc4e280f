internal import TetherProtoC

/// `grpc.health.v1`: the standard gRPC health-checking messages.
public enum HealthV1 {}

extension HealthV1 {
    /// `grpc.health.v1.HealthCheckRequest`.
    public struct CheckRequest: WireMessage {
        /// The fully qualified service name; empty asks about the whole server.
        public var service = ""

        public init() {}
        public static let wireDescriptor = WireDescriptor(Grpc__Health__V1__HealthCheckRequest.self, grpc__health__v1__health_check_request__init)
        public init(from r: WireReader) throws(WireError) {
            service = try r.value(1)
        }
        public func write(to w: WireWriter) throws(WireError) {
            try w.set(1, service)
        }
    }

    /// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
    public enum ServingStatus: Int32, WireEnum {
        case unknown = 0, serving = 1, notServing = 2, serviceUnknown = 3
    }

    /// `grpc.health.v1.HealthCheckResponse`.
    public struct CheckResponse: WireMessage {
        /// The service's current status.
        public var status = ServingStatus.unknown

        public init() {}
        public static let wireDescriptor = WireDescriptor(Grpc__Health__V1__HealthCheckResponse.self, grpc__health__v1__health_check_response__init)
        public init(from r: WireReader) throws(WireError) {
            status = r.value(1)
        }
        public func write(to w: WireWriter) {
            w.set(1, status)
        }
    }

    /// Every message of the package.
    static let messageTypes: [any WireMessage.Type] = [CheckRequest.self, CheckResponse.self]
}
