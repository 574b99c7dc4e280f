/// Custom metadata of a call (gRPC PROTOCOL-HTTP2, *Custom-Metadata*): an ordered multimap
/// from lower-case keys to values. Keys ending in `-bin` hold bytes, sent base64-encoded;
/// other keys hold printable-ASCII text.
///
/// Order and duplicates are kept as added. Everything in a `GRPCMetadata` can be sent: the
/// adding functions refuse what the spec or the transport forbids, and
/// ``init(wireHeaders:)`` drops what it could not send back, so an application may always
/// echo received metadata.
public struct GRPCMetadata: Hashable, Sendable, RandomAccessCollection, CustomStringConvertible {
    /// A metadata value: text for an ordinary key, bytes for a `-bin` key.
    public enum Value: Hashable, Sendable {
        /// Printable ASCII (0x20–0x7E), for a key not ending in `-bin`.
        case string(String)
        /// Any bytes, for a key ending in `-bin`.
        case binary([UInt8])
    }

    /// One key and one of its values.
    public struct Entry: Hashable, Sendable {
        /// Lower-case, `[0-9a-z_.-]+`.
        public let key: String
        /// `.binary` exactly when `key` ends in `-bin`.
        public let value: Value
    }

    private var entries: [Entry] = []

    /// No metadata.
    public init() {}

    // MARK: Collection

    /// Index of the first entry.
    public var startIndex: Int { entries.startIndex }
    /// One past the last entry.
    public var endIndex: Int { entries.endIndex }
    /// The entry at `position`, in the order entries were added.
    public subscript(position: Int) -> Entry { entries[position] }

    // MARK: Adding and removing

    /// Appends a text value under `key` (upper-case ASCII letters in `key` are lower-cased).
    /// - Throws: ``GRPCMetadataError`` if the key is malformed, reserved or ends in `-bin`,
    ///   or the value has a character outside 0x20–0x7E.
    public mutating func addString(_ value: String, forKey key: String) throws(GRPCMetadataError) {
        let key = try Self.checkedKey(key)
        guard !Self.isBinaryKey(key) else { throw GRPCMetadataError(key: key, reason: .textValueForBinaryKey) }
        guard Self.isValidText(value) else { throw GRPCMetadataError(key: key, reason: .invalidTextValue) }
        entries.append(Entry(key: key, value: .string(value)))
    }

    /// Appends a binary value under `key`, which must end in `-bin` (upper-case ASCII letters
    /// are lower-cased).
    /// - Throws: ``GRPCMetadataError`` if the key is malformed, reserved or lacks `-bin`.
    public mutating func addBinary(_ value: [UInt8], forKey key: String) throws(GRPCMetadataError) {
        let key = try Self.checkedKey(key)
        guard Self.isBinaryKey(key) else { throw GRPCMetadataError(key: key, reason: .binaryValueForTextKey) }
        entries.append(Entry(key: key, value: .binary(value)))
    }

    /// Removes every value under `key` (compared case-insensitively).
    public mutating func removeAll(forKey key: String) {
        let key = Self.lowercased(key)
        entries.removeAll { $0.key == key }
    }

    // MARK: Reading

    /// Every value under `key` (compared case-insensitively), in the order they were added.
    public func values(forKey key: String) -> [Value] {
        let key = Self.lowercased(key)
        return entries.compactMap { $0.key == key ? $0.value : nil }
    }

    /// The first text value under `key`, if any.
    public func firstString(forKey key: String) -> String? {
        for case .string(let text) in values(forKey: key) { return text }
        return nil
    }

    /// The first binary value under `key`, if any.
    public func firstBinary(forKey key: String) -> [UInt8]? {
        for case .binary(let bytes) in values(forKey: key) { return bytes }
        return nil
    }

    /// The keys only, `[authorization, x-trace-bin]`: values are often credentials, and a
    /// description ends up in logs.
    public var description: String {
        "[" + entries.map(\.key).joined(separator: ", ") + "]"
    }

    // MARK: Wire form

    /// The metadata as HTTP/2 header fields, in order: text values as they are, binary values
    /// base64-encoded without padding (as the spec says to emit).
    public var wireHeaders: [(name: String, value: String)] {
        entries.map { entry in
            switch entry.value {
            case .string(let text): (entry.key, text)
            case .binary(let bytes): (entry.key, GRPCBase64.encode(bytes))
            }
        }
    }

    /// The custom metadata among received header (or trailer) fields, in order.
    ///
    /// Never fails; what the spec lets a receiver throw away is dropped, silently:
    /// - reserved fields (``isReservedKey(_:)``: pseudo-headers, `grpc-*` protocol fields,
    ///   `te`, `content-type`, `user-agent` …), which the transport reads itself;
    /// - names that are not `[0-9a-z_.-]+` (upper case is lower-cased first);
    /// - text values with a byte outside 0x20–0x7E, after leading and trailing spaces and
    ///   tabs are stripped (which the spec allows);
    /// - `-bin` values that are not base64. A `-bin` field is split on `,` first (a proxy
    ///   may have joined duplicates), each part becoming its own entry; padded and
    ///   unpadded base64 are both accepted.
    public init(wireHeaders fields: [(name: String, value: String)]) {
        self.init(fields: fields)
    }

    /// ``init(wireHeaders:)`` for any sequence of fields (a lazy view of a transport's own
    /// header type, say, so nothing is copied).
    init(fields: some Sequence<(name: String, value: String)>) {
        for (name, value) in fields {
            // Most received fields are reserved ones, and HTTP/2 names are lower case already:
            // this test first, before lower-casing, skips them at the least cost.
            if Self.isReservedKey(name) { continue }
            let key = Self.lowercased(name)
            guard Self.isValidKey(key), key == name || !Self.isReservedKey(key) else { continue }
            if Self.isBinaryKey(key) {
                for part in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                    if let bytes = GRPCBase64.decode(Self.trimmed(part)) {
                        entries.append(Entry(key: key, value: .binary(bytes)))
                    }
                }
            } else {
                let text = Self.trimmed(value.utf8[...])
                guard text.allSatisfy(Self.isVisibleASCII) else { continue }
                // Untrimmed (the usual case): the received String itself, not a copy.
                let string = text.count == value.utf8.count ? value : String(decoding: text, as: UTF8.self)
                entries.append(Entry(key: key, value: .string(string)))
            }
        }
    }

    // MARK: Rules

    /// Whether `key` (already lower-case) is one applications may not send, because the
    /// transport owns it. These are the pseudo-headers (`:path` …); `te`, `content-type`,
    /// `user-agent` and `host`; the HTTP/1 connection fields HTTP/2 forbids (`connection`,
    /// `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`) and `content-length`
    /// (gRPC bodies are length-prefixed messages); and every `grpc-` key — the spec's own
    /// (`grpc-timeout`, `grpc-status` …) and those it reserves for future use — except
    /// `grpc-status-details-bin`, which carries an application's rich error details
    /// (`google.rpc.Status`) and which gRPC implementations pass to the application.
    public static func isReservedKey(_ key: String) -> Bool {
        let utf8 = key.utf8
        if utf8.first == UInt8(ascii: ":") { return true }
        if utf8.starts(with: "grpc-".utf8) { return key != "grpc-status-details-bin" }
        switch key {
        case "te", "content-type", "user-agent", "host", "connection", "keep-alive",
             "proxy-connection", "transfer-encoding", "upgrade", "content-length":
            return true
        default:
            return false
        }
    }

    /// *Header-Name*: `[0-9a-z_.-]+`, and a `-bin` key has a name before its suffix.
    static func isValidKey(_ key: String) -> Bool {
        guard !key.isEmpty, key != "-bin" else { return false }
        return key.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
                true
            default:
                false
            }
        }
    }

    static func isBinaryKey(_ key: String) -> Bool { key.utf8.count >= 4 && key.utf8.suffix(4).elementsEqual("-bin".utf8) }

    /// *ASCII-Value*, except that an empty value is allowed: the grammar says `1*`, but
    /// HTTP/2 allows empty values and other gRPC implementations send and accept them.
    static func isValidText(_ text: String) -> Bool { text.utf8.allSatisfy(isVisibleASCII) }

    private static func isVisibleASCII(_ byte: UInt8) -> Bool { (0x20...0x7E).contains(byte) }

    private static func checkedKey(_ key: String) throws(GRPCMetadataError) -> String {
        let key = lowercased(key)
        guard isValidKey(key) else { throw GRPCMetadataError(key: key, reason: .invalidKey) }
        guard !isReservedKey(key) else { throw GRPCMetadataError(key: key, reason: .reservedKey) }
        return key
    }

    /// ASCII-only lower-casing: header names are ASCII, and `String.lowercased()` would
    /// also map non-ASCII letters, turning an invalid name into a different one.
    private static func lowercased(_ key: String) -> String {
        guard key.utf8.contains(where: { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) else { return key }
        return String(decoding: key.utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    private static func trimmed(_ bytes: Substring.UTF8View) -> Substring.UTF8View {
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = bytes.firstIndex(where: { !isBlank($0) }),
              let last = bytes.lastIndex(where: { !isBlank($0) }) else { return bytes[bytes.endIndex...] }
        return bytes[first...last]
    }
}

/// Why an application's metadata was refused.
public struct GRPCMetadataError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What rule was broken.
    public enum Reason: Hashable, Sendable {
        /// The key is empty or has a character outside `[0-9a-z_.-]` (after lower-casing).
        case invalidKey
        /// The transport owns the key (see ``GRPCMetadata/isReservedKey(_:)``).
        case reservedKey
        /// A text value has a character outside 0x20–0x7E.
        case invalidTextValue
        /// A text value was given for a key ending in `-bin`.
        case textValueForBinaryKey
        /// A binary value was given for a key not ending in `-bin`.
        case binaryValueForTextKey
    }

    /// The offending key, lower-cased.
    public let key: String
    /// What rule was broken.
    public let reason: Reason

    /// E.g. `metadata key 'grpc-timeout' is reserved`.
    public var description: String {
        switch reason {
        case .invalidKey: "metadata key '\(key)' is not [0-9a-z_.-]+"
        case .reservedKey: "metadata key '\(key)' is reserved for the transport"
        case .invalidTextValue: "metadata value for '\(key)' is not printable ASCII"
        case .textValueForBinaryKey: "metadata key '\(key)' ends in -bin and needs a binary value"
        case .binaryValueForTextKey: "metadata key '\(key)' needs a text value (binary keys end in -bin)"
        }
    }
}

/// Base64 with the standard alphabet (RFC 4648 §4), as *Binary-Header* values use.
enum GRPCBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 6-bit value of each alphabet byte; 0xFF for bytes outside the alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    /// `bytes` encoded without `=` padding.
    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let group = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(alphabet[Int(group >> 6 & 63)])
            out.append(alphabet[Int(group & 63)])
            i += 3
        }
        switch bytes.count - i {
        case 1:
            let group = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
        case 2:
            let group = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(alphabet[Int(group >> 6 & 63)])
        default:
            break
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes `text` encodes, padded or not; `nil` if it is not base64 (a byte outside the
    /// alphabet, padding that does not complete a 4-character group, or a dangling character).
    /// Unused low bits of the last character are ignored.
    static func decode<Text: Collection<UInt8>>(_ text: Text) -> [UInt8]? {
        var body = Array(text)
        if body.count % 4 == 0, body.last == UInt8(ascii: "=") {
            body.removeLast()
            if body.last == UInt8(ascii: "=") { body.removeLast() }
        }
        guard body.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(body.count * 3 / 4)
        var group: UInt32 = 0
        var filled = 0
        for byte in body {
            let value = values[Int(byte)]
            guard value != 0xFF else { return nil }
            group = group << 6 | UInt32(value)
            filled += 1
            if filled == 4 {
                out.append(UInt8(truncatingIfNeeded: group >> 16))
                out.append(UInt8(truncatingIfNeeded: group >> 8))
                out.append(UInt8(truncatingIfNeeded: group))
                group = 0
                filled = 0
            }
        }
        switch filled {
        case 2: out.append(UInt8(truncatingIfNeeded: group >> 4))
        case 3:
            out.append(UInt8(truncatingIfNeeded: group >> 10))
            out.append(UInt8(truncatingIfNeeded: group >> 2))
        default: break
        }
        return out
    }
}
