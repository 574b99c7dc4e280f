import Foundation
import Testing
import TetherTestSupport
@testable import H2
#if canImport(Glibc)
import Glibc
#endif

/// `HTTP2Server` spreads connections over its loops: whichever loop the kernel wakes for a
/// new connection (nearly always the same idle one) hands it to the loop that owns fewest.
@Suite struct HTTP2ServerLoopsTests {
    init() { signal(SIGPIPE, SIG_IGN) }

    @Test func connectionsGoToTheLoopThatOwnsFewest() async throws {
        let loops = [try EventLoop.start(name: "loops-test-0"), try EventLoop.start(name: "loops-test-1")]
        let server = HTTP2Server(configuration: HTTP2Server.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil),
                                 loops: loops, delegate: AnswersNoContent(), httpHandler: { _ in .text(200, "ok") })
        let address = try server.start()
        var clients: [RawHTTPClient] = []
        // One at a time, each answered before the next opens: the loops count each as it comes.
        for _ in 0..<4 {
            let client = try RawHTTPClient(address)
            client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try client.readResponse().status == 200)
            clients.append(client)
        }
        #expect(server.connectionsPerLoop == [2, 2])
        // Closed connections no longer count; an odd number still spreads.
        clients = []
        #expect(await eventually { server.connectionsPerLoop == [0, 0] })
        for _ in 0..<3 {
            let client = try RawHTTPClient(address)
            client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try client.readResponse().status == 200)
            clients.append(client)
        }
        #expect(server.connectionsPerLoop.sorted() == [1, 2])
        clients = []
        await server.shutdown(graceful: false)
        for loop in loops { loop.stop() }
    }
}
