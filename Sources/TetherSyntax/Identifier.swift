/// Names of DAGs, tasks, agents, queues and entrypoints: 1-128 characters of
/// `[A-Za-z0-9._-]`, and not `.` or `..` (a name may become a path component, as the
/// agent's log directories are). One rule wherever a name is written or checked: a DAG
/// file, an agent's config, a Hello, a token's agent name.
public enum Identifier {
    public static let maxLength = 128

    /// Why `text` is not a valid name, or nil if it is.
    public static func problem(_ text: String) -> String? {
        let bytes = text.utf8
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > maxLength { return "is \(bytes.count) characters; at most \(maxLength)" }
        if !bytes.allSatisfy(isAllowed) { return "'\(text)' may only contain A-Z a-z 0-9 . _ -" }
        if text == "." || text == ".." { return "must not be '.' or '..'" }
        return nil
    }

    public static func isValid(_ text: String) -> Bool { problem(text) == nil }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}
