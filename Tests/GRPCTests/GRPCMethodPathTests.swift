import Testing
@testable import GRPC

@Suite struct GRPCMethodPathTests {
    @Test func specExamplePathSplitsIntoServiceAndMethod() throws {
        let path = try #require(GRPCMethodPath(path: "/google.pubsub.v2.PublisherService/CreateTopic"))
        #expect(path.service == "google.pubsub.v2.PublisherService")
        #expect(path.method == "CreateTopic")
        #expect(path.path == "/google.pubsub.v2.PublisherService/CreateTopic")
    }

    @Test func serviceWithoutPackageIsAccepted() {
        #expect(GRPCMethodPath(path: "/Echo/Say_hi2")?.service == "Echo")
        #expect(GRPCMethodPath(path: "/_a._b/_c")?.method == "_c")
    }

    @Test(arguments: [
        "", "/", "//", "/a.B", "/a.B/", "//Method", "a.B/C", "/a.B/C/", "/a.B/C/D", "/a..B/C", "/.a/C", "/a./C",
        "/a.B/C?x=1", "/a.B/C#f", "/a B/C", "/a.B/%43", "/1a/C", "/a.B/9C", "/a-b.C/D", "/é/C", "/a.B/C ",
    ])
    func malformedPathIsRejected(path: String) {
        #expect(GRPCMethodPath(path: path) == nil)
    }

    @Test func pathIsCaseSensitive() {
        #expect(GRPCMethodPath(path: "/a.B/C") != GRPCMethodPath(path: "/a.b/C"))
    }

    @Test func builtPathRoundTripsThroughParsing() throws {
        let path = try #require(GRPCMethodPath(service: "tether.agent.v1.AgentService", method: "Connect"))
        #expect(GRPCMethodPath(path: path.path) == path)
        #expect(GRPCMethodPath(service: "a/b", method: "C") == nil)
        #expect(GRPCMethodPath(service: "a.B", method: "") == nil)
    }
}
