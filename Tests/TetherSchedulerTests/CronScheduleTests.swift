#if canImport(Glibc)
import Glibc
#endif
import Testing
import TetherScheduler
import TetherTestSupport

/// The instant of a UTC wall-clock time, computed by libc's `timegm` so the tests do not
/// check the calendar code against itself.
private func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0) -> Instant {
    var fields = tm()
    fields.tm_year = Int32(year - 1900)
    fields.tm_mon = Int32(month - 1)
    fields.tm_mday = Int32(day)
    fields.tm_hour = Int32(hour)
    fields.tm_min = Int32(minute)
    return Instant(millisecondsSinceEpoch: Int64(timegm(&fields)) * 1_000)
}

private func schedule(_ expression: String) throws -> CronSchedule {
    try CronSchedule(parsing: expression)
}

/// The next `count` fire instants after `start`.
private func fires(_ expression: String, after start: Instant, count: Int) throws -> [Instant] {
    let cron = try schedule(expression)
    var result: [Instant] = []
    var cursor = start
    for _ in 0..<count {
        guard let next = cron.next(after: cursor) else { break }
        result.append(next)
        cursor = next
    }
    return result
}

/// "FIELD TOKEN" of the `.badToken` error `expression` throws, or what happened instead.
private func badToken(_ expression: String) -> String {
    do {
        _ = try CronSchedule(parsing: expression)
        return "accepted"
    } catch {
        guard case .badToken(let field, let token, _) = error else { return "\(error)" }
        return "\(field.rawValue) \(token)"
    }
}

@Suite struct CronScheduleTests {
    @Test func everyMinuteFiresOnTheNextWholeMinuteStrictlyAfter() throws {
        let cron = try schedule("* * * * *")
        #expect(cron.next(after: utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 1))
        #expect(cron.next(after: utc(2026, 1, 1, 10, 0).adding(milliseconds: 59_999)) == utc(2026, 1, 1, 10, 1))
        #expect(cron.next(after: utc(2026, 1, 1, 10, 0).adding(milliseconds: -1)) == utc(2026, 1, 1, 10, 0))
    }

    @Test func listsRangesAndStepsSelectTheirMinutes() throws {
        #expect(try fires("5,10,50 * * * *", after: utc(2026, 3, 1, 8, 7), count: 4)
            == [utc(2026, 3, 1, 8, 10), utc(2026, 3, 1, 8, 50), utc(2026, 3, 1, 9, 5), utc(2026, 3, 1, 9, 10)])
        #expect(try fires("*/15 * * * *", after: utc(2026, 3, 1, 8, 0), count: 4)
            == [utc(2026, 3, 1, 8, 15), utc(2026, 3, 1, 8, 30), utc(2026, 3, 1, 8, 45), utc(2026, 3, 1, 9, 0)])
        #expect(try fires("10-20/5 * * * *", after: utc(2026, 3, 1, 8, 0), count: 4)
            == [utc(2026, 3, 1, 8, 10), utc(2026, 3, 1, 8, 15), utc(2026, 3, 1, 8, 20), utc(2026, 3, 1, 9, 10)])
        #expect(try fires("58-59 22-23 * * *", after: utc(2026, 3, 1, 22, 58), count: 3)
            == [utc(2026, 3, 1, 22, 59), utc(2026, 3, 1, 23, 58), utc(2026, 3, 1, 23, 59)])
    }

    @Test func monthAndWeekdayNamesAreCaseInsensitive() throws {
        // 2026-01-01 is a Thursday.
        #expect(try fires("0 9 * * mon-FRI", after: utc(2026, 1, 1, 12), count: 3)
            == [utc(2026, 1, 2, 9), utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)])
        #expect(try fires("0 0 1 Jan,JUL *", after: utc(2026, 1, 1), count: 3)
            == [utc(2026, 7, 1), utc(2027, 1, 1), utc(2027, 7, 1)])
        #expect(try fires("0 0 1 FEB-DEC/5 *", after: utc(2026, 1, 1), count: 3)
            == [utc(2026, 2, 1), utc(2026, 7, 1), utc(2026, 12, 1)])
    }

    @Test func sundayIsBothZeroAndSeven() throws {
        // 2026-01-04 is a Sunday.
        let zero = try fires("0 0 * * 0", after: utc(2026, 1, 1), count: 2)
        #expect(zero == [utc(2026, 1, 4), utc(2026, 1, 11)])
        #expect(try fires("0 0 * * 7", after: utc(2026, 1, 1), count: 2) == zero)
        #expect(try fires("0 0 * * SUN", after: utc(2026, 1, 1), count: 2) == zero)
        #expect(try fires("0 0 * * 5-7", after: utc(2026, 1, 1), count: 3) == [utc(2026, 1, 2), utc(2026, 1, 3), utc(2026, 1, 4)])
    }

    @Test func thirtyFirstSkipsShortMonths() throws {
        #expect(try fires("0 12 31 * *", after: utc(2026, 1, 31, 12), count: 4)
            == [utc(2026, 3, 31, 12), utc(2026, 5, 31, 12), utc(2026, 7, 31, 12), utc(2026, 8, 31, 12)])
    }

    @Test func leapDayFiresOnlyInLeapYears() throws {
        #expect(try fires("0 0 29 2 *", after: utc(2024, 2, 29), count: 3) == [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)])
        // 2100 is not a leap year; 2400 is.
        #expect(try schedule("0 0 29 2 *").next(after: utc(2096, 3, 1)) == utc(2104, 2, 29))
        #expect(try schedule("0 0 29 2 *").next(after: utc(2396, 3, 1)) == utc(2400, 2, 29))
    }

    @Test func lastMinuteOfTheYearRollsIntoTheNextYear() throws {
        #expect(try schedule("0 0 * * *").next(after: utc(2026, 12, 31, 23, 59)) == utc(2027, 1, 1))
        #expect(try schedule("59 23 31 12 *").next(after: utc(2026, 12, 31, 23, 59)) == utc(2027, 12, 31, 23, 59))
    }

    @Test func restrictedDayOfMonthAndDayOfWeekMatchEither() throws {
        // The 13th, or any Friday. January 2026: Fridays 2, 9, 16; the 13th is a Tuesday.
        #expect(try fires("0 0 13 * FRI", after: utc(2026, 1, 1), count: 4)
            == [utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13), utc(2026, 1, 16)])
    }

    @Test func starredDayFieldMeansTheOtherMustMatch() throws {
        // `*/2` starts with `*`, so day-of-week must match as well: odd days that are Fridays.
        #expect(try fires("0 0 */2 * FRI", after: utc(2026, 1, 1), count: 3)
            == [utc(2026, 1, 9), utc(2026, 1, 23), utc(2026, 2, 13)])
        #expect(try fires("0 0 1 * *", after: utc(2026, 1, 1), count: 2) == [utc(2026, 2, 1), utc(2026, 3, 1)])
    }

    @Test func aliasesExpandToTheirFiveFieldForms() throws {
        let start = utc(2026, 5, 17, 10, 30)  // a Sunday
        #expect(try schedule("@hourly").next(after: start) == utc(2026, 5, 17, 11))
        #expect(try schedule("@daily").next(after: start) == utc(2026, 5, 18))
        #expect(try schedule("@midnight").next(after: start) == utc(2026, 5, 18))
        #expect(try schedule("@weekly").next(after: start) == utc(2026, 5, 24))
        #expect(try schedule("@monthly").next(after: start) == utc(2026, 6, 1))
        #expect(try schedule("@yearly").next(after: start) == utc(2027, 1, 1))
        #expect(try schedule("@ANNUALLY").next(after: start) == utc(2027, 1, 1))
    }

    @Test func previousReturnsTheLatestFireAtOrBeforeTheInstant() throws {
        let daily = try schedule("30 2 * * *")
        #expect(daily.previous(atOrBefore: utc(2026, 5, 17, 2, 30)) == utc(2026, 5, 17, 2, 30))
        #expect(daily.previous(atOrBefore: utc(2026, 5, 17, 2, 29)) == utc(2026, 5, 16, 2, 30))
        #expect(daily.previous(atOrBefore: utc(2026, 3, 1, 0, 0)) == utc(2026, 2, 28, 2, 30))
        #expect(daily.previous(atOrBefore: utc(2026, 1, 1, 0, 0)) == utc(2025, 12, 31, 2, 30))
    }

    @Test func previousCrossesMonthAndYearBoundaries() throws {
        #expect(try schedule("0 0 31 * *").previous(atOrBefore: utc(2026, 5, 30)) == utc(2026, 3, 31))
        #expect(try schedule("0 0 29 2 *").previous(atOrBefore: utc(2028, 2, 28)) == utc(2024, 2, 29))
        #expect(try schedule("15 10 1 JUL *").previous(atOrBefore: utc(2026, 6, 30, 23, 59)) == utc(2025, 7, 1, 10, 15))
        #expect(try schedule("@hourly").previous(atOrBefore: utc(2026, 1, 1).adding(milliseconds: -1)) == utc(2025, 12, 31, 23))
    }

    @Test func previousAndNextAgreeOnRandomInstants() throws {
        var generator = SplitMix64(seed: 42)
        for expression in ["*/7 3-5 * * *", "0 0 13 * FRI", "0 0 29 2 *", "59 23 31 DEC *", "0 12 */3 * MON-WED"] {
            let cron = try schedule(expression)
            for _ in 0..<50 {
                let instant = Instant(millisecondsSinceEpoch: Int64.random(in: 0...4_102_444_800_000, using: &generator))
                let next = try #require(cron.next(after: instant))
                #expect(next > instant)
                #expect(cron.previous(atOrBefore: next) == next)
                #expect(cron.previous(atOrBefore: next.adding(milliseconds: -1)).map { $0 <= instant } == true)
            }
        }
    }

    /// Each expression beside a hand-written predicate over (minute, hour, day, month,
    /// weekday) from libc's `gmtime_r`; `next(after:)` must visit exactly the minutes the
    /// predicate accepts across a window spanning month ends and a leap day.
    @Test func nextVisitsExactlyTheMinutesAMinuteByMinuteCheckAccepts() throws {
        let cases: [(String, (Int, Int, Int, Int, Int) -> Bool)] = [
            ("*/7 3-5 * * *", { mi, h, _, _, _ in mi % 7 == 0 && (3...5).contains(h) }),
            ("0 0 13 * FRI", { mi, h, d, _, w in mi == 0 && h == 0 && (d == 13 || w == 5) }),
            ("0 12 */3 * MON-WED", { mi, h, d, _, w in mi == 0 && h == 12 && (d - 1) % 3 == 0 && (1...3).contains(w) }),
            ("30 2 29-31 * *", { mi, h, d, _, _ in mi == 30 && h == 2 && d >= 29 }),
            ("15,45 */6 * FEB,MAR SUN,SAT", { mi, h, _, mo, w in (mi == 15 || mi == 45) && h % 6 == 0 && (mo == 2 || mo == 3) && (w == 0 || w == 6) }),
        ]
        let start = utc(2028, 1, 20)
        let end = utc(2028, 4, 10)
        for (expression, matches) in cases {
            var expected: [Instant] = []
            var minute = start.adding(milliseconds: 60_000)
            while minute <= end {
                var seconds = time_t(minute.millisecondsSinceEpoch / 1_000)
                var fields = tm()
                gmtime_r(&seconds, &fields)
                if matches(Int(fields.tm_min), Int(fields.tm_hour), Int(fields.tm_mday), Int(fields.tm_mon) + 1, Int(fields.tm_wday)) {
                    expected.append(minute)
                }
                minute = minute.adding(milliseconds: 60_000)
            }
            let cron = try schedule(expression)
            var visited: [Instant] = []
            var cursor = start
            while let next = cron.next(after: cursor), next <= end {
                visited.append(next)
                cursor = next
            }
            #expect(visited == expected, "\(expression)")
            #expect(!expected.isEmpty, "\(expression) never matched in the window")
        }
    }

    @Test func instantsBeforeTheEpochWork() throws {
        #expect(try schedule("0 0 1 1 *").next(after: utc(1969, 6, 1)) == utc(1970, 1, 1))
        #expect(try schedule("0 0 1 1 *").previous(atOrBefore: utc(1969, 6, 1)) == utc(1969, 1, 1))
    }

    @Test func neverFiringSchedulesAreRejected() {
        #expect(throws: CronScheduleError.neverFires("0 0 30 2 *")) { try CronSchedule(parsing: "0 0 30 2 *") }
        #expect(throws: CronScheduleError.neverFires("0 0 31 4,6,9,11 *")) { try CronSchedule(parsing: "0 0 31 4,6,9,11 *") }
        // A weekday alternative makes it fire; so does one long month in the list.
        #expect(throws: Never.self) { try CronSchedule(parsing: "0 0 30 2 MON") }
        #expect(throws: Never.self) { try CronSchedule(parsing: "0 0 31 4,5 *") }
    }

    @Test func malformedTokensNameTheirField() {
        #expect(badToken("60 * * * *") == "minute 60")
        #expect(badToken("* 24 * * *") == "hour 24")
        #expect(badToken("* * 0 * *") == "day-of-month 0")
        #expect(badToken("* * 32 * *") == "day-of-month 32")
        #expect(badToken("* * * 13 *") == "month 13")
        #expect(badToken("* * * FOO *") == "month FOO")
        #expect(badToken("* * * * 8") == "day-of-week 8")
        #expect(badToken("* * * * MON-FUN") == "day-of-week MON-FUN")
        #expect(badToken("*/0 * * * *") == "minute */0")
        #expect(badToken("5/15 * * * *") == "minute 5/15")
        #expect(badToken("10-5 * * * *") == "minute 10-5")
        #expect(badToken("1,,2 * * * *") == "minute ")
        #expect(badToken("1-2-3 * * * *") == "minute 1-2-3")
        #expect(badToken("* -1 * * *") == "hour -1")
        #expect(badToken("* * * * 1/2/3") == "day-of-week 1/2/3")
    }

    @Test func wrongShapesAreRejected() {
        #expect(throws: CronScheduleError.empty) { try CronSchedule(parsing: "  ") }
        #expect(throws: CronScheduleError.wrongFieldCount(4)) { try CronSchedule(parsing: "* * * *") }
        #expect(throws: CronScheduleError.wrongFieldCount(6)) { try CronSchedule(parsing: "0 * * * * *") }
        #expect(throws: CronScheduleError.unknownAlias("@reboot")) { try CronSchedule(parsing: "@reboot") }
        #expect(throws: CronScheduleError.wrongFieldCount(2)) { try CronSchedule(parsing: "@daily 5") }
    }

    @Test func errorDescriptionsNameFieldAndToken() {
        let error = CronScheduleError.badToken(field: .dayOfWeek, token: "8", reason: "8 is outside 0-7")
        #expect(error.description == "cron day-of-week field: bad token '8': 8 is outside 0-7")
    }

    @Test func sparseSchedulesAreFoundWithoutScanningMinuteByMinute() throws {
        // February 1st when it is a Monday: `*/29` starts with `*`, so both day fields must
        // match. It fires every 5-11 years.
        let cron = try schedule("0 0 */29 FEB MON")
        #expect(cron.next(after: utc(2026, 1, 1)) == utc(2027, 2, 1))
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            var cursor = utc(2026, 1, 1)
            for _ in 0..<100 { cursor = cron.next(after: cursor)! }
        }
        #expect(elapsed < .seconds(2))
    }
}
