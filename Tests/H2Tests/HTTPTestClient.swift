import Foundation
import Synchronization
import Testing
@testable import H2
#if canImport(Glibc)
import Glibc
#endif

/// An `HTTP2Server` with an `HTTPHandler` on one loop on 127.0.0.1 (any port). HTTP/2
/// streams get a 204 from `AnswersNoContent`, so a test can tell the two protocols apart.
final class HTTPServerFixture: Sendable {
    let loop: EventLoop
    let server: HTTP2Server
    let address: SocketAddress

    init(tls: TLSContext? = nil, configure: (inout HTTP2Server.Configuration) -> Void = { _ in },
         handler: @escaping HTTPHandler) throws {
        loop = try EventLoop.start(name: "http-test")
        var configuration = HTTP2Server.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: tls)
        configure(&configuration)
        server = HTTP2Server(configuration: configuration, loops: [loop], delegate: AnswersNoContent(), httpHandler: handler)
        address = try server.start()
    }

    func stop() async {
        await server.shutdown(graceful: false)
        loop.stop()
    }
}

/// Answers every HTTP/2 stream with a bare 204.
final class AnswersNoContent: HTTP2ServerDelegate, HTTP2StreamDelegate, @unchecked Sendable {
    func connection(_ connection: HTTP2Connection, didOpen stream: HTTP2Stream) -> any HTTP2StreamDelegate { self }
    func streamReceivedHeaders(_ stream: HTTP2Stream, _ headers: [HTTP2Header], endStream: Bool) {
        stream.sendHeadersOnly([HTTP2Header(":status", "204")])
    }
    func streamReceivedData(_ stream: HTTP2Stream, _ bytes: UnsafeRawBufferPointer, endStream: Bool) {}
    func streamClosed(_ stream: HTTP2Stream, reason: HTTP2StreamCloseReason) {}
}

/// A blocking TCP client that writes raw bytes and reads HTTP/1.1 responses. Every read
/// waits at most `deadline` (SO_RCVTIMEO), so a test never hangs on a server that does not
/// answer: it fails instead.
final class RawHTTPClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    static let deadline = 10

    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: String
        func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init(_ address: SocketAddress) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: Self.deadline, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let rc = address.withSockaddr { connect(fd, $0, $1) }
        guard rc == 0 else { throw Failure(description: "connect: errno \(errno)") }
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Reads more into `buffer`; false at EOF or reset.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &chunk, chunk.count)
        if n > 0 {
            buffer += chunk[0..<n]
            return true
        }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            throw Failure(description: "no answer within \(Self.deadline) s")
        }
        return false
    }

    private func take(_ count: Int) -> [UInt8] {
        let taken = Array(buffer.prefix(count))
        buffer.removeFirst(min(count, buffer.count))
        return taken
    }

    private func line() throws -> String {
        while true {
            if let end = buffer.firstIndex(of: 0x0a) {
                let bytes = take(end + 1)
                return String(decoding: bytes.dropLast(bytes.count >= 2 && bytes[bytes.count - 2] == 0x0d ? 2 : 1), as: UTF8.self)
            }
            guard try fill() else { throw Failure(description: "connection closed inside a response head") }
        }
    }

    /// The next response; `head` for the answer to a HEAD request (no body follows).
    func readResponse(head: Bool = false) throws -> Response {
        var status = try line()
        var parts = status.split(separator: " ", maxSplits: 2)
        while parts.count >= 2, parts[1] == "100" {   // an interim 100 Continue
            _ = try line()
            status = try line()
            parts = status.split(separator: " ", maxSplits: 2)
        }
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let code = Int(parts[1]) else {
            throw Failure(description: "not a status line: \(status)")
        }
        var headers: [(String, String)] = []
        while true {
            let field = try line()
            if field.isEmpty { break }
            guard let colon = field.firstIndex(of: ":") else { throw Failure(description: "bad field \(field)") }
            headers.append((field[..<colon].lowercased(), field[field.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = Response(status: code, headers: headers, body: "")
        if head { return response }
        if let length = response.header("content-length").flatMap({ Int($0) }) {
            while buffer.count < length {
                guard try fill() else { throw Failure(description: "connection closed inside a body") }
            }
            response.body = String(decoding: take(length), as: UTF8.self)
        } else if response.header("transfer-encoding") == "chunked" {
            while true {
                guard let size = Int(try line(), radix: 16) else { throw Failure(description: "bad chunk size") }
                while buffer.count < size + 2 {
                    guard try fill() else { throw Failure(description: "connection closed inside a chunk") }
                }
                response.body += String(decoding: take(size), as: UTF8.self)
                _ = take(2)
                if size == 0 { break }
            }
        }
        return response
    }

    /// The next chunk of a chunked body whose head was read with `readResponse(head: true)`.
    func readChunk() throws -> String {
        guard let size = Int(try line(), radix: 16) else { throw Failure(description: "bad chunk size") }
        while buffer.count < size + 2 {
            guard try fill() else { throw Failure(description: "connection closed inside a chunk") }
        }
        let text = String(decoding: take(size), as: UTF8.self)
        _ = take(2)
        return text
    }

    /// Raw bytes until at least `count` have arrived.
    func readBytes(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw Failure(description: "connection closed after \(buffer.count) bytes") }
        }
        return take(count)
    }

    /// Whether the server closes the connection (EOF or reset) within the read deadline,
    /// with nothing more sent before it.
    func isClosedByServer() throws -> Bool {
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            if n == 0 { return buffer.isEmpty }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure(description: "still open after \(Self.deadline) s") }
                return buffer.isEmpty   // ECONNRESET
            }
            buffer += chunk[0..<n]
        }
    }
}
