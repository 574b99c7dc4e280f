/// Checks on the raw text of a DAG file, made before YAML sees it, against input that
/// would make parsing expensive or ambiguous.
///
/// Anchors are refused here rather than after composing because Yams expands aliases
/// while composing and hashes mapping keys to find duplicates: an alias used as a key
/// in a "billion laughs" document costs exponential time before any tree exists to
/// inspect. A DAG file has no need for anchors, and without an anchor no alias resolves.
enum DAGFileInputScreen {
    /// Problems with `bytes`, each with its 1-based line; empty when the text may be parsed.
    /// Stops at the first problem of each kind.
    static func problems(in bytes: some Collection<UInt8>) -> [(line: Int?, message: String)] {
        if bytes.count > DAGFile.maxInputBytes {
            return [(nil, "file is \(bytes.count) bytes; at most \(DAGFile.maxInputBytes) (1 MiB)")]
        }
        var problems: [(line: Int?, message: String)] = []
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var line = 1
        var previous: Unicode.Scalar = "\n"
        var pendingAnchorLine: Int?  // an `&` where a node may start; an anchor if a name follows
        var reportedNUL = false
        var reportedAnchor = false
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if let anchorLine = pendingAnchorLine, !endsToken(scalar) {
                    problems.append((anchorLine, "YAML anchors and aliases (&name, *name) are not supported; write the value out"))
                    reportedAnchor = true
                }
                pendingAnchorLine = nil
                if scalar == "&", !reportedAnchor, startsNode(after: previous) { pendingAnchorLine = line }
                if scalar == "\0", !reportedNUL {
                    problems.append((line, "file contains a NUL character"))
                    reportedNUL = true
                }
                if scalar == "\n" { line += 1 }
                previous = scalar
            case .emptyInput:
                break decoding
            case .error:
                problems.append((line, "file is not valid UTF-8"))
                break decoding
            }
        }
        return problems
    }

    /// Whether a node (and so an anchor) may start right after `scalar`. Over-inclusive on
    /// purpose: a false alarm costs a rewritten value, a miss costs a stuck server.
    private static func startsNode(after scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case " ", "\t", "\n", "\r", "[", "{", ",", ":", "?", "-", "\u{FEFF}": true
        default: false
        }
    }

    /// Whether `scalar` ends a token, so an `&` before it is a lone ampersand, not an anchor.
    private static func endsToken(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case " ", "\t", "\n", "\r", "[", "]", "{", "}", ",": true
        default: false
        }
    }
}
