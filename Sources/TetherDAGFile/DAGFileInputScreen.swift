/// Checks on the raw bytes of a DAG file, made before YAML sees them: the size cap, UTF-8
/// and NUL characters. What the text may cost once parsed is `YAMLExpansionBudget`'s job.
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
        var previous: Unicode.Scalar = "\0"
        var reportedNUL = false
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "\0", !reportedNUL {
                    problems.append((line, "file contains a NUL character"))
                    reportedNUL = true
                }
                if isLineBreak(scalar), !(previous == "\r" && scalar == "\n") { line += 1 }
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

    /// libyaml's line breaks (YAML 1.1): LF, CR (CR LF is one), NEL, LS and PS, so lines
    /// here agree with the lines in libyaml's messages.
    static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}": true
        default: false
        }
    }
}
