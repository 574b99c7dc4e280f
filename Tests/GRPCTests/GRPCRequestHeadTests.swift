import Testing
@testable import GRPC

@Suite struct GRPCRequestHeadTests {
    /// The request of the spec's unary-call example, minus `grpc-encoding: gzip`.
    static let specRequest: [(name: String, value: String)] = [
        (":method", "POST"), (":scheme", "http"), (":path", "/google.pubsub.v2.PublisherService/CreateTopic"),
        (":authority", "pubsub.googleapis.com"), ("grpc-timeout", "1S"), ("content-type", "application/grpc+proto"),
        ("authorization", "Bearer y235.wef315yfh138vh31hv93hv8h3v"),
    ]

    static func replacing(_ name: String, with value: String?) -> [(name: String, value: String)] {
        var fields = specRequest.filter { $0.name != name }
        if let value { fields.append((name, value)) }
        return fields
    }

    static func refusal(_ fields: [(name: String, value: String)]) -> GRPCRequestHeadError? {
        do {
            _ = try GRPCRequestHead(validating: fields)
            return nil
        } catch {
            return error
        }
    }

    @Test func specExampleRequestIsAccepted() throws {
        let head = try GRPCRequestHead(validating: Self.specRequest)
        #expect(head.path.service == "google.pubsub.v2.PublisherService")
        #expect(head.path.method == "CreateTopic")
        #expect(head.authority == "pubsub.googleapis.com")
        #expect(head.timeout?.duration == .seconds(1))
        #expect(head.userAgent == nil)
        #expect(head.acceptEncodings.isEmpty)
        #expect(head.metadata.map(\.key) == ["authorization"])
        #expect(head.metadata.firstString(forKey: "authorization") == "Bearer y235.wef315yfh138vh31hv93hv8h3v")
    }

    @Test func aKnownPathIsTakenAsGivenAndAnUnknownOneIsStillParsed() throws {
        let registered = try #require(GRPCMethodPath(service: "google.pubsub.v2.PublisherService", method: "CreateTopic"))
        var asked: [String] = []
        let head = try GRPCRequestHead(validating: Self.specRequest) { text in
            asked.append(text)
            return text == registered.path ? registered : nil
        }
        #expect(asked == [registered.path])
        #expect(head.path == registered)
        // Not known: parsed as before, so a malformed path is still refused.
        let other = try GRPCRequestHead(validating: Self.replacing(":path", with: "/a.B/C")) { _ in nil }
        #expect(other.path.service == "a.B" && other.path.method == "C")
        #expect(throws: GRPCRequestHeadError.self) {
            try GRPCRequestHead(validating: Self.replacing(":path", with: "/a..B/C")) { _ in nil }
        }
    }

    @Test func optionalFieldsAreRecorded() throws {
        let head = try GRPCRequestHead(validating: Self.specRequest + [
            ("te", "trailers"), ("user-agent", "grpc-python/1.62.0 grpc-c/39.0.0 (linux; chttp2)"),
            ("grpc-accept-encoding", "identity, deflate,gzip"), ("grpc-encoding", "identity"),
            ("x-bin", "AQI"),
        ])
        #expect(head.userAgent == "grpc-python/1.62.0 grpc-c/39.0.0 (linux; chttp2)")
        #expect(head.acceptEncodings == ["identity", "deflate", "gzip"])
        #expect(head.metadata.map(\.key) == ["authorization", "x-bin"])
        #expect(head.metadata.firstBinary(forKey: "x-bin") == [1, 2])
    }

    @Test func missingTimeoutMeansNoDeadline() throws {
        #expect(try GRPCRequestHead(validating: Self.replacing("grpc-timeout", with: nil)).timeout == nil)
    }

    @Test(arguments: ["GET", "PUT", "post", ""])
    func nonPostMethodIsRefusedWith405(method: String) throws {
        let error = try #require(Self.refusal(Self.replacing(":method", with: method)))
        #expect(error.httpStatus == 405)
        #expect(error.code == .internal)
    }

    @Test func missingMethodIsRefusedWith405() throws {
        #expect(try #require(Self.refusal(Self.replacing(":method", with: nil))).httpStatus == 405)
    }

    @Test(arguments: [
        "application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8",
        "application/grpc+proto; x=y", "application/grpc ;q=1", "Application/GRPC",
    ])
    func grpcContentTypeIsAccepted(contentType: String) throws {
        _ = try GRPCRequestHead(validating: Self.replacing("content-type", with: contentType))
    }

    @Test(arguments: [
        "application/json", "application/grpc+json", "application/grpc-web", "application/grpc-web+proto",
        "application/grpcx", "application/grpc+", "text/html", "", "application/grp",
    ])
    func nonGRPCContentTypeIsRefusedWith415(contentType: String) throws {
        let error = try #require(Self.refusal(Self.replacing("content-type", with: contentType)))
        #expect(error.httpStatus == 415)
    }

    @Test func missingContentTypeIsRefusedWith415() throws {
        #expect(try #require(Self.refusal(Self.replacing("content-type", with: nil))).httpStatus == 415)
    }

    @Test func teOtherThanTrailersIsRefusedWith400() throws {
        let error = try #require(Self.refusal(Self.replacing("te", with: "gzip")))
        #expect(error.httpStatus == 400)
        #expect(error.code == .internal)
        _ = try GRPCRequestHead(validating: Self.replacing("te", with: "trailers"))
        _ = try GRPCRequestHead(validating: Self.replacing("te", with: "Trailers"))
    }

    @Test func absentTeIsAccepted() throws {
        #expect(!Self.specRequest.contains { $0.name == "te" })
        _ = try GRPCRequestHead(validating: Self.specRequest)
    }

    @Test(arguments: ["/", "/a.B", "/a.B/C/D", "/a.B/C?q", "x"])
    func malformedPathIsAnsweredUnimplementedInTrailersOnly(path: String) throws {
        let error = try #require(Self.refusal(Self.replacing(":path", with: path)))
        #expect(error.httpStatus == 200)
        #expect(error.code == .unimplemented)
        #expect(try #require(Self.refusal(Self.replacing(":path", with: nil))).code == .unimplemented)
    }

    @Test(arguments: ["gzip", "deflate", "snappy", "Identity"])
    func compressedEncodingIsAnsweredUnimplemented(encoding: String) throws {
        let error = try #require(Self.refusal(Self.replacing("grpc-encoding", with: encoding)))
        #expect(error.httpStatus == 200)
        #expect(error.code == .unimplemented)
        #expect(error.message.contains(encoding))
    }

    @Test(arguments: ["1", "100000000n", "S", "-1S", "1s"])
    func malformedTimeoutIsAnsweredInvalidArgument(timeout: String) throws {
        let error = try #require(Self.refusal(Self.replacing("grpc-timeout", with: timeout)))
        #expect(error.httpStatus == 200)
        #expect(error.code == .invalidArgument)
        #expect(error.status == GRPCStatus(code: .invalidArgument, message: error.message))
    }

    @Test func httpLevelFailuresAreReportedBeforeGRPCLevelOnes() throws {
        var fields = Self.replacing("content-type", with: "text/plain")
        fields = fields.filter { $0.name != ":path" } + [(":path", "bad"), ("grpc-encoding", "gzip")]
        #expect(try #require(Self.refusal(fields)).httpStatus == 415)
    }

    @Test func clientHeadersFollowTheSpecsOrder() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("Bearer t", forKey: "authorization")
        let head = GRPCRequestHead(
            path: try #require(GRPCMethodPath(service: "tether.agent.v1.AgentService", method: "Connect")),
            authority: "tether.example:443",
            timeout: GRPCTimeout(rounding: .seconds(30)),
            userAgent: "tether/1.0",
            acceptEncodings: ["identity"],
            metadata: metadata
        )
        let fields = head.wireHeaders(scheme: "https")
        #expect(fields.map(\.name) == [
            ":method", ":scheme", ":path", ":authority", "grpc-timeout", "content-type", "te",
            "grpc-accept-encoding", "user-agent", "authorization",
        ])
        #expect(fields.first { $0.name == "grpc-timeout" }?.value == "30000000u")
        #expect(try GRPCRequestHead(validating: fields) == head)
    }
}
