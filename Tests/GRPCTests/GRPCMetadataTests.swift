import Testing
import TetherTestSupport
@testable import GRPC

@Suite struct GRPCMetadataTests {
    @Test func entriesKeepInsertionOrderAndDuplicates() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("1", forKey: "b")
        try metadata.addString("2", forKey: "a")
        try metadata.addString("3", forKey: "b")
        #expect(metadata.map(\.key) == ["b", "a", "b"])
        #expect(metadata.values(forKey: "b") == [.string("1"), .string("3")])
        #expect(metadata.firstString(forKey: "b") == "1")
        #expect(metadata.count == 3)
        let wire = metadata.wireHeaders
        #expect(wire.map(\.name) == ["b", "a", "b"])
        #expect(wire.map(\.value) == ["1", "2", "3"])
    }

    @Test func keysAreLowerCasedAndLookedUpCaseInsensitively() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("t", forKey: "X-Request-ID")
        #expect(metadata.first?.key == "x-request-id")
        #expect(metadata.firstString(forKey: "X-REQUEST-id") == "t")
    }

    @Test func removeAllDropsEveryValueOfTheKeyOnly() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("1", forKey: "a")
        try metadata.addString("2", forKey: "b")
        try metadata.addString("3", forKey: "a")
        metadata.removeAll(forKey: "A")
        #expect(metadata.map(\.key) == ["b"])
    }

    @Test(arguments: ["", "a b", "a:b", "é", "a/b", ":path", "-bin", "x\n"])
    func malformedKeyIsRefused(key: String) {
        var metadata = GRPCMetadata()
        #expect(throws: GRPCMetadataError.self) { try metadata.addString("v", forKey: key) }
        #expect(metadata.isEmpty)
    }

    @Test func keyCharacterSetIsDigitsLowerCaseUnderscoreDashDot() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("v", forKey: "0123456789abcdefghijklmnopqrstuvwxyz_-.")
        #expect(metadata.count == 1)
        #expect(throws: GRPCMetadataError(key: "a+b", reason: .invalidKey)) { try metadata.addString("v", forKey: "a+b") }
    }

    @Test(arguments: [
        "grpc-timeout", "grpc-status", "grpc-message", "grpc-encoding", "grpc-accept-encoding",
        "grpc-message-type", "grpc-future-thing", "te", "content-type", "user-agent", "host",
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length",
        "Content-Type", "GRPC-Status",
    ])
    func transportOwnedKeyIsRefused(key: String) {
        var metadata = GRPCMetadata()
        #expect(throws: GRPCMetadataError(key: key.lowercased(), reason: .reservedKey)) {
            try metadata.addString("v", forKey: key)
        }
        #expect(metadata.isEmpty)
    }

    @Test func everyGRPCPrefixedBinaryKeyButStatusDetailsIsRefused() {
        var metadata = GRPCMetadata()
        #expect(throws: GRPCMetadataError(key: "grpc-tags-bin", reason: .reservedKey)) {
            try metadata.addBinary([1], forKey: "grpc-tags-bin")
        }
        #expect(throws: Never.self) { try metadata.addBinary([1], forKey: "te-bin") }
    }

    @Test func statusDetailsKeyIsAllowedForApplications() throws {
        var metadata = GRPCMetadata()
        try metadata.addBinary([8, 5], forKey: "grpc-status-details-bin")
        #expect(metadata.firstBinary(forKey: "grpc-status-details-bin") == [8, 5])
        #expect(throws: GRPCMetadataError(key: "grpc-trace-bin", reason: .reservedKey)) {
            try metadata.addBinary([1], forKey: "grpc-trace-bin")
        }
    }

    @Test(arguments: ["tab\there", "new\nline", "é", "\u{7F}", "\u{0}"])
    func nonPrintableTextValueIsRefused(value: String) {
        var metadata = GRPCMetadata()
        #expect(throws: GRPCMetadataError(key: "k", reason: .invalidTextValue)) {
            try metadata.addString(value, forKey: "k")
        }
    }

    @Test func printableASCIIAndEmptyTextValuesAreAccepted() throws {
        var metadata = GRPCMetadata()
        try metadata.addString(" !~Bearer y235.wef315yfh138vh31hv93hv8h3v", forKey: "authorization")
        try metadata.addString("", forKey: "empty")
        #expect(metadata.count == 2)
    }

    @Test func binaryKeyNeedsBinaryValueAndTextKeyNeedsText() {
        var metadata = GRPCMetadata()
        #expect(throws: GRPCMetadataError(key: "trace-bin", reason: .textValueForBinaryKey)) {
            try metadata.addString("abc", forKey: "trace-bin")
        }
        #expect(throws: GRPCMetadataError(key: "trace", reason: .binaryValueForTextKey)) {
            try metadata.addBinary([1], forKey: "trace")
        }
    }

    @Test func binaryValuesAreSentAsUnpaddedBase64() throws {
        var metadata = GRPCMetadata()
        for bytes: [UInt8] in [[], [0x66], [0x66, 0x6F], [0x66, 0x6F, 0x6F], [0x66, 0x6F, 0x6F, 0x62], [0xFF, 0xFE, 0x00]] {
            try metadata.addBinary(bytes, forKey: "x-bin")
        }
        #expect(metadata.wireHeaders.map(\.value) == ["", "Zg", "Zm8", "Zm9v", "Zm9vYg", "//4A"])
    }

    @Test func receivedBinaryValuesAcceptPaddedAndUnpaddedBase64() {
        let metadata = GRPCMetadata(wireHeaders: [
            ("a-bin", "Zg=="), ("a-bin", "Zg"), ("a-bin", "Zm8="), ("a-bin", "Zm8"), ("a-bin", "Zm9v"), ("a-bin", ""),
        ])
        #expect(metadata.values(forKey: "a-bin") == [
            .binary([0x66]), .binary([0x66]), .binary([0x66, 0x6F]), .binary([0x66, 0x6F]),
            .binary([0x66, 0x6F, 0x6F]), .binary([]),
        ])
    }

    @Test func specExampleTraceValueIsNotBase64AndIsDropped() {
        // The spec's sample `trace-proto-bin = jher831yy13JHy3hc` has 17 characters; 17 mod 4
        // is 1, which no byte string encodes to (grpc-go rejects it too).
        let metadata = GRPCMetadata(wireHeaders: [("trace-proto-bin", "jher831yy13JHy3hc"), ("trace-proto-bin", "jher831yy13JHy3h")])
        #expect(metadata.values(forKey: "trace-proto-bin").count == 1)
        #expect(metadata.firstBinary(forKey: "trace-proto-bin")?.count == 12)
    }

    @Test func receivedBinaryHeaderIsSplitOnCommaBeforeDecoding() {
        let metadata = GRPCMetadata(wireHeaders: [("a-bin", "Zg==,Zm8, Zm9v")])
        #expect(metadata.values(forKey: "a-bin") == [.binary([0x66]), .binary([0x66, 0x6F]), .binary([0x66, 0x6F, 0x6F])])
    }

    @Test(arguments: ["Z", "Zg=", "Z===", "Zm9v!", "Zm-_", "====", "Zg==Zg=="])
    func malformedBase64IsDropped(value: String) {
        let metadata = GRPCMetadata(wireHeaders: [("a-bin", value), ("b", "kept")])
        #expect(metadata.map(\.key) == ["b"])
    }

    @Test func base64RoundTripsEveryLengthAndByte() {
        var generator = SplitMix64(seed: 64)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            let text = GRPCBase64.encode(bytes)
            #expect(!text.contains("="))
            #expect(GRPCBase64.decode(text.utf8) == bytes)
            let padded = text + String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
            #expect(GRPCBase64.decode(padded.utf8) == bytes)
        }
        let all = (0...255).map(UInt8.init)
        #expect(GRPCBase64.decode(GRPCBase64.encode(all).utf8) == all)
    }

    @Test func receivingDropsReservedAndPseudoHeaders() {
        let metadata = GRPCMetadata(wireHeaders: [
            (":method", "POST"), (":path", "/a.B/C"), (":authority", "h"), ("te", "trailers"),
            ("content-type", "application/grpc"), ("user-agent", "grpc-go/1.0"), ("grpc-timeout", "1S"),
            ("grpc-encoding", "identity"), ("grpc-accept-encoding", "gzip"), ("grpc-status", "0"),
            ("grpc-message", "x"), ("grpc-unknown", "y"), ("authorization", "Bearer t"),
            ("grpc-status-details-bin", "CAU"),
        ])
        #expect(metadata.map(\.key) == ["authorization", "grpc-status-details-bin"])
    }

    @Test func receivingDropsInvalidTextAndStripsSurroundingWhitespace() {
        let metadata = GRPCMetadata(wireHeaders: [
            ("a", "  padded\t"), ("b", "caf\u{E9}"), ("c", "x\u{7F}"), ("bad key", "v"), ("D", "upper"),
        ])
        #expect(metadata.map(\.key) == ["a", "d"])
        #expect(metadata.firstString(forKey: "a") == "padded")
    }

    @Test func receivedMetadataCanBeSentBackUnchanged() throws {
        let received = GRPCMetadata(wireHeaders: [
            ("x-a", "1"), ("x-bin", "AAEC"), ("x-a", "2"), ("grpc-status-details-bin", "CAU="), ("e", ""),
        ])
        var echoed = GRPCMetadata()
        for entry in received {
            switch entry.value {
            case .string(let text): try echoed.addString(text, forKey: entry.key)
            case .binary(let bytes): try echoed.addBinary(bytes, forKey: entry.key)
            }
        }
        #expect(echoed == received)
        #expect(GRPCMetadata(wireHeaders: echoed.wireHeaders) == received)
    }

    @Test func descriptionShowsKeysButNeverValues() throws {
        var metadata = GRPCMetadata()
        try metadata.addString("Bearer secret", forKey: "authorization")
        try metadata.addBinary([1], forKey: "x-bin")
        #expect(metadata.description == "[authorization, x-bin]")
    }
}
