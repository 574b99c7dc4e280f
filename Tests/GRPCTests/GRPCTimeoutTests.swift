import Testing
import TetherTestSupport
@testable import GRPC

@Suite struct GRPCTimeoutTests {
    @Test(arguments: [
        ("1S", Duration.seconds(1)), ("100m", .milliseconds(100)), ("99999999n", .nanoseconds(99_999_999)),
        ("1H", .seconds(3600)), ("2M", .seconds(120)), ("250u", .microseconds(250)), ("0n", .zero),
        ("99999999H", .seconds(Int64(99_999_999) * 3600)), ("00000010S", .seconds(10)),
    ])
    func specTimeoutsParseToTheirDuration(text: String, duration: Duration) throws {
        #expect(try GRPCTimeout(parsing: text).duration == duration)
    }

    @Test(arguments: ["1S", "100m", "99999999n", "1H", "59M", "7u", "12345678S"])
    func parsedTimeoutFormatsBackToTheSameText(text: String) throws {
        #expect(try GRPCTimeout(parsing: text).wireValue == text)
    }

    @Test func nineDigitsAreRejected() {
        #expect(throws: GRPCTimeoutParseError.tooManyDigits) { try GRPCTimeout(parsing: "100000000n") }
        #expect(throws: GRPCTimeoutParseError.tooManyDigits) { try GRPCTimeout(parsing: "000000001S") }
    }

    @Test func emptyOrUnitOnlyIsRejected() {
        #expect(throws: GRPCTimeoutParseError.missingDigits) { try GRPCTimeout(parsing: "") }
        #expect(throws: GRPCTimeoutParseError.missingDigits) { try GRPCTimeout(parsing: "S") }
    }

    @Test(arguments: ["1", "10s", "5h", "1Sx", "1\u{0}", "3µ"])
    func unknownUnitIsRejected(text: String) {
        #expect(throws: GRPCTimeoutParseError.invalidUnit) { try GRPCTimeout(parsing: text) }
    }

    @Test(arguments: ["-1S", "+1S", " 1S", "1 S", "1.5S", "x1S", "١S"])
    func nonDigitBeforeUnitIsRejected(text: String) {
        #expect(throws: GRPCTimeoutParseError.invalidDigit) { try GRPCTimeout(parsing: text) }
    }

    @Test(arguments: [
        (Duration.nanoseconds(1), "1n"), (.nanoseconds(99_999_999), "99999999n"),
        (.nanoseconds(100_000_000), "100000u"), (.seconds(1), "1000000u"),
        (.seconds(100), "100000m"), (.seconds(99_999), "99999000m"),
        (.seconds(100_000), "100000S"), (.seconds(99_999_999), "99999999S"),
        (.seconds(100_000_000), "1666667M"), (.seconds(Int64(99_999_999) * 60), "99999999M"),
        (.seconds(Int64(99_999_999) * 60 + 1), "1666667H"),
    ])
    func formattingPicksTheFinestUnitThatFitsEightDigits(duration: Duration, text: String) {
        #expect(GRPCTimeout(rounding: duration).wireValue == text)
    }

    @Test func formattingRoundsUpSoTheDeadlineIsNeverShortened() {
        #expect(GRPCTimeout(rounding: .nanoseconds(100_000_001)).wireValue == "100001u")
        #expect(GRPCTimeout(rounding: .seconds(100) + .nanoseconds(1)).wireValue == "100001m")
        #expect(GRPCTimeout(rounding: .seconds(100_000_001)).wireValue == "1666667M")
        // Sub-nanosecond remainders round up too.
        #expect(GRPCTimeout(rounding: Duration(secondsComponent: 0, attosecondsComponent: 1)).wireValue == "1n")
        for seconds: Int64 in [1, 59, 61, 3599, 3601, 99_999_999, 100_000_001, 6_000_000_001] {
            for extra in [Duration.zero, .nanoseconds(1), .milliseconds(999)] {
                let duration = Duration.seconds(seconds) + extra
                #expect(GRPCTimeout(rounding: duration).duration >= duration)
            }
        }
    }

    @Test func zeroOrNegativeDurationBecomesTheSmallestPositiveTimeout() {
        #expect(GRPCTimeout(rounding: .zero).wireValue == "1n")
        #expect(GRPCTimeout(rounding: .seconds(-5)).wireValue == "1n")
        #expect(GRPCTimeout(rounding: .nanoseconds(-1)).wireValue == "1n")
    }

    @Test func absurdDurationsSaturateAtTheLongestTimeout() {
        #expect(GRPCTimeout(rounding: .seconds(Int64(99_999_999) * 3600)).wireValue == "99999999H")
        #expect(GRPCTimeout(rounding: .seconds(Int64(99_999_999) * 3600 + 1)).wireValue == "99999999H")
        #expect(GRPCTimeout(rounding: .seconds(Int64.max)).wireValue == "99999999H")
        // Beyond Int64.max seconds, where Duration.components would trap.
        #expect(GRPCTimeout(rounding: .seconds(Int64.max) + .seconds(Int64.max)).wireValue == "99999999H")
    }

    @Test func roundedTimeoutParsesBackToTheSameDuration() throws {
        var generator = SplitMix64(seed: 0x7E7E)
        for _ in 0..<2000 {
            let duration = Duration.nanoseconds(Int64(generator.next() % 1_000_000_000_000_000))
            let timeout = GRPCTimeout(rounding: duration)
            let parsed = try GRPCTimeout(parsing: timeout.wireValue)
            #expect(parsed == timeout)
            #expect(parsed.duration >= duration)
        }
    }

    @Test func valueOutsideEightDigitsIsNotATimeout() {
        #expect(GRPCTimeout(value: 100_000_000, unit: .seconds) == nil)
        #expect(GRPCTimeout(value: -1, unit: .seconds) == nil)
        #expect(GRPCTimeout(value: 99_999_999, unit: .hours)?.wireValue == "99999999H")
    }
}
