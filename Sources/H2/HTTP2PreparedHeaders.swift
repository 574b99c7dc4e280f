internal import CNGHTTP2

/// A header list laid out once as nghttp2 name/value pairs, for a block sent on every
/// request (a server's response headers, its OK trailers), so that sending it costs no
/// copying on our side. Immutable; share it across streams, connections and threads.
public final class HTTP2PreparedHeaders: @unchecked Sendable {
    // Safety: `bytes` and `pairs` are written in `init` only and freed in `deinit`.
    /// The fields, in order.
    public let headers: [HTTP2Header]
    private let bytes: UnsafeMutableBufferPointer<UInt8>
    let pairs: UnsafeMutableBufferPointer<nghttp2_nv>

    public init(_ headers: [HTTP2Header]) {
        self.headers = headers
        bytes = .allocate(capacity: max(byteCountOfFields(headers), 1))
        pairs = .allocate(capacity: max(headers.count, 1))
        layOut(headers, bytes: bytes, pairs: pairs)
    }

    deinit {
        bytes.deallocate()
        pairs.deallocate()
    }
}

/// Headers to send: as given, or prepared.
enum HTTP2HeaderBlock {
    case fields([HTTP2Header])
    case prepared(HTTP2PreparedHeaders)
}

/// The bytes `layOut` needs for `headers`.
func byteCountOfFields(_ headers: [HTTP2Header]) -> Int {
    headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
}

/// Lays `headers` out as nghttp2 name/value pairs: their bytes into `bytes` (at least
/// `byteCountOfFields(headers)`), one pair each into `pairs` (at least `headers.count`).
func layOut(_ headers: [HTTP2Header], bytes: UnsafeMutableBufferPointer<UInt8>, pairs: UnsafeMutableBufferPointer<nghttp2_nv>) {
    var next = 0
    for (i, header) in headers.enumerated() {
        let name = bytes.baseAddress! + next
        next += UnsafeMutableBufferPointer(rebasing: bytes[next...]).initialize(fromContentsOf: header.name.utf8)
        let value = bytes.baseAddress! + next
        next += UnsafeMutableBufferPointer(rebasing: bytes[next...]).initialize(fromContentsOf: header.value.utf8)
        pairs.initializeElement(at: i, to: nghttp2_nv(
            name: name, value: value, namelen: header.name.utf8.count, valuelen: header.value.utf8.count,
            flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
    }
}
