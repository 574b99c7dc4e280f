/// One SQLite value, as bound to a statement or read from a column.
public enum SQLiteValue: Hashable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    /// The integer, or nil for any other storage class.
    public var int64: Int64? { if case .integer(let value) = self { value } else { nil } }
    /// The real, or the integer widened; nil otherwise.
    public var double: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }
    /// The text, or nil for any other storage class.
    public var text: String? { if case .text(let value) = self { value } else { nil } }
    /// The blob, or nil for any other storage class.
    public var blob: [UInt8]? { if case .blob(let value) = self { value } else { nil } }
    public var isNull: Bool { self == .null }

    /// Short enough for an error message: long text and blobs are summarised.
    var shortDescription: String {
        switch self {
        case .null: "NULL"
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .text(let value) where value.utf8.count <= 64: "'\(value)'"
        case .text(let value): "'\(value.prefix(48))…' (\(value.utf8.count) bytes)"
        case .blob(let value): "<blob \(value.count) bytes>"
        }
    }
}

extension SQLiteValue: ExpressibleByNilLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .real(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    /// SQLite has no boolean: true is 1, false is 0.
    public init(booleanLiteral value: Bool) { self = .integer(value ? 1 : 0) }
}

extension SQLiteValue: CustomStringConvertible {
    public var description: String { shortDescription }
}

extension SQLiteValue {
    /// An integer value from a Swift `Int`.
    public init(_ value: Int) { self = .integer(Int64(value)) }
}
