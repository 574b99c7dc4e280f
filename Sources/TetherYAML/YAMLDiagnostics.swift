package import Yams

/// How YAML readers (DAG files, agent configs) explain problems: a libyaml or Yams error as
/// a line and a message, and "did you mean" hints for mistyped keys.
public enum YAMLDiagnostics {
    /// A libyaml or Yams error as a line (1-based, when known) and a message.
    public static func problem(_ error: any Error, in yaml: String) -> (line: Int?, message: String) {
        guard let error = error as? YamlError else { return (nil, "YAML: \(error)") }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let text = (context.map { $0.text + ", " } ?? "") + problem
            // An unquoted cron like `*/15 * * * *` reads as an alias to YAML.
            let hint = text.contains("alias") ? " (quote values that start with '*', like \"*/15 * * * *\")" : ""
            return (mark.line, "YAML: \(text)\(hint)")
        case .reader(let problem, let offset, _, _):
            let line = offset.map { offset in 1 + yaml.utf8.prefix(offset).count { $0 == UInt8(ascii: "\n") } }
            return (line, "YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return (context.mark.line, "duplicate key " + duplicates.map { "'\($0)'" }.joined(separator: ", "))
        default:
            return (nil, "YAML: \(error)")
        }
    }

    /// The allowed key within edit distance 2 of `key`, for "did you mean" hints.
    public static func closestKey(to key: String, in allowed: [String]) -> String? {
        let source = Array(key.utf8)
        guard source.count <= 64 else { return nil }
        var best: (key: String, distance: Int)?
        for candidate in allowed {
            let target = Array(candidate.utf8)
            var previous = Array(0...target.count)
            for (i, a) in source.enumerated() {
                var current = [i + 1] + Array(repeating: 0, count: target.count)
                for (j, b) in target.enumerated() {
                    current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (a == b ? 0 : 1))
                }
                previous = current
            }
            let distance = previous[target.count]
            if distance <= 2, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.key
    }
}

extension YAMLDiagnostics {
    /// What a node is, for "expected X, found Y" messages; `scalar` names a non-null scalar
    /// in the reader's own words.
    package static func kind(of node: Node, scalar: String) -> String {
        switch node {
        case .scalar: node.isNull ? "nothing (null)" : scalar
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}

extension Node {
    /// A plain `~`, `null` or empty scalar: YAML's null. A quoted "" is an empty string.
    package var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}
