import Foundation
import Testing
import TetherTestSupport
@testable import H2
#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 beside HTTP/2 on one port (`HTTP2Server` with an `HTTPHandler`), driven with
/// raw sockets so every byte on the wire is the test's.
@Suite struct HTTP1ConnectionTests {
    /// Echoes what it received: "METHOD path?query body", and the request's version in a header.
    static let echo: HTTPHandler = { request in
        if request.path == "/slow" { try? await Task.sleep(for: .milliseconds(50)) }   // answers after the next ones could
        let text = "\(request.method) \(request.target) \(String(decoding: request.body, as: UTF8.self))"
        return .text(200, text, headers: [HTTPHeader("x-version", request.version.description)])
    }

    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func keepAliveServesTwoRequestsOnOneConnection() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = try client.readResponse()
        client.send("GET /two?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        let second = try client.readResponse()
        #expect(first.status == 200 && first.body == "GET /one \n")
        #expect(first.header("connection") == nil)
        #expect(first.header("x-version") == "HTTP/1.1")
        #expect(second.body == "GET /two?q=1 \n")
        #expect(fixture.server.openConnections == 1)
        await fixture.stop()
    }

    @Test func connectionCloseIsHonouredAfterTheResponse() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.header("connection") == "close")
        #expect(try client.isClosedByServer())
        await fixture.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        let bodies = try (0..<3).map { _ in try client.readResponse().body }
        #expect(bodies == ["GET /slow \n", "POST /a abc\n", "GET /b \n"])
        await fixture.stop()
    }

    @Test func chunkedRequestBodyReachesTheHandlerWhole() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        client.send("6\r\n world\r\n0\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.body == "POST /upload hello world\n")
        await fixture.stop()
    }

    @Test func headGetsTheHeadWithoutTheBodyAndTheConnectionStaysUsable() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try client.readResponse(head: true)
        #expect(head.status == 200)
        #expect(head.header("content-length") == "\("HEAD /h \n".utf8.count)")
        client.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try client.readResponse().body == "GET /after \n")   // no stray body bytes before it
        await fixture.stop()
    }

    @Test func oversizedHeadIsAnswered431AndClosed() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \(String(repeating: "a", count: 17 << 10))\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 431)
        #expect(response.header("connection") == "close")
        #expect(try client.isClosedByServer())
        await fixture.stop()
    }

    @Test func headDrippedPastTheLimitIsAnswered431() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET / HTTP/1.1\r\nHost: x\r\n")
        for i in 0..<40 { client.send("X-Field-\(i): \(String(repeating: "b", count: 500))\r\n") }
        #expect(try client.readResponse().status == 431)
        await fixture.stop()
    }

    @Test func bodyOverTheLimitIsAnswered413BeforeItIsRead() async throws {
        let fixture = try HTTPServerFixture(configure: { $0.http.maxBodyBytes = 1000 }, handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 413)
        #expect(try client.isClosedByServer())
        await fixture.stop()
    }

    @Test func chunkedBodyOverTheLimitIsAnswered413() async throws {
        let fixture = try HTTPServerFixture(configure: { $0.http.maxBodyBytes = 1000 }, handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in 0..<3 { client.send("190\r\n\(String(repeating: "c", count: 400))\r\n") }
        #expect(try client.readResponse().status == 413)
        await fixture.stop()
    }

    @Test func malformedRequestIsAnswered400ThenClosed() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12z\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 400)
        #expect(response.header("connection") == "close")
        #expect(try client.isClosedByServer())
        await fixture.stop()
    }

    @Test func headerNameWithASpaceIsAnswered400() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello")
        #expect(try client.readResponse().status == 400)
        await fixture.stop()
    }

    @Test func http11RequestWithoutHostIsAnswered400() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET / HTTP/1.1\r\n\r\n")
        #expect(try client.readResponse().status == 400)
        await fixture.stop()
    }

    @Test func otherHTTPVersionIsAnswered505AndUnknownMethod501() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let version = try RawHTTPClient(fixture.address)
        version.send("GET / HTTP/3.0\r\nHost: x\r\n\r\n")
        #expect(try version.readResponse().status == 505)
        let method = try RawHTTPClient(fixture.address)
        method.send("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try method.readResponse().status == 501)
        await fixture.stop()
    }

    @Test func http10GetsItsAnswerAndTheConnectionCloses() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET /old HTTP/1.0\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.body == "GET /old \n")
        #expect(response.header("x-version") == "HTTP/1.0")
        #expect(try client.isClosedByServer())
        await fixture.stop()
    }

    @Test func expectContinueGets100BeforeTheBodyIsSent() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        #expect(String(decoding: try client.readBytes(25), as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        client.send("data")
        #expect(try client.readResponse().body == "PUT /p data\n")
        await fixture.stop()
    }

    @Test func slowHeadIsClosedAtTheHeaderTimeout() async throws {
        let fixture = try HTTPServerFixture(configure: { $0.http.headerTimeout = .milliseconds(300) }, handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        let started = ContinuousClock.now
        client.send("GET / HTTP/1.1\r\nHost: x\r\n")   // and never the blank line
        #expect(try client.isClosedByServer())
        #expect(ContinuousClock.now - started >= .milliseconds(250))
        await fixture.stop()
    }

    @Test func idleKeptAliveConnectionIsClosedAtTheIdleTimeout() async throws {
        let fixture = try HTTPServerFixture(configure: { $0.http.idleTimeout = .milliseconds(300) }, handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try client.readResponse()
        #expect(try client.isClosedByServer())
        await fixture.stop()
    }

    @Test func http2PrefaceOnTheSamePortIsServedAsHTTP2() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        // The preface in two writes, split inside it: the decision waits for all 24 bytes.
        client.send("PRI * HTTP/2.0\r\n")
        client.send(Array("\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])   // + an empty SETTINGS frame
        let frameHeader = try client.readBytes(9)
        #expect(frameHeader[3] == 0x4, "the server's first frame is SETTINGS")
        await fixture.stop()
    }

    @Test func nonPrefaceStartingLikeThePrefaceIsHTTP1() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("PRI * HTTP/1.1\r\nHost: x\r\n\r\n")   // the PRI method is only ever HTTP/2's preface
        let response = try client.readResponse()
        #expect(response.status == 400 || response.status == 501 || response.status == 200)
        #expect(response.status != 200 || response.body.hasPrefix("PRI"))
        await fixture.stop()
    }

    @Test func streamedResponseIsChunkedAndTheHandlerLearnsWhenTheClientLeaves() async throws {
        let gone = Signal<String>()
        let fixture = try HTTPServerFixture(handler: { _ in
            .stream(headers: [HTTPHeader("content-type", "text/event-stream")]) { writer in
                do {
                    var n = 0
                    while true {
                        try await writer.write("data: \(n)\n\n")
                        n += 1
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                } catch {
                    gone.fire("\(error)")
                    throw error
                }
            }
        })
        let client = try RawHTTPClient(fixture.address)
        client.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try client.readResponse(head: true)
        #expect(head.header("transfer-encoding") == "chunked")
        #expect(try client.readChunk() == "data: 0\n\n")
        #expect(try client.readChunk() == "data: 1\n\n")
        close(client.fd)
        let reason = await gone.wait(within: .seconds(10))
        #expect(reason?.contains("client gone") == true)
        await fixture.stop()
    }

    @Test func connectionCapCountsHTTP1ConnectionsToo() async throws {
        let fixture = try HTTPServerFixture(configure: { $0.maxConnections = 1 }, handler: Self.echo)
        let first = try RawHTTPClient(fixture.address)
        first.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try first.readResponse()
        let second = try RawHTTPClient(fixture.address)
        second.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try second.isClosedByServer())
        await fixture.stop()
    }

    @Test func gracefulShutdownClosesAnIdleConnection() async throws {
        let fixture = try HTTPServerFixture(handler: Self.echo)
        let client = try RawHTTPClient(fixture.address)
        client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try client.readResponse()
        await fixture.server.shutdown(graceful: true)
        #expect(try client.isClosedByServer())
        fixture.loop.stop()
    }

    @Test func requestTargetsSplitIntoPathAndQuery() {
        #expect(HTTPRequest.split("/a/b?x=1&y") == ("/a/b", "x=1&y"))
        #expect(HTTPRequest.split("/plain") == ("/plain", nil))
        #expect(HTTPRequest.split("http://host:80/p?q#frag") == ("/p", "q"))
        #expect(HTTPRequest.split("http://host") == ("/", nil))
        #expect(HTTPRequest.split("*") == ("*", nil))
    }
}
