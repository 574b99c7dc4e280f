#if canImport(Glibc)
internal import Glibc
#endif

/// One HTTP/2 header field. Names are lower case on the wire (HTTP/2 requires it).
public struct HTTP2Header: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name): \(value)" }

    /// The String of a name or value that gRPC peers send on every call and that is too
    /// long to be stored inline (over 15 bytes), if `bytes` is one.
    static func common(_ bytes: UnsafeRawBufferPointer) -> String? {
        commonLongStrings.first { equals($0, bytes) }
    }

    /// Whether `string`'s UTF-8 is `bytes`.
    static func equals(_ string: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let utf8 = string.utf8
        guard utf8.count == bytes.count else { return false }
        return utf8.withContiguousStorageIfAvailable { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
            ?? utf8.elementsEqual(bytes)
    }

    private static let commonLongStrings = [
        "application/grpc", "application/grpc+proto", "grpc-accept-encoding", "identity,deflate,gzip",
        "identity, deflate, gzip",
    ]
}

extension Array where Element == HTTP2Header {
    /// The first value of `name`, if any.
    public subscript(name: String) -> String? {
        first { $0.name == name }?.value
    }
}

/// HTTP/2 error codes (RFC 9113 section 7).
public struct HTTP2ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noError = HTTP2ErrorCode(rawValue: 0x0)
    public static let protocolError = HTTP2ErrorCode(rawValue: 0x1)
    public static let internalError = HTTP2ErrorCode(rawValue: 0x2)
    public static let flowControlError = HTTP2ErrorCode(rawValue: 0x3)
    public static let settingsTimeout = HTTP2ErrorCode(rawValue: 0x4)
    public static let streamClosed = HTTP2ErrorCode(rawValue: 0x5)
    public static let frameSizeError = HTTP2ErrorCode(rawValue: 0x6)
    public static let refusedStream = HTTP2ErrorCode(rawValue: 0x7)
    public static let cancel = HTTP2ErrorCode(rawValue: 0x8)
    public static let compressionError = HTTP2ErrorCode(rawValue: 0x9)
    public static let connectError = HTTP2ErrorCode(rawValue: 0xa)
    public static let enhanceYourCalm = HTTP2ErrorCode(rawValue: 0xb)
    public static let inadequateSecurity = HTTP2ErrorCode(rawValue: 0xc)
    public static let http11Required = HTTP2ErrorCode(rawValue: 0xd)

    public var description: String {
        let names = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
                     "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
                     "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
        return rawValue < names.count ? names[Int(rawValue)] : "0x\(String(rawValue, radix: 16))"
    }
}

/// How a stream ended, as its delegate learns it.
public enum HTTP2StreamCloseReason: Sendable, Equatable {
    /// Both sides ended the stream normally.
    case finished
    /// RST_STREAM, sent by either side, or the stream was refused by GOAWAY.
    case reset(HTTP2ErrorCode)
    /// The connection closed (peer gone, keepalive timeout, protocol error, shutdown).
    case connectionClosed(String)
}

/// Per-connection HTTP/2 limits and timers. Defaults suit long-lived gRPC streams.
public struct HTTP2Configuration: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise.
    public var maxConcurrentStreams: UInt32 = 1000
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise (per stream).
    public var initialStreamWindow: Int32 = 1 << 20
    /// Connection-level receive window.
    public var connectionWindow: Int32 = 16 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise; larger header blocks are refused.
    public var maxHeaderListSize: UInt32 = 16 << 10
    /// SETTINGS_MAX_FRAME_SIZE we advertise.
    public var maxFrameSize: UInt32 = 16 << 10
    /// Send a PING after this long without receiving anything; nil disables.
    public var keepaliveInterval: Duration? = .seconds(30)
    /// Close the connection if a PING is not answered within this long.
    public var keepaliveTimeout: Duration = .seconds(20)
    /// After GOAWAY, how long in-flight streams get before the connection is closed.
    public var gracefulShutdownTimeout: Duration = .seconds(30)
    /// Stop reading from the peer while this many bytes wait to be written to it.
    public var maxPendingOutputBytes: Int = 1 << 20
    /// RST_STREAM flood protection: burst and per-second refill (CVE-2023-44487).
    public var streamResetBurst: UInt64 = 1000
    public var streamResetRatePerSecond: UInt64 = 33

    public init() {}
}
