/// Instants as RFC 3339 text in UTC, the one form Tether shows and reads them in: what
/// tasks get as `TETHER_LOGICAL_DATE`, what `run show` prints, what `--logical-date` takes.
///
/// Written as `2026-12-07T06:00:00Z`, with `.ffffff` only when there are microseconds.
/// Read: a date (`2026-12-07`, midnight UTC), or a date and time with `T` or a space, whole
/// or fractional seconds (up to 6 digits) or none, and `Z` or a `±hh:mm` offset (a time
/// without a zone is refused: it would be ambiguous). Pure arithmetic on the proleptic
/// Gregorian calendar, years 1970-9999; no Foundation, no locale.
public enum UTCTimestamp {
    /// The instants it reads and writes: 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z.
    public static let unixMicrosecondsRange: ClosedRange<Int64> = 0...253_402_300_799_999_999

    /// `unixMicroseconds` as RFC 3339 UTC text.
    public static func format(unixMicroseconds: Int64) -> String {
        let seconds = unixMicroseconds >= 0 ? unixMicroseconds / 1_000_000 : (unixMicroseconds - 999_999) / 1_000_000
        let micros = unixMicroseconds - seconds * 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let date = CivilCalendar.date(fromDays: days)
        var text = pad(date.year, 4) + "-" + pad(Int64(date.month), 2) + "-" + pad(Int64(date.day), 2) + "T" + pad(secondOfDay / 3600, 2) + ":"
            + pad(secondOfDay / 60 % 60, 2) + ":" + pad(secondOfDay % 60, 2)
        if micros != 0 { text += "." + pad(micros, 6) }
        return text + "Z"
    }

    /// The instant `text` names, in microseconds since the Unix epoch.
    /// - Throws: `UTCTimestampError` quoting the text and saying what is expected.
    public static func unixMicroseconds(parsing text: String) throws(UTCTimestampError) -> Int64 {
        var scanner = Scanner(bytes: Array(text.utf8))
        guard let year = scanner.digits(4), scanner.take("-"), let month = scanner.digits(2), scanner.take("-"),
              let day = scanner.digits(2), (1970...9999).contains(year), (1...12).contains(month),
              (1...CivilCalendar.days(inYear: year, month: Int(month))).contains(Int(day)) else { throw .malformed(text) }
        var micros = CivilCalendar.days(fromYear: year, month: Int(month), day: Int(day)) * 86_400_000_000
        if scanner.atEnd { return micros }
        guard scanner.take("T") || scanner.take("t") || scanner.take(" "),
              let hour = scanner.digits(2), hour < 24, scanner.take(":"), let minute = scanner.digits(2), minute < 60
        else { throw .malformed(text) }
        var second: Int64 = 0
        var fraction: Int64 = 0
        if scanner.take(":") {
            guard let s = scanner.digits(2), s < 60 else { throw .malformed(text) }
            second = s
            if scanner.take(".") {
                var digits = 0
                while let d = scanner.digits(1) {
                    digits += 1
                    guard digits <= 6 else { throw .malformed(text) }
                    fraction = fraction * 10 + d
                }
                guard digits > 0 else { throw .malformed(text) }
                for _ in digits..<6 { fraction *= 10 }
            }
        }
        micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction
        if scanner.take("Z") || scanner.take("z") {
            guard scanner.atEnd else { throw .malformed(text) }
            return micros
        }
        let sign: Int64
        if scanner.take("+") { sign = 1 } else if scanner.take("-") { sign = -1 } else { throw .noZone(text) }
        guard let offsetHours = scanner.digits(2), offsetHours < 24, scanner.take(":"),
              let offsetMinutes = scanner.digits(2), offsetMinutes < 60, scanner.atEnd else { throw .malformed(text) }
        micros -= sign * (offsetHours * 60 + offsetMinutes) * 60_000_000
        guard micros >= 0 else { throw .malformed(text) }
        return micros
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var atEnd: Bool { index == bytes.count }

        mutating func take(_ character: Unicode.Scalar) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(character.value) else { return false }
            index += 1
            return true
        }

        mutating func digits(_ count: Int) -> Int64? {
            guard index + count <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<index + count] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

/// Why a timestamp was refused.
public enum UTCTimestampError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case noZone(String)

    public var description: String {
        switch self {
        case .malformed(let text):
            "timestamp '\(text)' is not like 2026-12-07, 2026-12-07T06:00:00Z or 2026-12-07T08:00:00+02:00 (years 1970-9999)"
        case .noZone(let text):
            "timestamp '\(text)' has a time but no zone: end it with Z (UTC) or an offset like +02:00"
        }
    }
}
