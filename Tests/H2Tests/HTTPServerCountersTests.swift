import Foundation
import Testing
@testable import H2
import TetherTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `HTTP2Server.counters`: what `/metrics` reports of the transport (connections, HTTP/2
/// streams, HTTP/1.1 requests, bytes), counted where the transport reads and writes.
@Suite struct HTTPServerCountersTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func countsHTTP1RequestBytesExactlyAndConnectionsUntilTheyClose() async throws {
        let fixture = try HTTPServerFixture { _ in .text(200, "hello") }
        let counters = fixture.server.counters
        let request = Array("GET /counted HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody".utf8)
        var client: RawHTTPClient? = try RawHTTPClient(fixture.address)
        client!.send(request)
        let response = try client!.readResponse()
        #expect(response.status == 200 && response.body == "hello\n")
        // The protocol detector's first bytes and the connection's later reads, each counted once.
        // The loop thread counts a write right after the system call returns, which may be
        // after the client has read the bytes: hence `eventually`.
        #expect(await eventually { counters.bytesReceived == request.count }, "received \(counters.bytesReceived)")
        #expect(await eventually { counters.bytesSent > "hello\n".utf8.count })
        #expect(counters.http1Requests == 1)
        #expect(counters.connectionsOpen == 1 && counters.connectionsAccepted == 1)
        client = nil   // closes the socket
        #expect(await eventually { counters.connectionsOpen == 0 })
        #expect(counters.connectionsAccepted == 1)
        await fixture.stop()
    }

    @Test func countsHTTP2StreamsOpenedAndClosed() async throws {
        let fixture = try HTTPServerFixture { _ in .text(200, "unused") }
        let counters = fixture.server.counters
        // Two connections (curl 7.88 fails to reuse an h2c prior-knowledge connection), a stream each.
        for path in ["/a", "/b"] {
            // On a thread of its own: curl blocks, and the cooperative pool must stay free for servers.
            let address = fixture.address
            let status = try await onThreadOfItsOwn {
                try Self.runProcess("/usr/bin/curl", ["-sS", "--max-time", "10", "--http2-prior-knowledge", "-o", "/dev/null",
                                                      "-w", "%{http_code}", "http://\(address)\(path)"])
            }
            #expect(status == "204", "answered by AnswersNoContent")
        }
        #expect(await eventually { counters.connectionsOpen == 0 })
        #expect(counters.streamsOpened == 2 && counters.streamsOpenNow == 0)
        #expect(counters.connectionsAccepted == 2 && counters.http1Requests == 0)
        #expect(counters.bytesReceived > 2 * 24 && counters.bytesSent > 0)   // the prefaces, SETTINGS, HEADERS
        await fixture.stop()
    }

    /// `executable ARGS`'s standard output; fails the test on another exit status.
    private static func runProcess(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe.closingOnExec(), errors = Pipe.closingOnExec()   // not inherited by children other tests start
        process.standardOutput = output
        process.standardError = errors
        try SpawnGuard.run { try process.run() }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problems = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(executable): \(String(decoding: problems, as: UTF8.self))")
        return String(decoding: data, as: UTF8.self)
    }
}
