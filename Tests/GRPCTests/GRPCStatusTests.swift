import Testing
@testable import GRPC

@Suite struct GRPCStatusTests {
    @Test func statusCodeKeepsItsNumber() {
        #expect(GRPCStatusCode(rawValue: 14).rawValue == 14)
    }

    @Test func allSeventeenCodesHaveTheirSpecNumbersAndNames() {
        let codes: [(GRPCStatusCode, Int, String)] = [
            (.ok, 0, "OK"), (.cancelled, 1, "CANCELLED"), (.unknown, 2, "UNKNOWN"),
            (.invalidArgument, 3, "INVALID_ARGUMENT"), (.deadlineExceeded, 4, "DEADLINE_EXCEEDED"),
            (.notFound, 5, "NOT_FOUND"), (.alreadyExists, 6, "ALREADY_EXISTS"),
            (.permissionDenied, 7, "PERMISSION_DENIED"), (.resourceExhausted, 8, "RESOURCE_EXHAUSTED"),
            (.failedPrecondition, 9, "FAILED_PRECONDITION"), (.aborted, 10, "ABORTED"),
            (.outOfRange, 11, "OUT_OF_RANGE"), (.unimplemented, 12, "UNIMPLEMENTED"),
            (.internal, 13, "INTERNAL"), (.unavailable, 14, "UNAVAILABLE"), (.dataLoss, 15, "DATA_LOSS"),
            (.unauthenticated, 16, "UNAUTHENTICATED"),
        ]
        for (code, number, name) in codes {
            #expect(code.rawValue == number)
            #expect(code.description == name)
            #expect(code.isKnown)
        }
    }

    @Test func unknownCodeNumberIsCarriedAndPrintedAsNumber() {
        let code = GRPCStatusCode(rawValue: 17)
        #expect(!code.isKnown)
        #expect(code.description == "CODE_17")
        #expect(!GRPCStatusCode(rawValue: -1).isKnown)
    }

    @Test(arguments: [
        (400, GRPCStatusCode.internal), (401, .unauthenticated), (403, .permissionDenied),
        (404, .unimplemented), (429, .unavailable), (502, .unavailable), (503, .unavailable),
        (504, .unavailable), (200, .unknown), (500, .unknown), (415, .unknown), (301, .unknown),
    ])
    func httpStatusMapsToTheSpecsGRPCCode(httpStatus: Int, code: GRPCStatusCode) {
        #expect(GRPCStatusCode(httpStatus: httpStatus) == code)
    }

    @Test func okStatusHasNoMessageAndNoMetadata() {
        #expect(GRPCStatus.ok.code == .ok)
        #expect(GRPCStatus.ok.message.isEmpty)
        #expect(GRPCStatus.ok.trailingMetadata.isEmpty)
        #expect(GRPCStatus.ok.description == "OK")
        #expect(GRPCStatus(code: .unavailable, message: "down").description == "UNAVAILABLE: down")
    }

    @Test func statusIsThrowableAsError() {
        func fail() throws(GRPCStatus) { throw GRPCStatus(code: .notFound, message: "no DAG") }
        #expect(throws: GRPCStatus(code: .notFound, message: "no DAG")) { try fail() }
    }

    @Test func trailersCarryStatusEncodedMessageThenMetadata() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("v1", forKey: "x-trace")
        let status = GRPCStatus(code: .unavailable, message: "agent 50% gone ✓", trailingMetadata: metadata)
        let fields = status.wireTrailers
        #expect(fields.map(\.name) == ["grpc-status", "grpc-message", "x-trace"])
        #expect(fields.map(\.value) == ["14", "agent 50%25 gone %E2%9C%93", "v1"])
    }

    @Test func okTrailersOmitEmptyMessage() {
        let fields = GRPCStatus.ok.wireTrailers
        #expect(fields.map(\.name) == ["grpc-status"])
        #expect(fields.map(\.value) == ["0"])
    }

    @Test func trailersRoundTripThroughTheirWireForm() throws {
        var metadata = GRPCMetadata()
        try metadata.addBinary([0, 1, 2, 255], forKey: "grpc-status-details-bin")
        try metadata.addString("b", forKey: "a")
        let status = GRPCStatus(code: .failedPrecondition, message: "héllo\n%", trailingMetadata: metadata)
        #expect(GRPCStatus(wireTrailers: status.wireTrailers) == status)
    }

    @Test func trailersWithoutGRPCStatusAreSynthesizedAsUnknown() {
        let status = GRPCStatus(wireTrailers: [("x-a", "b")])
        #expect(status.code == .unknown)
        #expect(status.message == "missing grpc-status")
        #expect(status.trailingMetadata.firstString(forKey: "x-a") == "b")
    }

    @Test func nonGRPCResponseIsMappedFromItsHTTPStatus() {
        let status = GRPCStatus(wireTrailers: [(":status", "503"), ("content-type", "text/html")])
        #expect(status.code == .unavailable)
        #expect(status.trailingMetadata.isEmpty)
        #expect(GRPCStatus(wireTrailers: [(":status", "404")]).code == .unimplemented)
        #expect(GRPCStatus(wireTrailers: [(":status", "200")]).code == .unknown)
    }

    @Test func grpcStatusWinsOverHTTPStatusInTrailersOnlyResponse() {
        let status = GRPCStatus(wireTrailers: [
            (":status", "200"), ("content-type", "application/grpc"),
            ("grpc-status", "5"), ("grpc-message", "no%20such%20run"),
        ])
        #expect(status == GRPCStatus(code: .notFound, message: "no such run"))
        #expect(GRPCStatus(wireTrailers: [(":status", "503"), ("grpc-status", "8")]).code == .resourceExhausted)
    }

    @Test(arguments: ["", "abc", "-1", "17", "1234567890", "1 "])
    func malformedOrUndefinedGRPCStatusBecomesUnknown(value: String) {
        let status = GRPCStatus(wireTrailers: [("grpc-status", value)])
        #expect(status.code == .unknown)
        #expect(status.message.contains("invalid grpc-status"))
    }

    @Test func undefinedGRPCStatusKeepsPeersMessage() {
        let status = GRPCStatus(wireTrailers: [("grpc-status", "99"), ("grpc-message", "odd")])
        #expect(status == GRPCStatus(code: .unknown, message: "odd"))
    }
}
