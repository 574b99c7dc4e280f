import Testing
@testable import GRPC

@Suite struct GRPCPercentEncodingTests {
    @Test func printableASCIIIsSentUnchanged() {
        let text = " !\"#$&'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~"
        #expect(GRPCPercentEncoding.encode(text) == text)
    }

    @Test func percentSignIsEncoded() {
        #expect(GRPCPercentEncoding.encode("100%") == "100%25")
        #expect(GRPCPercentEncoding.encode("%%") == "%25%25")
    }

    @Test func controlCharactersAndDELAreEncoded() {
        #expect(GRPCPercentEncoding.encode("a\nb\tc\r\0") == "a%0Ab%09c%0D%00")
        #expect(GRPCPercentEncoding.encode("\u{7F}\u{1F}") == "%7F%1F")
    }

    @Test func unicodeIsEncodedAsUTF8BytesInUpperCaseHex() {
        #expect(GRPCPercentEncoding.encode("é") == "%C3%A9")
        #expect(GRPCPercentEncoding.encode("✓ ok") == "%E2%9C%93 ok")
        #expect(GRPCPercentEncoding.encode("🚀") == "%F0%9F%9A%80")
        #expect(GRPCPercentEncoding.encode("日本") == "%E6%97%A5%E6%9C%AC")
    }

    @Test(arguments: ["", "plain", "100%", "é ✓ 🚀 日本", "tab\there\nnew", "%41 literal", "\u{0}\u{7F}\u{80}"])
    func encodingRoundTrips(text: String) {
        #expect(GRPCPercentEncoding.decode(GRPCPercentEncoding.encode(text)) == text)
    }

    @Test func decodingAcceptsLowerCaseHex() {
        #expect(GRPCPercentEncoding.decode("%c3%a9%2a") == "é*")
    }

    @Test func malformedPercentSequencesArePassedThrough() {
        #expect(GRPCPercentEncoding.decode("100%") == "100%")
        #expect(GRPCPercentEncoding.decode("%4") == "%4")
        #expect(GRPCPercentEncoding.decode("%zz%41") == "%zzA")
        #expect(GRPCPercentEncoding.decode("%%41") == "%A")
        #expect(GRPCPercentEncoding.decode("a%2") == "a%2")
        #expect(GRPCPercentEncoding.decode("%") == "%")
    }

    @Test func invalidUTF8AfterDecodingBecomesReplacementCharacter() {
        #expect(GRPCPercentEncoding.decode("a%FFb") == "a\u{FFFD}b")
        #expect(GRPCPercentEncoding.decode("%E2%9C") == "\u{FFFD}")
    }

    @Test func decodingPassesThroughUnencodedNonASCII() {
        // A broken peer may send raw UTF-8; keep it rather than lose the message.
        #expect(GRPCPercentEncoding.decode("déjà %41") == "déjà A")
    }
}
