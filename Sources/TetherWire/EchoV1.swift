internal import TetherProtoC

/// `tether.testing.v1`: the echo service used by transport tests and benchmarks.
public enum EchoV1 {}

extension EchoV1 {
    /// `EchoRequest`: what to echo and how the server should behave.
    public struct EchoRequest: WireMessage {
        /// Bytes to send back.
        public var payload: [UInt8] = []
        /// Text to send back.
        public var text = ""
        /// Expand: how many responses to send.
        public var `repeat`: UInt32 = 0
        /// Wait this long before answering.
        public var delayMs: UInt64 = 0
        /// If non-zero, fail the call with this gRPC status code.
        public var failWithCode: UInt32 = 0
        /// The status message to fail with.
        public var failWithMessage = ""
        /// Size of the payload to send back instead of echoing (0: echo).
        public var responseSize: UInt32 = 0

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Testing__V1__EchoRequest.self, tether__testing__v1__echo_request__init)
        public init(from r: WireReader) throws(WireError) {
            payload = r.value(1)
            text = try r.value(2)
            `repeat` = r.value(3)
            delayMs = r.value(4)
            failWithCode = r.value(5)
            failWithMessage = try r.value(6)
            responseSize = r.value(7)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, payload)
            try w.set(2, text)
            w.set(3, `repeat`)
            w.set(4, delayMs)
            w.set(5, failWithCode)
            try w.set(6, failWithMessage)
            w.set(7, responseSize)
        }
    }

    /// `EchoResponse`: the echo.
    public struct EchoResponse: WireMessage {
        /// The request's payload (or `responseSize` bytes).
        public var payload: [UInt8] = []
        /// The request's text.
        public var text = ""
        /// 0-based index of this response within the call.
        public var index: UInt32 = 0
        /// Custom request metadata the server saw, "key=value", sorted.
        public var metadata: [String] = []

        public init() {}
        public static let wireDescriptor = WireDescriptor(Tether__Testing__V1__EchoResponse.self, tether__testing__v1__echo_response__init)
        public init(from r: WireReader) throws(WireError) {
            payload = r.value(1)
            text = try r.value(2)
            index = r.value(3)
            metadata = try r.values(4)
        }
        public func write(to w: WireWriter) throws(WireError) {
            w.set(1, payload)
            try w.set(2, text)
            w.set(3, index)
            try w.set(4, metadata)
        }
    }

    /// Every message of the package.
    static let messageTypes: [any WireMessage.Type] = [EchoRequest.self, EchoResponse.self]
}
