/// Why bytes could not be decoded into a message, or a message could not be encoded.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes are not a valid encoding of the message (bad tag, bad wire type,
    /// truncated field, a length running past the end, …).
    case malformed(message: String)
    /// The input, or what decoding it would allocate, exceeds the limit.
    case tooLarge(message: String, size: Int, limit: Int)
    /// A `string` field is not valid UTF-8.
    case invalidUTF8(message: String, field: String)
    /// A `string` field holds U+0000, which protobuf-c cannot carry.
    case embeddedNUL(message: String, field: String)

    public var description: String {
        switch self {
        case .malformed(let m):
            return "malformed \(m): the bytes are not a valid protobuf encoding"
        case .tooLarge(let m, let size, let limit):
            return "\(m) too large: \(size) bytes, limit \(limit)"
        case .invalidUTF8(let m, let f):
            return "\(m).\(f) is not valid UTF-8"
        case .embeddedNUL(let m, let f):
            return "\(m).\(f) contains U+0000, which cannot be encoded"
        }
    }
}
