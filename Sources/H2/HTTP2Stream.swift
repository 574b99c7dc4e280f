internal import CNGHTTP2

/// Receives one stream's events. Every call is on the connection's event loop.
public protocol HTTP2StreamDelegate: AnyObject {
    /// Request headers (server), response headers (client), or trailers (both).
    func streamReceivedHeaders(_ stream: HTTP2Stream, _ headers: [HTTP2Header], endStream: Bool)
    /// A chunk of DATA; `bytes` is valid only during the call. An empty chunk with
    /// `endStream` marks the end of a stream whose last frame was DATA.
    func streamReceivedData(_ stream: HTTP2Stream, _ bytes: UnsafeRawBufferPointer, endStream: Bool)
    /// The stream is gone; no further calls follow and sends are ignored.
    func streamClosed(_ stream: HTTP2Stream, reason: HTTP2StreamCloseReason)
    /// Buffered outbound bytes fell to zero after being above `HTTP2Stream.lowWaterMark`.
    func streamWritable(_ stream: HTTP2Stream)
}

extension HTTP2StreamDelegate {
    public func streamWritable(_ stream: HTTP2Stream) {}
}

/// One HTTP/2 stream of an `HTTP2Connection`: headers, data and trailers out,
/// events in through its delegate.
///
/// Threading: use only on the connection's event loop. Outbound bytes are
/// buffered here and handed to nghttp2 as flow control allows; callers that
/// produce without bound must watch `bufferedBytes` and wait for `streamWritable`.
public final class HTTP2Stream {
    /// The HTTP/2 stream id.
    public let id: Int32
    /// The connection the stream belongs to; nil once the stream has closed. (Strong, not
    /// weak: a weak reference would give the connection a side table, and every retain and
    /// release of it would take the runtime's slow path. `close` breaks the cycle; the
    /// connection closes every stream when it ends.)
    public private(set) var connection: HTTP2Connection?
    /// Receives the stream's events.
    public var delegate: (any HTTP2StreamDelegate)?
    /// Arbitrary per-stream state for the layer above.
    public var context: AnyObject?

    /// Outbound chunks not yet taken by nghttp2, oldest first: `chunk` (of which
    /// `chunkOffset` bytes are taken), then `moreChunks`, empty while `chunk` is nil. One
    /// chunk, a unary response, needs no array.
    private var chunk: [UInt8]?
    private var moreChunks: [[UInt8]] = []
    private var chunkOffset = 0
    public private(set) var bufferedBytes = 0
    /// Above this many buffered bytes, the stream reports `streamWritable` when drained.
    public static let lowWaterMark = 256 << 10
    private var wantsWritable = false

    private enum Outbound {
        case idle              // nothing submitted yet (server: no response headers)
        case open              // headers sent, DATA may follow
        case ending(HTTP2HeaderBlock?)  // end requested: with trailers, or END_STREAM on DATA
        case done
    }
    private var outbound: Outbound = .idle
    private var dataDeferred = false
    /// RST_STREAM code to send once our END_STREAM has been sent.
    var resetAfterEnd: HTTP2ErrorCode?
    /// Headers received so far belong to the request/response (false) or trailers (true).
    var receivedInitialHeaders = false
    public private(set) var isClosed = false

    /// Receive flow control. `false` (the default): the stream's receive window reopens as
    /// soon as DATA has been delivered to the delegate. `true`: it reopens only by what the
    /// delegate reports with `consumed(_:)`, so a peer can send at most one stream window
    /// (`HTTP2Configuration.initialStreamWindow`) more than the delegate has processed.
    /// Set it before DATA arrives (when the delegate is attached).
    public var reportsConsumedData = false

    init(id: Int32, connection: HTTP2Connection) {
        self.id = id
        self.connection = connection
    }

    /// Server: sends the response headers; DATA and trailers may follow.
    /// Client streams send their headers when opened.
    public func sendResponseHeaders(_ headers: [HTTP2Header]) {
        sendResponseHeaders(.fields(headers))
    }

    /// Server: as `sendResponseHeaders(_:)`, with headers prepared once.
    public func sendResponseHeaders(_ headers: HTTP2PreparedHeaders) {
        sendResponseHeaders(.prepared(headers))
    }

    private func sendResponseHeaders(_ headers: HTTP2HeaderBlock) {
        guard case .idle = outbound, let connection, !isClosed else { return }
        outbound = .open
        connection.submitResponse(self, headers: headers, endStream: false)
    }

    /// Server: a response that is headers only and ends the stream
    /// (gRPC's Trailers-Only form). With `resetAfter`, RST_STREAM follows once the
    /// headers are on the wire, telling a client still sending to stop.
    public func sendHeadersOnly(_ headers: [HTTP2Header], resetAfter: HTTP2ErrorCode? = nil) {
        guard case .idle = outbound, let connection, !isClosed else { return }
        outbound = .done
        resetAfterEnd = resetAfter
        connection.submitResponse(self, headers: .fields(headers), endStream: true)
    }

    /// Queues DATA bytes.
    public func sendData(_ bytes: [UInt8]) {
        guard case .open = outbound, !isClosed, !bytes.isEmpty else { return }
        if chunk == nil { chunk = bytes } else { moreChunks.append(bytes) }
        bufferedBytes += bytes.count
        if bufferedBytes > Self.lowWaterMark { wantsWritable = true }
        resumeIfDeferred()
    }

    /// Ends our side of the stream after the queued DATA, with trailers if given.
    /// With `resetAfter`, RST_STREAM follows once the end is on the wire (RST is
    /// sent ahead of queued frames, so it must wait for them).
    public func finish(trailers: [HTTP2Header]? = nil, resetAfter: HTTP2ErrorCode? = nil) {
        finish(trailers.map { .fields($0) }, resetAfter: resetAfter)
    }

    /// As `finish(trailers:resetAfter:)`, with trailers prepared once.
    public func finish(trailers: HTTP2PreparedHeaders, resetAfter: HTTP2ErrorCode? = nil) {
        finish(.prepared(trailers), resetAfter: resetAfter)
    }

    private func finish(_ trailers: HTTP2HeaderBlock?, resetAfter: HTTP2ErrorCode?) {
        guard case .open = outbound, !isClosed else { return }
        outbound = .ending(trailers)
        resetAfterEnd = resetAfter
        resumeIfDeferred()
    }

    /// Sends RST_STREAM; the delegate then sees `streamClosed(.reset(code))`.
    public func reset(_ code: HTTP2ErrorCode = .cancel) {
        guard !isClosed, let connection else { return }
        connection.submitReset(self, code: code)
    }

    /// Reports `byteCount` bytes of delivered DATA as processed (with `reportsConsumedData`):
    /// the peer may send that much more (nghttp2 sends WINDOW_UPDATE once half the window
    /// is consumed). Every delivered byte must be reported once, or the stream stalls.
    public func consumed(_ byteCount: Int) {
        guard byteCount > 0, !isClosed, let connection else { return }
        connection.consume(self, byteCount)
    }

    /// Marks a client stream opened with a body provider as open.
    func markOpened() { outbound = .open }

    private func resumeIfDeferred() {
        guard dataDeferred, let connection else { return }
        dataDeferred = false
        connection.resumeData(self)
    }

    /// nghttp2's data source: copy up to `length` queued bytes into `buffer`.
    func readOutbound(into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        var written = 0
        while written < length, let first = chunk {
            let n = min(length - written, first.count - chunkOffset)
            first.withUnsafeBufferPointer { src in
                (buffer + written).update(from: src.baseAddress! + chunkOffset, count: n)
            }
            written += n
            chunkOffset += n
            if chunkOffset == first.count {
                chunk = moreChunks.isEmpty ? nil : moreChunks.removeFirst()
                chunkOffset = 0
            }
        }
        bufferedBytes -= written
        if chunk == nil, case .ending(let trailers) = outbound {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            outbound = .done
            if let trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                connection?.submitTrailers(self, trailers)
            }
            return written
        }
        if written == 0 {
            dataDeferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
        if bufferedBytes == 0 && wantsWritable {
            wantsWritable = false
            connection?.loop.executeSoon {
                guard !self.isClosed else { return }
                self.delegate?.streamWritable(self)
            }
        }
        return written
    }

    /// Called once by the connection when the stream ends.
    func close(_ reason: HTTP2StreamCloseReason) {
        guard !isClosed else { return }
        isClosed = true
        connection = nil
        chunk = nil
        moreChunks = []
        bufferedBytes = 0
        let delegate = self.delegate
        self.delegate = nil
        delegate?.streamClosed(self, reason: reason)
        context = nil
    }
}
