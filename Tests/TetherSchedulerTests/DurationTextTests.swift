import Testing
import TetherScheduler
import TetherSyntax

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("2d", 172_800_000),
        ("45", 45_000), ("0", 0), ("0s", 0), ("1d2h3m4s5ms", 93_784_005), ("1s500ms", 1_500),
    ] as [(String, Int64)])
    func parsesEveryUnitAndBareSeconds(text: String, milliseconds: Int64) throws {
        #expect(try DurationText.milliseconds(parsing: text) == milliseconds)
    }

    @Test func rejectsEmptyNegativeAndMalformedText() {
        #expect(throws: DurationTextError.empty) { try DurationText.milliseconds(parsing: "") }
        #expect(throws: DurationTextError.negative("-5s")) { try DurationText.milliseconds(parsing: "-5s") }
        for text in ["1.5s", "5 s", " 5s", "s", "+5s", "5s ", "1h-30m"] {
            #expect(throws: DurationTextError.malformed(text)) { try DurationText.milliseconds(parsing: text) }
        }
    }

    @Test func rejectsUnknownAndMisorderedUnits() {
        #expect(throws: DurationTextError.unknownUnit("5w", unit: "w")) { try DurationText.milliseconds(parsing: "5w") }
        #expect(throws: DurationTextError.unknownUnit("5S", unit: "S")) { try DurationText.milliseconds(parsing: "5S") }
        #expect(throws: DurationTextError.unitOutOfOrder("30s1m", unit: "m")) { try DurationText.milliseconds(parsing: "30s1m") }
        #expect(throws: DurationTextError.unitOutOfOrder("1m1m", unit: "m")) { try DurationText.milliseconds(parsing: "1m1m") }
    }

    @Test func rejectsValuesBeyondInt64Milliseconds() throws {
        for text in ["9223372036854775808ms", "9223372036854776s", "106751991168d", "106751991167d8h", "99999999999999999999999"] {
            #expect(throws: DurationTextError.overflow(text)) { try DurationText.milliseconds(parsing: text) }
        }
        #expect(try DurationText.milliseconds(parsing: "9223372036854775807ms") == .max)
    }

    @Test func formatsLargestUnitsFirst() {
        #expect(DurationText.format(milliseconds: 0) == "0s")
        #expect(DurationText.format(milliseconds: 500) == "500ms")
        #expect(DurationText.format(milliseconds: 90_000) == "1m30s")
        #expect(DurationText.format(milliseconds: 1_500) == "1s500ms")
        #expect(DurationText.format(milliseconds: 86_400_000) == "1d")
        #expect(DurationText.format(milliseconds: 93_784_005) == "1d2h3m4s5ms")
        #expect(DurationText.format(milliseconds: -90_000) == "-1m30s")
        #expect(DurationText.format(milliseconds: .min) == "-106751991167d7h12m55s808ms")
    }

    @Test func formattedTextParsesBackToTheSameValue() throws {
        for value: Int64 in [0, 1, 999, 1_000, 59_999, 3_600_001, 86_399_999, 1_234_567_890_123, .max] {
            #expect(try DurationText.milliseconds(parsing: DurationText.format(milliseconds: value)) == value)
        }
    }
}
