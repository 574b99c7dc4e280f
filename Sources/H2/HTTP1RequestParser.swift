internal import CHTTPParser

/// An HTTP/1.1 request as parsed, before a connection adds what it knows (peer, TLS).
public struct HTTP1ParsedRequest: Sendable {
    public var method: String
    public var target: String
    public var version: HTTPRequest.Version
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// Whether the connection may carry another request after this one's response
    /// (HTTP/1.1 without `Connection: close`, HTTP/1.0 with `keep-alive`).
    public var keepAlive: Bool
    /// `Upgrade` or CONNECT: the parser stops at this request, so the connection must close
    /// after answering it (we never switch protocols).
    public var upgrade: Bool
}

/// Why a request could not be read, with the status to answer before closing.
public struct HTTP1ParseError: Error, Equatable, CustomStringConvertible, Sendable {
    /// 400, 413, 431, 501 or 505.
    public let status: Int
    public let message: String

    static func malformed(_ why: String) -> HTTP1ParseError { HTTP1ParseError(status: 400, message: "malformed request: \(why)") }

    public var description: String { "\(status): \(message)" }
}

/// The one owner of an `http_parser` (nodejs http_parser 2.9): feeds it bytes and builds
/// requests, one at a time, within `HTTPConfiguration`'s size limits.
///
/// `parse` stops after each complete request (the parser pauses there), so a connection
/// answers pipelined requests in order and keeps the bytes after one for later. After a
/// failure the parser is unusable: answer the error and close.
///
/// Threading: one thread at a time (a connection's loop); not Sendable.
public final class HTTP1RequestParser {
    /// What one `parse` call got to.
    public enum Progress {
        /// Every byte was taken; the request is not complete yet.
        case needMore
        /// A request is complete after the first `consumed` bytes; parse the rest (pipelined
        /// requests) after answering it.
        case request(HTTP1ParsedRequest, consumed: Int)
        case failed(HTTP1ParseError)
    }

    private let limits: HTTPConfiguration
    private let parser: UnsafeMutablePointer<http_parser>
    private let settings: UnsafeMutablePointer<http_parser_settings>

    // The request being read.
    private var url: [UInt8] = []
    private var headers: [HTTPHeader] = []
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var inValue = false
    /// Bytes of the head so far, counted from what the callbacks see (request target, field
    /// names and values) plus 4 per field for its separator and line end.
    private var headBytes = 0
    private var body: [UInt8] = []
    private var completed: HTTP1ParsedRequest?
    /// A failure a callback detected (the parser only knows "callback failed").
    private var failure: HTTP1ParseError?

    /// Whether a request has begun and its head is not complete yet.
    public private(set) var isReadingHead = false
    /// Whether a request has begun and is not complete yet.
    public private(set) var isInsideRequest = false
    /// Set when a head completes: it asked for `Expect: 100-continue` and its body is still
    /// to come. The connection answers 100 Continue and clears it.
    public var expectsContinue = false
    /// Counts completed heads, so a caller sees when one completed inside `parse`.
    public private(set) var headsCompleted = 0

    public init(limits: HTTPConfiguration) {
        self.limits = limits
        parser = .allocate(capacity: 1)
        settings = .allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
        http_parser_settings_init(settings)
        settings.pointee.on_message_begin = onMessageBegin
        settings.pointee.on_url = onURL
        settings.pointee.on_header_field = onHeaderField
        settings.pointee.on_header_value = onHeaderValue
        settings.pointee.on_headers_complete = onHeadersComplete
        settings.pointee.on_body = onBody
        settings.pointee.on_message_complete = onMessageComplete
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deallocate()
        settings.deallocate()
    }

    /// Feeds `bytes` (valid during the call only) to the parser.
    public func parse(_ bytes: UnsafeRawBufferPointer) -> Progress {
        if let failure { return .failed(failure) }
        if http_errno(parser.pointee.http_errno) == HPE_PAUSED { http_parser_pause(parser, 0) }
        guard !bytes.isEmpty else { return .needMore }
        let consumed = http_parser_execute(parser, settings, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
        let errno = http_errno(parser.pointee.http_errno)
        if let completed, errno == HPE_PAUSED || errno == HPE_OK {
            self.completed = nil
            return .request(completed, consumed: consumed)
        }
        if errno != HPE_OK {
            let error = failure ?? Self.error(for: errno)
            failure = error
            return .failed(error)
        }
        return .needMore
    }

    private var headTooLarge: HTTP1ParseError {
        HTTP1ParseError(status: 431, message: "request line and header fields exceed \(limits.maxHeadBytes) bytes")
    }

    private static func error(for errno: http_errno) -> HTTP1ParseError {
        switch errno {
        case HPE_INVALID_METHOD:
            return HTTP1ParseError(status: 501, message: "method not implemented")
        case HPE_HEADER_OVERFLOW:
            return HTTP1ParseError(status: 431, message: "request line and header fields too large")
        default:
            return .malformed(String(cString: http_errno_description(errno)))
        }
    }

    // MARK: Callbacks (forwarded from the C functions below); nonzero fails the parse.

    fileprivate func messageBegan() -> Int32 {
        url.removeAll(keepingCapacity: true)
        headers = []
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        inValue = false
        headBytes = 16   // method, version and line ends of the request line
        body = []
        expectsContinue = false
        isReadingHead = true
        isInsideRequest = true
        return 0
    }

    fileprivate func urlPart(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        url.append(contentsOf: bytes)
        headBytes += bytes.count
        return checkHeadSize()
    }

    fileprivate func fieldPart(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        if inValue, endField() != 0 { return 1 }
        field.append(contentsOf: bytes)
        headBytes += bytes.count
        return checkHeadSize()
    }

    fileprivate func valuePart(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        inValue = true
        value.append(contentsOf: bytes)
        headBytes += bytes.count
        return checkHeadSize()
    }

    /// Adds the field just read; nonzero (and a 400) for a name that is not an RFC 9110
    /// token: Debian builds http_parser without HTTP_PARSER_STRICT, which lets a space into
    /// names ("Content-Length : 5"), a classic way to smuggle a second reading of a request.
    private func endField() -> Int32 {
        guard !field.isEmpty, field.allSatisfy(Self.isTokenCharacter) else {
            failure = .malformed("invalid header field name '\(String(decoding: field.prefix(64), as: UTF8.self))'")
            return 1
        }
        headers.append(HTTPHeader(String(decoding: field, as: UTF8.self).lowercased(), String(decoding: value, as: UTF8.self)))
        headBytes += 4
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        inValue = false
        return 0
    }

    /// tchar (RFC 9110 5.6.2).
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// http_parser's own limit (80 KiB) is a process-wide setting we leave alone; this is ours.
    private func checkHeadSize() -> Int32 {
        guard headBytes > limits.maxHeadBytes else { return 0 }
        failure = headTooLarge
        return 1
    }

    fileprivate func headersCompleted() -> Int32 {
        if inValue || !field.isEmpty, endField() != 0 { return -1 }
        isReadingHead = false
        headsCompleted += 1
        if checkHeadSize() != 0 { return -1 }
        let major = parser.pointee.http_major, minor = parser.pointee.http_minor
        guard major == 1 else {
            failure = HTTP1ParseError(status: 505, message: "HTTP/\(major).\(minor) is not supported; use HTTP/1.1 (or HTTP/2)")
            return -1
        }
        let length = parser.pointee.content_length
        // http_parser keeps ULLONG_MAX here when there is no Content-Length.
        if length != .max, length > UInt64(limits.maxBodyBytes) {
            failure = bodyTooLarge
            return -1
        }
        if minor >= 1, length != .max ? length > 0 : parser.pointee.flags & 1 != 0,   // F_CHUNKED
           let expect = headers["expect"], expect.lowercased() == "100-continue" {
            expectsContinue = true
        }
        return 0
    }

    private var bodyTooLarge: HTTP1ParseError {
        HTTP1ParseError(status: 413, message: "request body exceeds \(limits.maxBodyBytes) bytes")
    }

    fileprivate func bodyPart(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard body.count + bytes.count <= limits.maxBodyBytes else {
            failure = bodyTooLarge
            return 1
        }
        body.append(contentsOf: bytes)
        return 0
    }

    fileprivate func messageCompleted() -> Int32 {
        let method = String(cString: http_method_str(http_method(parser.pointee.method)))
        let minor = parser.pointee.http_minor
        completed = HTTP1ParsedRequest(
            method: method, target: String(decoding: url, as: UTF8.self), version: minor == 0 ? .http1_0 : .http1_1,
            headers: headers, body: body, keepAlive: http_should_keep_alive(parser) != 0,
            upgrade: parser.pointee.upgrade != 0 || method == "CONNECT")
        headers = []
        body = []
        isInsideRequest = false
        expectsContinue = false
        http_parser_pause(parser, 1)
        return 0
    }
}

// MARK: - http_parser C callbacks: recover the parser, call one method.

private func owner(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTP1RequestParser {
    Unmanaged<HTTP1RequestParser>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
}

private func bytes(_ at: UnsafePointer<CChar>?, _ length: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: at, count: length)
}

private func onMessageBegin(_ parser: UnsafeMutablePointer<http_parser>?) -> Int32 {
    owner(parser).messageBegan()
}

private func onURL(_ parser: UnsafeMutablePointer<http_parser>?, _ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
    owner(parser).urlPart(bytes(at, length))
}

private func onHeaderField(_ parser: UnsafeMutablePointer<http_parser>?, _ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
    owner(parser).fieldPart(bytes(at, length))
}

private func onHeaderValue(_ parser: UnsafeMutablePointer<http_parser>?, _ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
    owner(parser).valuePart(bytes(at, length))
}

private func onHeadersComplete(_ parser: UnsafeMutablePointer<http_parser>?) -> Int32 {
    owner(parser).headersCompleted()
}

private func onBody(_ parser: UnsafeMutablePointer<http_parser>?, _ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
    owner(parser).bodyPart(bytes(at, length))
}

private func onMessageComplete(_ parser: UnsafeMutablePointer<http_parser>?) -> Int32 {
    owner(parser).messageCompleted()
}

/// The reason phrase of `status` (http_parser's table), "Unknown" for one it lacks.
func httpReasonPhrase(_ status: Int) -> String {
    guard (100...999).contains(status) else { return "Unknown" }
    let text = String(cString: http_status_str(http_status(UInt32(status))))
    return text == "<unknown>" ? "Unknown" : text
}
