import Foundation
import Testing
@testable import H2
#if canImport(Glibc)
import Glibc
#endif

/// The client side of a CONNECT exchange, driven by hand over a socketpair: the test writes
/// the proxy's side and reads what the client sent.
@Suite struct HTTPConnectProxyTests {
    static let proxy = HTTPConnectProxy(address: try! SocketAddress(parsing: "127.0.0.1:3128"))
    let sockets: SocketPair

    init() throws {
        signal(SIGPIPE, SIG_IGN)
        sockets = try SocketPair()
    }

    /// Writes `text` as the proxy.
    func answer(_ text: String) {
        let bytes = Array(text.utf8)
        #expect(write(sockets.server, bytes, bytes.count) == bytes.count)
    }

    /// Whatever is waiting on `fd`, as text.
    func pending(on fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }

    func advance(_ handshake: inout HTTPConnectHandshake, on fd: Int32? = nil)
        -> Result<HTTPConnectHandshake.Progress, HTTPConnectError> {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { scratch.deallocate() }
        return Result { () throws(HTTPConnectError) in try handshake.advance(fd: fd ?? sockets.client, scratch: scratch) }
    }

    @Test func requestNamesTheTargetInTheRequestLineAndHostAndCarriesBasicCredentials() throws {
        var proxy = Self.proxy
        proxy.username = "user"
        proxy.password = "pass"
        var handshake = try HTTPConnectHandshake(proxy: proxy, target: "example:443")
        #expect(try advance(&handshake).get() == .wantRead)
        #expect(pending(on: sockets.server)
                == "CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n")
    }

    @Test func withoutCredentialsNoProxyAuthorizationIsSent() throws {
        var handshake = try HTTPConnectHandshake(proxy: Self.proxy, target: "[::1]:50051")
        #expect(try advance(&handshake).get() == .wantRead)
        #expect(pending(on: sockets.server) == "CONNECT [::1]:50051 HTTP/1.1\r\nHost: [::1]:50051\r\n\r\n")
    }

    @Test func bytesBehindA2xxHeadStayOnTheSocket() throws {
        var handshake = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        answer("HTTP/1.1 200 Connection established\r\nVia: 1.1 squid\r\n\r\nfirst tunnel bytes")
        #expect(try advance(&handshake).get() == .done)
        #expect(pending(on: sockets.client) == "first tunnel bytes")
    }

    @Test func aHeadArrivingByteByByteCompletesOnItsLastByte() throws {
        var handshake = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        let head = "HTTP/1.0 204 \r\n\r\r\n\r\n"   // a stray CR inside must not end it early
        for (index, character) in head.enumerated() {
            answer(String(character))
            let expected: HTTPConnectHandshake.Progress = index == head.count - 1 ? .done : .wantRead
            #expect(try advance(&handshake).get() == expected, "after byte \(index)")
        }
        answer("next")
        #expect(pending(on: sockets.client) == "next")
    }

    @Test func aNon2xxAnswerIsARefusalNamingProxyTargetAndStatus() throws {
        var handshake = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        answer("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        #expect(advance(&handshake).failure == "proxy 127.0.0.1:3128 refused CONNECT to example:443: 403 Forbidden")
    }

    @Test func aCloseBeforeTheHeadEndsIsAnError() throws {
        var handshake = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        answer("HTTP/1.1 200 OK\r\n")
        shutdown(sockets.server, Int32(SHUT_WR))
        #expect(advance(&handshake).failure == "proxy closed the connection before answering CONNECT")
    }

    @Test func aHeadOfExactly8KiBPassesAndOneByteMoreDoesNot() throws {
        func head(_ size: Int) -> String {
            let start = "HTTP/1.1 200 OK\r\nX-Pad: ", end = "\r\n\r\n"
            return start + String(repeating: "a", count: size - start.utf8.count - end.utf8.count) + end
        }
        var fits = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        answer(head(8192))
        #expect(try advance(&fits).get() == .done)

        let other = try SocketPair()
        var tooLarge = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        let bytes = Array(head(8193).utf8)
        #expect(write(other.server, bytes, bytes.count) == bytes.count)
        #expect(advance(&tooLarge, on: other.client).failure == "proxy response head larger than 8 KiB")
    }

    @Test func aMalformedStatusLineIsAnError() throws {
        var handshake = try HTTPConnectHandshake(proxy: Self.proxy, target: "example:443")
        answer("SSH-2.0-OpenSSH_9.2\r\n\r\n")
        #expect(advance(&handshake).failure
                == "proxy 127.0.0.1:3128 answered CONNECT to example:443 with a malformed status line \"SSH-2.0-OpenSSH_9.2\"")
    }

    @Test func statusLinesParse() {
        func parse(_ line: String) -> String? {
            HTTPConnectHandshake.parseStatusLine(Array(line.utf8)).map { "\($0.code)|\($0.reason)" }
        }
        #expect(parse("HTTP/1.1 200 Connection established") == "200|Connection established")
        #expect(parse("HTTP/1.0 200") == "200|")
        #expect(parse("HTTP/1.1 407 Proxy Authentication Required") == "407|Proxy Authentication Required")
        #expect(parse("HTTP/1.1 502 Bad\u{7}Gateway") == "502|BadGateway")
        #expect(parse("HTTP/2 200") == nil)
        #expect(parse("HTTP/1.1 20 OK") == nil)
        #expect(parse("HTTP/1.1 2000 OK") == nil)
        #expect(parse("HTTP/1.1  200 OK") == nil)
    }

    @Test func targetsMustBeHostColonPortFitForARequestLine() {
        for bad in ["example", ":443", "example:", "example:99999", "exa mple:443", "example:443\r\nX-Injected: 1"] {
            #expect(throws: HTTPConnectError.self, "\(bad)") { try HTTPConnectHandshake(proxy: Self.proxy, target: bad) }
        }
    }

    @Test func base64MatchesRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
                       "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(base64(Array(plain.utf8)) == encoded, "\(plain)")
        }
        #expect(HTTPConnectProxy(address: Self.proxy.address, username: "Aladdin", password: "open sesame").authorization
                == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        #expect(Self.proxy.authorization == nil)
    }
}

extension Result where Failure == HTTPConnectError {
    /// The error's text, or nil on success.
    var failure: String? {
        if case .failure(let error) = self { return error.description }
        return nil
    }
}
