import TetherSyntax

/// A cron schedule, evaluated in UTC at minute resolution.
///
/// Syntax: five fields `minute hour day-of-month month day-of-week`, separated by spaces or
/// tabs. A field is a comma list of items; an item is `*`, `N`, `A-B`, `*/S` or `A-B/S`.
/// Months accept `JAN`-`DEC` and days of week `SUN`-`SAT` (any case); day-of-week `0` and
/// `7` are both Sunday. The aliases `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
/// (`@midnight`) and `@hourly` stand for their usual five-field forms.
///
/// Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted
/// (neither field starts with `*`), a day matches if EITHER matches; otherwise both must.
///
/// A schedule that can never fire (`0 0 30 2 *`) is rejected when parsed, so `next(after:)`
/// and `previous(atOrBefore:)` only return nil at the far ends of `Instant`'s range.
/// Values are immutable and `Sendable`; all methods are pure.
public struct CronSchedule: Hashable, Sendable, CustomStringConvertible {
    /// The expression as written.
    public let expression: String

    // One bit per allowed value: minutes 0-59, hours 0-23, days of month 1-31, months 1-12,
    // days of week 0-6 (Sunday 0).
    private let minutes: UInt64
    private let hours: UInt64
    private let daysOfMonth: UInt64
    private let months: UInt64
    private let daysOfWeek: UInt64
    /// Vixie's rule: both day fields restricted means either may match.
    private let dayFieldsAreAlternatives: Bool

    /// Parses a five-field expression or an `@` alias.
    ///
    /// - Throws: `CronScheduleError`: `.badToken` names the field and the token; a schedule
    ///   whose months never contain any of its days of month is `.neverFires`.
    public init(parsing expression: String) throws(CronScheduleError) {
        self.expression = expression
        let words = expression.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = words.first else { throw .empty }
        let fieldTexts: [String]
        if first.hasPrefix("@") {
            guard words.count == 1 else { throw .wrongFieldCount(words.count) }
            guard let expansion = CronSchedule.aliases[asciiLowercased(first)] else { throw .unknownAlias(first) }
            fieldTexts = expansion.split(separator: " ").map(String.init)
        } else {
            guard words.count == 5 else { throw .wrongFieldCount(words.count) }
            fieldTexts = words
        }
        let minute = try CronField.minute.parse(fieldTexts[0])
        let hour = try CronField.hour.parse(fieldTexts[1])
        let dayOfMonth = try CronField.dayOfMonth.parse(fieldTexts[2])
        let month = try CronField.month.parse(fieldTexts[3])
        let dayOfWeek = try CronField.dayOfWeek.parse(fieldTexts[4])
        minutes = minute.values
        hours = hour.values
        daysOfMonth = dayOfMonth.values
        months = month.values
        daysOfWeek = dayOfWeek.values
        dayFieldsAreAlternatives = !dayOfMonth.startsWithStar && !dayOfWeek.startsWithStar

        // With day-of-week as an alternative, some day of every month matches. Otherwise a
        // (month, day-of-month) pair must exist; a date falls on every weekday over the
        // 400-year Gregorian cycle, so the day-of-week field cannot make it impossible.
        if !dayFieldsAreAlternatives {
            let possible = (1...12).contains { month in
                months & (1 << month) != 0 && daysOfMonth.trailingZeroBitCount <= CivilCalendar.longestDays(ofMonth: month)
            }
            guard possible else { throw .neverFires(expression) }
        }
    }

    public var description: String { expression }

    /// The first fire instant strictly after `instant` (always on a whole minute), or nil
    /// if there is none before the end of `Instant`'s range.
    public func next(after instant: Instant) -> Instant? {
        let minuteIndex = floorDivide(instant.millisecondsSinceEpoch, by: 60_000) + 1
        var day = floorDivide(minuteIndex, by: 1_440)
        var minuteOfDay = Int(minuteIndex - day * 1_440)
        let lastDay = day + CivilCalendar.daysPer400Years + 366
        while day <= lastDay {
            let date = CivilCalendar.date(fromDays: day)
            if months & (1 << date.month) == 0 {
                day = CivilCalendar.days(fromYear: date.year, month: date.month, day: 1)
                    + Int64(CivilCalendar.days(inYear: date.year, month: date.month))
                minuteOfDay = 0
            } else if dayMatches(date, weekday: CivilCalendar.weekday(ofDays: day)), let time = firstTime(atOrAfter: minuteOfDay) {
                return fireInstant(day: day, minuteOfDay: time)
            } else {
                day += 1
                minuteOfDay = 0
            }
        }
        return nil
    }

    /// The latest fire instant at or before `instant` (always on a whole minute), or nil if
    /// there is none after the start of `Instant`'s range.
    ///
    /// The scheduler uses it after downtime: the schedule fires once for the latest missed
    /// instant rather than once per missed instant.
    public func previous(atOrBefore instant: Instant) -> Instant? {
        let minuteIndex = floorDivide(instant.millisecondsSinceEpoch, by: 60_000)
        var day = floorDivide(minuteIndex, by: 1_440)
        var minuteOfDay = Int(minuteIndex - day * 1_440)
        let firstDay = day - CivilCalendar.daysPer400Years - 366
        while day >= firstDay {
            let date = CivilCalendar.date(fromDays: day)
            if months & (1 << date.month) == 0 {
                day = CivilCalendar.days(fromYear: date.year, month: date.month, day: 1) - 1
                minuteOfDay = 1_439
            } else if dayMatches(date, weekday: CivilCalendar.weekday(ofDays: day)), let time = lastTime(atOrBefore: minuteOfDay) {
                return fireInstant(day: day, minuteOfDay: time)
            } else {
                day -= 1
                minuteOfDay = 1_439
            }
        }
        return nil
    }

    private func dayMatches(_ date: CivilCalendar.Date, weekday: Int) -> Bool {
        let dayOfMonthMatches = daysOfMonth & (1 << date.day) != 0
        let dayOfWeekMatches = daysOfWeek & (1 << weekday) != 0
        return dayFieldsAreAlternatives ? dayOfMonthMatches || dayOfWeekMatches : dayOfMonthMatches && dayOfWeekMatches
    }

    /// The first allowed minute of the day at or after `minuteOfDay`.
    private func firstTime(atOrAfter minuteOfDay: Int) -> Int? {
        var minute = minuteOfDay % 60
        for hour in (minuteOfDay / 60)..<24 {
            if hours & (1 << hour) != 0 {
                let later = minutes >> minute
                if later != 0 { return hour * 60 + minute + later.trailingZeroBitCount }
            }
            minute = 0
        }
        return nil
    }

    /// The last allowed minute of the day at or before `minuteOfDay`.
    private func lastTime(atOrBefore minuteOfDay: Int) -> Int? {
        var minute = minuteOfDay % 60
        for hour in stride(from: minuteOfDay / 60, through: 0, by: -1) {
            if hours & (1 << hour) != 0 {
                let earlier = minutes & ((2 << minute) - 1)
                if earlier != 0 { return hour * 60 + 63 - earlier.leadingZeroBitCount }
            }
            minute = 59
        }
        return nil
    }

    private func fireInstant(day: Int64, minuteOfDay: Int) -> Instant? {
        let (minutesSinceEpoch, overflowA) = day.multipliedReportingOverflow(by: 1_440)
        let (milliseconds, overflowB) = (minutesSinceEpoch + Int64(minuteOfDay)).multipliedReportingOverflow(by: 60_000)
        return overflowA || overflowB ? nil : Instant(millisecondsSinceEpoch: milliseconds)
    }

    private static let aliases: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
}

/// Why a cron expression was rejected.
public enum CronScheduleError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The five fields, in order.
    public enum Field: String, Hashable, Sendable, CaseIterable {
        case minute
        case hour
        case dayOfMonth = "day-of-month"
        case month
        case dayOfWeek = "day-of-week"
    }

    case empty
    /// Not five fields (or an alias followed by more words).
    case wrongFieldCount(Int)
    case unknownAlias(String)
    /// `token` (one comma-separated item) of `field` is malformed or out of range.
    case badToken(field: Field, token: String, reason: String)
    /// The expression is well-formed but matches no instant, ever (`0 0 30 2 *`).
    case neverFires(String)

    public var description: String {
        switch self {
        case .empty: "empty cron expression"
        case .wrongFieldCount(let count): "cron expression has \(count) fields; expected 5 (minute hour day-of-month month day-of-week) or one @alias"
        case .unknownAlias(let alias): "unknown cron alias '\(alias)' (use @hourly, @daily, @weekly, @monthly or @yearly)"
        case .badToken(let field, let token, let reason): "cron \(field.rawValue) field: bad token '\(token)': \(reason)"
        case .neverFires(let expression): "cron expression '\(expression)' can never fire: no month has those days"
        }
    }
}

// MARK: - Fields

/// How one of the five fields is read: its range and its names.
private struct CronField {
    var field: CronScheduleError.Field
    var range: ClosedRange<Int>
    /// Names for `range.lowerBound + index`, upper case.
    var names: [String] = []
    /// Day of week: 7 is another name for 0.
    var wrapsToZero = false

    static let minute = CronField(field: .minute, range: 0...59)
    static let hour = CronField(field: .hour, range: 0...23)
    static let dayOfMonth = CronField(field: .dayOfMonth, range: 1...31)
    static let month = CronField(
        field: .month, range: 1...12,
        names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
    static let dayOfWeek = CronField(
        field: .dayOfWeek, range: 0...7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], wrapsToZero: true
    )

    /// The allowed values as bits, and whether the field starts with `*` (Vixie's test for
    /// "unrestricted" day fields, so `*/2` counts as unrestricted).
    func parse(_ text: String) throws(CronScheduleError) -> (values: UInt64, startsWithStar: Bool) {
        var values: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            values |= try parseItem(String(item))
        }
        return (values, text.hasPrefix("*"))
    }

    private func parseItem(_ item: String) throws(CronScheduleError) -> UInt64 {
        guard !item.isEmpty else { throw bad(item, "empty list item") }
        let parts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else { throw bad(item, "more than one '/'") }
        var step = 1
        if parts.count == 2 {
            guard let parsed = number(parts[1]), parsed >= 1, parsed <= range.upperBound else {
                throw bad(item, "step must be a number from 1 to \(range.upperBound)")
            }
            step = parsed
        }
        let bounds: ClosedRange<Int>
        if parts[0] == "*" {
            bounds = wrapsToZero ? range.lowerBound...(range.upperBound - 1) : range
        } else {
            let ends = parts[0].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard ends.count <= 2 else { throw bad(item, "more than one '-'") }
            let low = try value(ends[0], in: item)
            let high = ends.count == 2 ? try value(ends[1], in: item) : low
            guard low <= high else { throw bad(item, "range runs backwards") }
            guard ends.count == 2 || parts.count == 1 else { throw bad(item, "a step needs '*' or a range, as in */n or a-b/n") }
            bounds = low...high
        }
        var bits: UInt64 = 0
        for value in stride(from: bounds.lowerBound, through: bounds.upperBound, by: step) {
            bits |= 1 << (wrapsToZero && value == range.upperBound ? 0 : value)
        }
        return bits
    }

    private func value(_ text: String, in item: String) throws(CronScheduleError) -> Int {
        if let index = names.firstIndex(of: asciiUppercased(text)) { return range.lowerBound + index }
        guard let parsed = number(text) else {
            let expected = names.isEmpty ? "a number" : "a number or a name like \(names[0])"
            throw bad(item, "'\(text)' is not \(expected)")
        }
        guard range.contains(parsed) else { throw bad(item, "\(parsed) is outside \(range.lowerBound)-\(range.upperBound)") }
        return parsed
    }

    /// Decimal digits only; long runs are clamped rather than overflowing (they fail the
    /// range check anyway).
    private func number(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return text.utf8.reduce(0) { min($0 * 10 + Int($1 - UInt8(ascii: "0")), 1_000_000) }
    }

    private func bad(_ token: String, _ reason: String) -> CronScheduleError {
        .badToken(field: field, token: token, reason: reason)
    }
}

private func asciiUppercased(_ text: String) -> String {
    String(decoding: text.utf8.map { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") ? $0 - 32 : $0 }, as: UTF8.self)
}

private func asciiLowercased(_ text: String) -> String {
    String(decoding: text.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }, as: UTF8.self)
}

private func floorDivide(_ value: Int64, by divisor: Int64) -> Int64 {
    let quotient = value / divisor
    return (value % divisor < 0) ? quotient - 1 : quotient
}

// MARK: - Calendar
