/// Durations as people write them in DAG files and on the command line: `500ms`, `30s`,
/// `5m`, `1h30m`, `2d`, or a bare integer meaning seconds.
///
/// Grammar: one or more `<digits><unit>` parts with units `d`, `h`, `m`, `s`, `ms`, each
/// unit at most once and in that order (largest first), no spaces, no sign, no fractions;
/// or digits alone (seconds). The value is in milliseconds and must fit in an `Int64`.
/// `format(milliseconds:)` writes the canonical form that `milliseconds(parsing:)` reads
/// back to the same value.
public enum DurationText {
    /// The number of milliseconds `text` stands for.
    ///
    /// - Throws: `DurationTextError` naming the text and what is wrong with it.
    public static func milliseconds(parsing text: String) throws(DurationTextError) -> Int64 {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw .empty }
        if bytes.first == UInt8(ascii: "-") { throw .negative(text) }
        if bytes.allSatisfy(isDigit) {
            return try scaled(number(bytes[...], text: text), by: 1_000, text: text)
        }

        var total: Int64 = 0
        var index = 0
        var previousUnitIndex = -1
        while index < bytes.count {
            let digitsStart = index
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            guard index > digitsStart else { throw .malformed(text) }
            let value = try number(bytes[digitsStart..<index], text: text)
            let unitStart = index
            while index < bytes.count, isLetter(bytes[index]) { index += 1 }
            let unitText = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            guard !unitText.isEmpty else { throw .malformed(text) }
            guard let unitIndex = units.firstIndex(where: { $0.symbol == unitText }) else {
                throw .unknownUnit(text, unit: unitText)
            }
            guard unitIndex > previousUnitIndex else { throw .unitOutOfOrder(text, unit: unitText) }
            previousUnitIndex = unitIndex
            let part = try scaled(value, by: units[unitIndex].milliseconds, text: text)
            let (sum, overflow) = total.addingReportingOverflow(part)
            guard !overflow else { throw .overflow(text) }
            total = sum
        }
        return total
    }

    /// The canonical text for `milliseconds`, largest units first: 90_000 is `1m30s`,
    /// 1_500 is `1s500ms`, 0 is `0s`. Negative values are written with a leading `-`
    /// (which `milliseconds(parsing:)` rejects).
    public static func format(milliseconds: Int64) -> String {
        if milliseconds == 0 { return "0s" }
        // The magnitude, so Int64.min needs no special case.
        var remaining = milliseconds.magnitude
        var text = milliseconds < 0 ? "-" : ""
        for unit in units where remaining >= UInt64(unit.milliseconds) {
            text += "\(remaining / UInt64(unit.milliseconds))\(unit.symbol)"
            remaining %= UInt64(unit.milliseconds)
        }
        return text
    }

    /// Units, largest first; parts must appear in this order.
    private static let units: [(symbol: String, milliseconds: Int64)] = [
        ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1),
    ]

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") }

    private static func number(_ digits: ArraySlice<UInt8>, text: String) throws(DurationTextError) -> Int64 {
        var value: Int64 = 0
        for digit in digits {
            let (times10, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = times10.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            guard !overflowA, !overflowB else { throw .overflow(text) }
            value = sum
        }
        return value
    }

    private static func scaled(_ value: Int64, by factor: Int64, text: String) throws(DurationTextError) -> Int64 {
        let (product, overflow) = value.multipliedReportingOverflow(by: factor)
        guard !overflow else { throw .overflow(text) }
        return product
    }
}

/// Why a duration text was rejected. Each case carries the text as written.
public enum DurationTextError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    case negative(String)
    /// Not `<digits><unit>…`: e.g. a fraction, a space, a unit with no number.
    case malformed(String)
    case unknownUnit(String, unit: String)
    /// A unit repeated or after a smaller one (`30s1m`, `1m1m`).
    case unitOutOfOrder(String, unit: String)
    /// More milliseconds than an `Int64` holds.
    case overflow(String)

    public var description: String {
        switch self {
        case .empty: "empty duration"
        case .negative(let text): "duration '\(text)' is negative"
        case .malformed(let text): "duration '\(text)' is not like 500ms, 30s, 5m, 1h30m, 2d or a number of seconds"
        case .unknownUnit(let text, let unit): "duration '\(text)' has unknown unit '\(unit)' (use d, h, m, s or ms)"
        case .unitOutOfOrder(let text, let unit): "duration '\(text)': unit '\(unit)' repeated or out of order (largest first)"
        case .overflow(let text): "duration '\(text)' is too large"
        }
    }
}
