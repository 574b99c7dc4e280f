#if canImport(Glibc)
internal import Glibc
#endif

/// An HTTP/1.1 proxy that opens TCP tunnels with CONNECT (RFC 9110 9.3.6), the kind
/// HTTPS_PROXY names. The proxy is spoken to in plaintext: TLS to the proxy itself is not
/// supported (TLS to the target runs inside the tunnel, end to end).
public struct HTTPConnectProxy: Sendable, Hashable {
    /// Where the proxy listens.
    public var address: SocketAddress
    /// Basic credentials (RFC 7617), sent as `Proxy-Authorization` with the CONNECT
    /// when `username` is set; a nil `password` sends an empty one.
    public var username: String?
    public var password: String?

    public init(address: SocketAddress, username: String? = nil, password: String? = nil) {
        self.address = address
        self.username = username
        self.password = password
    }

    /// The `Proxy-Authorization` value, or nil without credentials.
    var authorization: String? {
        guard let username else { return nil }
        return "Basic " + base64(Array("\(username):\(password ?? "")".utf8))
    }
}

/// A CONNECT tunnel that could not be opened, or a bad tunnel target: what happened, in words
/// that name the proxy step ("proxy 127.0.0.1:3128 refused CONNECT to example:443: 403
/// Forbidden").
public struct HTTPConnectError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The client side of one CONNECT exchange on a non-blocking socket already connected to the
/// proxy: writes the request, then reads the response head and stops exactly at its end.
/// The head is read with MSG_PEEK first and only its own bytes are taken off the socket, so
/// whatever the tunnel carries behind it (a proxy should send nothing before the client
/// speaks, but an h2c server's SETTINGS may arrive in the same segment) stays on the socket
/// for TLS or the HTTP/2 session to read, and level-triggered readiness stays exact.
///
/// Threading: one event-loop thread, like the connection that owns it.
struct HTTPConnectHandshake {
    enum Progress: Equatable { case done, wantRead, wantWrite }

    /// The longest response head accepted, status line and terminating blank line included.
    static let maximumHeadBytes = 8 * 1024

    let proxy: HTTPConnectProxy
    /// The tunnel's far end, "host:port", as sent in the request line.
    let target: String
    private let request: [UInt8]
    private var written = 0
    private var head: [UInt8] = []
    /// How much of the blank-line terminator "\r\n\r\n" ends `head` so far (0...3).
    private var terminatorMatched = 0

    /// - Throws: `HTTPConnectError` if `target` is not a "host:port" fit for a request line.
    init(proxy: HTTPConnectProxy, target: String) throws(HTTPConnectError) {
        guard let colon = target.lastIndex(of: ":"), UInt16(target[target.index(after: colon)...]) != nil,
              colon != target.startIndex,
              target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw HTTPConnectError("bad CONNECT target '\(target)': expected HOST:PORT")
        }
        self.proxy = proxy
        self.target = target
        var text = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let authorization = proxy.authorization { text += "Proxy-Authorization: \(authorization)\r\n" }
        request = Array((text + "\r\n").utf8)
    }

    /// Advances as far as the socket allows: `.done` once the proxy answered 2xx and the
    /// tunnel is open; else the readiness to wait for before calling again. `scratch` is
    /// working space (the loop's read buffer); nothing in it is kept between calls.
    /// - Throws: `HTTPConnectError` when the proxy refuses (non-2xx), closes first, answers
    ///   with a malformed or oversized head, or the socket fails.
    mutating func advance(fd: Int32, scratch: UnsafeMutableRawBufferPointer) throws(HTTPConnectError) -> Progress {
        while written < request.count {
            let start = written
            let sent: Int?
            do {
                sent = try request.withUnsafeBytes { (bytes) throws(SystemError) -> Int? in
                    try syscall("send") { send(fd, bytes.baseAddress! + start, bytes.count - start, Int32(MSG_NOSIGNAL)) }
                }
            } catch {
                throw HTTPConnectError("sending CONNECT to proxy \(proxy.address) failed: \(error)")
            }
            guard let sent else { return .wantWrite }
            written += sent
        }
        while true {
            let room = min(Self.maximumHeadBytes - head.count, scratch.count)
            let peeked: Int
            do {
                guard let n = try syscall("recv", { recv(fd, scratch.baseAddress, room, Int32(MSG_PEEK)) }) else {
                    return .wantRead
                }
                peeked = n
            } catch {
                throw HTTPConnectError("reading the answer to CONNECT from proxy \(proxy.address) failed: \(error)")
            }
            if peeked == 0 { throw HTTPConnectError("proxy closed the connection before answering CONNECT") }
            let (count, complete) = headBytes(in: UnsafeRawBufferPointer(rebasing: scratch[0..<peeked]))
            try take(count, from: fd, into: scratch)
            if complete {
                try checkStatus()
                return .done
            }
            if head.count >= Self.maximumHeadBytes {
                throw HTTPConnectError("proxy response head larger than \(Self.maximumHeadBytes / 1024) KiB")
            }
        }
    }

    /// How many of `bytes` (which follow `head`) belong to the head, and whether it ends there.
    private mutating func headBytes(in bytes: UnsafeRawBufferPointer) -> (count: Int, complete: Bool) {
        let terminator: [UInt8] = [0x0d, 0x0a, 0x0d, 0x0a]
        for (index, byte) in bytes.enumerated() {
            if byte == terminator[terminatorMatched] {
                terminatorMatched += 1
                if terminatorMatched == terminator.count { return (index + 1, true) }
            } else {
                terminatorMatched = byte == 0x0d ? 1 : 0
            }
        }
        return (bytes.count, false)
    }

    /// Takes `count` peeked bytes off the socket into `head`.
    private mutating func take(_ count: Int, from fd: Int32, into scratch: UnsafeMutableRawBufferPointer) throws(HTTPConnectError) {
        var taken = 0
        while taken < count {
            let start = taken
            let n: Int?
            do {
                n = try syscall("recv") { recv(fd, scratch.baseAddress! + start, count - start, 0) }
            } catch {
                throw HTTPConnectError("reading the answer to CONNECT from proxy \(proxy.address) failed: \(error)")
            }
            // The bytes were peeked, so they are there; anything else is the socket breaking.
            guard let n, n > 0 else { throw HTTPConnectError("proxy connection lost while reading its answer to CONNECT") }
            taken += n
        }
        head.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<count]))
    }

    /// Accepts a complete head whose status is 2xx.
    private func checkStatus() throws(HTTPConnectError) {
        let line = head.prefix { $0 != 0x0d && $0 != 0x0a }
        guard let status = Self.parseStatusLine(Array(line)) else {
            throw HTTPConnectError("proxy \(proxy.address) answered CONNECT to \(target) with a malformed status line "
                                   + "\"\(Self.printable(line))\"")
        }
        guard (200..<300).contains(status.code) else {
            let reason = status.reason.isEmpty ? "" : " \(status.reason)"
            throw HTTPConnectError("proxy \(proxy.address) refused CONNECT to \(target): \(status.code)\(reason)")
        }
    }

    /// The code and reason phrase of an HTTP/1.x status line ("HTTP/1.1 200 Connection
    /// established"), or nil if `line` is not one. The reason comes back printable ASCII only.
    static func parseStatusLine(_ line: [UInt8]) -> (code: Int, reason: String)? {
        let prefix = Array("HTTP/1.".utf8)
        guard line.count >= 12, line.starts(with: prefix), (0x30...0x39).contains(line[7]), line[8] == 0x20,
              line[9...11].allSatisfy({ (0x30...0x39).contains($0) }), line.count == 12 || line[12] == 0x20 else {
            return nil
        }
        let code = line[9...11].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        return (code, printable(line.dropFirst(13)))
    }

    /// Network text fit for an error message: printable ASCII, at most 200 characters.
    private static func printable(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.lazy.filter { $0 >= 0x20 && $0 < 0x7f }.prefix(200), as: UTF8.self)
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index < bytes.count {
        let chunk = bytes[index..<min(index + 3, bytes.count)]
        let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * $1.offset) }
        for position in 0..<4 {
            out.append(position <= chunk.count ? alphabet[Int(value >> (18 - 6 * position) & 0x3f)] : UInt8(ascii: "="))
        }
        index += 3
    }
    return String(decoding: out, as: UTF8.self)
}
