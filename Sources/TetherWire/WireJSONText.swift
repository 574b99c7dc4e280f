#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// JSON text for callers outside the protobuf mapping, escaped by the same rules.
public enum JSONText {
    /// `members` as one compact JSON object of strings, keys sorted, non-ASCII as UTF-8:
    /// e.g. what an agent hands a task on stdin.
    public static func object(_ members: [String: String]) -> String {
        var text = WireJSONText(WireJSONOptions(layout: .compact, escapesNonASCII: false))
        text.beginObject()
        for key in members.keys.sorted() {
            text.key(key)
            text.string(members[key]!)
        }
        text.endObject()
        return text.string
    }

    /// A member value of `object(members:)`.
    public enum Value: Sendable {
        case string(String)
        case integer(Int64)
        /// An object of strings, keys sorted.
        case strings([String: String])
        /// JSON text made elsewhere (a message's `jsonString`, or another `object`),
        /// written as it is: the caller vouches that it is one valid JSON value.
        case json(String)
    }

    /// `members` as one compact JSON object, in the order given, non-ASCII as UTF-8.
    public static func object(members: [(key: String, value: Value)]) -> String {
        var text = WireJSONText(WireJSONOptions(layout: .compact, escapesNonASCII: false))
        text.beginObject()
        for (key, value) in members {
            text.key(key)
            switch value {
            case .string(let string): text.string(string)
            case .integer(let number): text.literal(String(number))
            case .strings(let strings):
                text.beginObject()
                for key in strings.keys.sorted() {
                    text.key(key)
                    text.string(strings[key]!)
                }
                text.endObject()
            case .json(let json): text.literal(json)
            }
        }
        text.endObject()
        return text.string
    }
}

/// JSON text being written, token by token, with the layout, string escaping and
/// number formatting of Python's `json.dumps` as `MessageToJson` calls it. Knows
/// nothing of protobuf. Used by one `jsonString` call on one thread.
struct WireJSONText {
    private(set) var bytes: [UInt8] = []
    private let pretty: Bool
    private let escapesNonASCII: Bool
    /// Members or elements written so far in each open object or array, innermost last.
    private var written: [Int] = []

    init(_ options: WireJSONOptions) {
        pretty = options.layout == .pretty
        escapesNonASCII = options.escapesNonASCII
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }

    mutating func beginObject() { open("{") }
    mutating func endObject() { close("}") }
    mutating func beginArray() { open("[") }
    mutating func endArray() { close("]") }

    /// Starts the next member of the innermost object; its value comes next.
    mutating func key(_ name: String) {
        nextItem()
        string(name)
        bytes.append(UInt8(ascii: ":"))
        if pretty { bytes.append(UInt8(ascii: " ")) }
    }

    /// `key(_:)` of a name already written as a JSON string (quotes included).
    mutating func key(quoted: [UInt8]) {
        nextItem()
        bytes.append(contentsOf: quoted)
        bytes.append(UInt8(ascii: ":"))
        if pretty { bytes.append(UInt8(ascii: " ")) }
    }

    /// Starts the next element of the innermost array; the value comes next.
    mutating func element() { nextItem() }

    /// A token written as is: a number or `true`/`false`.
    mutating func literal(_ token: String) { bytes.append(contentsOf: token.utf8) }

    /// A JSON number, or the string "NaN", "Infinity" or "-Infinity" as the proto3
    /// mapping wants; finite values as Python's `repr(float)` prints them.
    mutating func number(_ value: Double) {
        if let special = Self.nonFinite(value) { return string(special) }
        literal(Self.pythonRepr(shortest: value.description))
    }

    /// A `float` field, as Python prints it: the float rounded by
    /// `type_checkers.ToShortestFloat` (see `pythonShortest`), then formatted as `repr`.
    mutating func number(_ value: Float) {
        if let special = Self.nonFinite(Double(value)) { return string(special) }
        literal(Self.pythonRepr(shortest: Self.pythonShortest(value).description))
    }

    /// A JSON string: `"`, `\` and control characters escaped as `json.dumps` escapes
    /// them (`\b \f \n \r \t`, else `\u00xx`), and with `escapesNonASCII` everything
    /// from U+007F up as `\uxxxx` (UTF-16 surrogate pairs above U+FFFF).
    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { string(utf8: $0) }
    }

    /// `string(_:)` of text already known to be valid UTF-8.
    mutating func string(utf8: UnsafeBufferPointer<UInt8>) {
        // Most text is printable ASCII with nothing to escape: copied in runs. Escaping
        // non-ASCII needs whole scalars: that text takes the scalar path below.
        if escapesNonASCII && utf8.contains(where: { $0 >= 0x7F }) {
            return string(scalars: String(decoding: utf8, as: UTF8.self))
        }
        bytes.append(UInt8(ascii: "\""))
        var run = 0
        for (i, byte) in utf8.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<i]))
            escape(UInt32(byte))
            run = i + 1
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run...]))
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func string(scalars value: String) {
        bytes.append(UInt8(ascii: "\""))
        for scalar in value.unicodeScalars {
            switch scalar.value {
            case 0..<0x20, 0x22, 0x5C: escape(scalar.value)
            case 0x20..<0x7F: bytes.append(UInt8(scalar.value))
            case _ where !escapesNonASCII: bytes.append(contentsOf: String(scalar).utf8)
            case 0x10000...:
                let v = scalar.value - 0x10000
                unicodeEscape(0xD800 + (v >> 10))
                unicodeEscape(0xDC00 + (v & 0x3FF))
            default: unicodeEscape(scalar.value)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `"`, `\` or a control character, escaped.
    private mutating func escape(_ value: UInt32) {
        switch value {
        case 0x22: bytes.append(contentsOf: #"\""#.utf8)
        case 0x5C: bytes.append(contentsOf: #"\\"#.utf8)
        case 0x08: bytes.append(contentsOf: #"\b"#.utf8)
        case 0x0C: bytes.append(contentsOf: #"\f"#.utf8)
        case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
        case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
        case 0x09: bytes.append(contentsOf: #"\t"#.utf8)
        default: unicodeEscape(value)
        }
    }

    // MARK: Layout

    private mutating func open(_ bracket: Unicode.Scalar) {
        bytes.append(UInt8(ascii: bracket))
        written.append(0)
    }

    /// Python writes an empty object or array as `{}` / `[]`, on one line.
    private mutating func close(_ bracket: Unicode.Scalar) {
        let count = written.removeLast()
        if pretty && count > 0 { newline() }
        bytes.append(UInt8(ascii: bracket))
    }

    private mutating func nextItem() {
        precondition(!written.isEmpty, "JSON item outside an object or array")
        if written[written.count - 1] > 0 { bytes.append(UInt8(ascii: ",")) }
        written[written.count - 1] += 1
        if pretty { newline() }
    }

    private mutating func newline() {
        bytes.append(UInt8(ascii: "\n"))
        bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * written.count))
    }

    private mutating func unicodeEscape(_ unit: UInt32) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(contentsOf: #"\u"#.utf8)
        for shift in stride(from: 12, through: 0, by: -4) { bytes.append(hex[Int(unit >> UInt32(shift)) & 0xF]) }
    }

    // MARK: Numbers and bytes

    private static func nonFinite(_ value: Double) -> String? {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        return nil
    }

    /// Reformats Swift's shortest round-trip rendering of a finite float (`description`:
    /// "1.0", "1e-05", "1.2345678901234568e+17") the way Python's `repr(float)` writes the
    /// same digits: positional when the decimal exponent is in [-4, 16), with ".0" added
    /// to whole numbers; otherwise `d.ddde±XX` with at least two exponent digits.
    static func pythonRepr(shortest: String) -> String {
        var text = Substring(shortest)
        let negative = text.first == "-"
        if negative { text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...].drop { $0 == "+" }) ?? 0
            text = text[..<e]
        }
        let dot = text.firstIndex(of: ".") ?? text.endIndex
        var digits = Array(text[..<dot].utf8) + Array(text[dot...].dropFirst().utf8)
        // The value is 0.DIGITS × 10^point.
        var point = text.distance(from: text.startIndex, to: dot) + exponent
        while digits.first == UInt8(ascii: "0") {
            digits.removeFirst()
            point -= 1
        }
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        let sign = negative ? "-" : ""
        guard !digits.isEmpty else { return sign + "0.0" }
        let d = String(decoding: digits, as: UTF8.self)
        if point <= -4 || point > 16 {
            let e = point - 1
            let mantissa = digits.count == 1 ? d : "\(d.prefix(1)).\(d.dropFirst())"
            let magnitude = String(abs(e))
            return "\(sign)\(mantissa)e\(e < 0 ? "-" : "+")\(magnitude.count < 2 ? "0" : "")\(magnitude)"
        }
        if point <= 0 { return "\(sign)0.\(String(repeating: "0", count: -point))\(d)" }
        if point >= digits.count { return "\(sign)\(d)\(String(repeating: "0", count: point - digits.count)).0" }
        return "\(sign)\(d.prefix(point)).\(d.dropFirst(point))"
    }

    /// Python's `type_checkers.ToShortestFloat`: the value rounded to 6, 7, 8 … significant
    /// digits (`'%.{p}g'`), the first rounding that reads back as the same 32-bit float.
    /// Not always the shortest decimal that does (Swift's `Float.description`): it never
    /// goes below 6 digits, which shows on subnormals (1.4013e-45, not 1e-45), and it
    /// tries only the nearest decimal of each length, which shows just above powers of two.
    static func pythonShortest(_ value: Float) -> Double {
        let exact = Double(value)
        for digits in 6...17 {
            let rounded = roundToSignificantDigits(exact, digits)
            if Float(rounded) == value { return rounded }
        }
        return exact
    }

    /// `value` correctly rounded to `digits` significant decimal digits, as C's `%.*e`
    /// (exact, ties to even on the binary value) rounds it.
    private static func roundToSignificantDigits(_ value: Double, _ digits: Int) -> Double {
        var buffer = [CChar](repeating: 0, count: 48)
        let count = withVaList([Int32(digits - 1), value]) { arguments in
            vsnprintf(&buffer, buffer.count, "%.*e", arguments)
        }
        precondition(count > 0 && Int(count) < buffer.count, "vsnprintf wrote \(count) bytes")
        let text = String(decoding: buffer[..<Int(count)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let rounded = Double(text) else { preconditionFailure("vsnprintf wrote \(text), not a number") }
        return rounded
    }

    /// Standard base64 (RFC 4648 §4) with `=` padding, as Python's `base64.b64encode`.
    static func base64(_ data: UnsafeBufferPointer<UInt8>) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var i = 0
        while i < data.count {
            let count = min(3, data.count - i)
            var group = UInt32(data[i]) << 16
            if count > 1 { group |= UInt32(data[i + 1]) << 8 }
            if count > 2 { group |= UInt32(data[i + 2]) }
            for k in 0..<4 {
                out.append(k <= count ? alphabet[Int(group >> UInt32(18 - 6 * k)) & 0x3F] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
