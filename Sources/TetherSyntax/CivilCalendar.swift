/// The proleptic Gregorian calendar in UTC, by Howard Hinnant's days-from-civil algorithms
/// (http://howardhinnant.github.io/date_algorithms.html). Day 0 is 1970-01-01.
public enum CivilCalendar {
    public struct Date: Hashable, Sendable {
        public var year: Int64
        public var month: Int
        public var day: Int

        public init(year: Int64, month: Int, day: Int) {
            self.year = year
            self.month = month
            self.day = day
        }
    }

    public static let daysPer400Years: Int64 = 146_097

    public static func days(fromYear year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let shiftedMonth = Int64(month > 2 ? month - 3 : month + 9)
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * daysPer400Years + dayOfEra - 719_468
    }

    public static func date(fromDays days: Int64) -> Date {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / daysPer400Years
        let dayOfEra = z - era * daysPer400Years
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * shiftedMonth + 2) / 5 + 1)
        let month = Int(shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9)
        return Date(year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month: month, day: day)
    }

    /// 0 is Sunday; 1970-01-01 was a Thursday.
    public static func weekday(ofDays days: Int64) -> Int {
        let remainder = (days + 4) % 7
        return Int(remainder < 0 ? remainder + 7 : remainder)
    }

    public static func isLeapYear(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    public static func days(inYear year: Int64, month: Int) -> Int {
        month == 2 ? (isLeapYear(year) ? 29 : 28) : longestDays(ofMonth: month)
    }

    /// The most days `month` ever has (29 for February).
    public static func longestDays(ofMonth month: Int) -> Int {
        switch month {
        case 2: 29
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
