import Testing
import TetherSyntax

@Suite struct UTCTimestampTests {
    /// Values from Python's datetime.
    static let known: [(String, Int64)] = [
        ("1970-01-01T00:00:00Z", 0),
        ("2025-11-25T03:00:00Z", 1_764_039_600_000_000),
        ("2024-02-29T23:59:59.000001Z", 1_709_251_199_000_001),
        ("2000-03-01T00:00:00Z", 951_868_800_000_000),
        ("9999-12-31T23:59:59Z", 253_402_300_799_000_000),
    ]

    @Test(arguments: known)
    func formatsAndReadsKnownInstants(_ text: String, _ micros: Int64) throws {
        #expect(UTCTimestamp.format(unixMicroseconds: micros) == text)
        #expect(try UTCTimestamp.unixMicroseconds(parsing: text) == micros)
    }

    @Test func everyFormattedInstantReadsBackToItself() throws {
        var micros: Int64 = 0
        while micros < 253_402_300_799_000_000 {
            #expect(try UTCTimestamp.unixMicroseconds(parsing: UTCTimestamp.format(unixMicroseconds: micros)) == micros)
            micros += 86_399_123_457 * 37  // ~37 days and an odd remainder, through every month and leap rule
        }
    }

    @Test func readsDatesOffsetsAndShortForms() throws {
        let six: Int64 = 1_764_050_400_000_000  // 2025-11-25T06:00:00Z
        #expect(try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25") == six - 6 * 3_600_000_000)
        #expect(try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25T06:00Z") == six)
        #expect(try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25 06:00:00Z") == six)
        #expect(try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25T08:00:00+02:00") == six)
        #expect(try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25T01:30:00-04:30") == six)
        #expect(try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25T06:00:00.5Z") == six + 500_000)
    }

    @Test(arguments: ["", "2025", "2025-13-01", "2023-02-29", "2025-11-31", "1969-12-31", "2025-11-25T24:00Z",
                      "2025-11-25T06:00:00.1234567Z", "2025-11-25T06:00:00.Z", "2025-11-25T06:00:00Zjunk",
                      "2025-11-25T06:00+0200", "2025-1-25", "1970-01-01T00:00:00+01:00"])
    func refusesMalformedText(_ text: String) {
        #expect(throws: UTCTimestampError.malformed(text)) { try UTCTimestamp.unixMicroseconds(parsing: text) }
    }

    @Test func refusesATimeWithoutAZone() {
        #expect(throws: UTCTimestampError.noZone("2025-11-25T06:00:00")) {
            try UTCTimestamp.unixMicroseconds(parsing: "2025-11-25T06:00:00")
        }
    }
}
