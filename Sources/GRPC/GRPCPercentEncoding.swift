/// The percent-encoding of the `grpc-message` trailer (gRPC PROTOCOL-HTTP2, *Status-Message*):
/// the message's UTF-8 bytes, where every byte outside 0x20–0x7E, and `%` itself, is
/// written as `%` and two upper-case hex digits.
public enum GRPCPercentEncoding {
    /// `message` as a `grpc-message` value; ASCII text without `%` comes back unchanged.
    public static func encode(_ message: String) -> String {
        let utf8 = message.utf8
        if utf8.allSatisfy(isUnencoded) { return message }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count + utf8.count / 2)
        for byte in utf8 {
            if isUnencoded(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The message a `grpc-message` value carries. Never fails, as the spec requires:
    /// a `%` not followed by two hex digits (either case) is kept as it is, and bytes that
    /// do not form valid UTF-8 become U+FFFD.
    public static func decode(_ value: String) -> String {
        let utf8 = Array(value.utf8)
        guard utf8.contains(UInt8(ascii: "%")) else { return value }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count,
               let high = hexValue(utf8[i + 1]), let low = hexValue(utf8[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// *Percent-Byte-Unencoded*: space and VCHAR, except `%`.
    private static func isUnencoded(_ byte: UInt8) -> Bool {
        (0x20...0x7E).contains(byte) && byte != UInt8(ascii: "%")
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
