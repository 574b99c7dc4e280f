// libyaml's event parser, the one Yams composes with (Yams keeps its events private).
internal import CYaml

/// A bound on what a YAML document costs once its aliases are expanded, checked on
/// libyaml's event stream before Yams composes a tree.
///
/// Yams resolves an alias by sharing the anchored node, which is cheap, but everything
/// after composing sees the expanded document: Yams hashes every mapping key to find
/// duplicates, and readers walk values. A "billion laughs" document of a few hundred
/// bytes expands to ~10⁹ nodes, so counting must happen before composing, on events,
/// where an alias costs the size of what it names (remembered per anchor) and nothing
/// is expanded. Mapping keys are charged twice, once more for Yams' duplicate check.
///
/// One pass, O(events) time and O(nesting + anchors) memory. Syntax errors are left to
/// the composer, which reports them with better context. Pure; safe from any thread.
enum YAMLExpansionBudget {
    static let maxNodes = DAGFile.maxExpandedNodes
    static let maxScalarBytes = DAGFile.maxExpandedTextBytes

    /// Why the document in `bytes` (UTF-8) is over budget, with the 1-based line where
    /// the budget ran out; nil when it is within budget or is not valid YAML.
    static func problem(in bytes: UnsafeBufferPointer<UInt8>) -> (line: Int?, message: String)? {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        // libyaml keeps a pointer to the parser itself, so it must not move: hence the allocation.
        guard yaml_parser_initialize(parser) == 1 else { return (nil, "YAML: out of memory") }
        defer { yaml_parser_delete(parser) }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(parser, bytes.baseAddress, bytes.count)

        var tally = Tally()
        var event = yaml_event_t()
        while yaml_parser_parse(parser, &event) == 1 {
            defer { yaml_event_delete(&event) }
            let line = Int(event.start_mark.line) + 1
            let outcome: Tally.Outcome
            switch event.type {
            case YAML_SCALAR_EVENT:
                outcome = tally.scalar(bytes: Int(event.data.scalar.length), anchor: name(event.data.scalar.anchor))
            case YAML_ALIAS_EVENT:
                outcome = tally.alias(name(event.data.alias.anchor))
            case YAML_SEQUENCE_START_EVENT:
                outcome = tally.open(isMapping: false, anchor: name(event.data.sequence_start.anchor))
            case YAML_MAPPING_START_EVENT:
                outcome = tally.open(isMapping: true, anchor: name(event.data.mapping_start.anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                outcome = tally.close()
            case YAML_STREAM_END_EVENT:
                return nil
            default:
                outcome = .withinBudget
            }
            if case .over(let message) = outcome { return (line, message) }
        }
        return nil
    }

    private static func name(_ pointer: UnsafeMutablePointer<UInt8>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    /// The running count, free of C types so it can be reasoned about on its own.
    struct Tally {
        enum Outcome: Equatable {
            case withinBudget
            case over(String)
        }

        /// What a complete node expands to.
        private struct Size {
            var nodes: Int
            var bytes: Int
        }

        /// An open list or mapping: its size so far and whether its next child is a key.
        private struct Collection {
            var size = Size(nodes: 1, bytes: 0)
            var anchor: String?
            var isMapping: Bool
            var nextIsKey: Bool
        }

        private var nodes = 0
        private var bytes = 0
        private var open: [Collection] = []
        private var anchors: [String: Size] = [:]

        mutating func scalar(bytes count: Int, anchor: String?) -> Outcome {
            complete(Size(nodes: 1, bytes: count), anchor: anchor)
        }

        /// An alias costs what its anchor named; an undefined one is the composer's error.
        mutating func alias(_ anchor: String?) -> Outcome {
            complete(anchor.flatMap { anchors[$0] } ?? Size(nodes: 1, bytes: 0), anchor: nil)
        }

        mutating func open(isMapping: Bool, anchor: String?) -> Outcome {
            let outcome = spend(Size(nodes: 1, bytes: 0))
            open.append(Collection(anchor: anchor, isMapping: isMapping, nextIsKey: isMapping))
            return outcome
        }

        /// The collection's own node was charged when it opened, its children as they came.
        mutating func close() -> Outcome {
            guard let collection = open.popLast() else { return .withinBudget }
            return finish(collection.size, anchor: collection.anchor)
        }

        private mutating func complete(_ size: Size, anchor: String?) -> Outcome {
            let outcome = spend(size)
            guard outcome == .withinBudget else { return outcome }
            return finish(size, anchor: anchor)
        }

        /// Records a complete node with its anchor and adds it to its parent.
        private mutating func finish(_ size: Size, anchor: String?) -> Outcome {
            if let anchor { anchors[anchor] = size }
            guard var parent = open.popLast() else { return .withinBudget }
            defer { open.append(parent) }
            parent.size.nodes += size.nodes
            parent.size.bytes += size.bytes
            if parent.isMapping {
                defer { parent.nextIsKey.toggle() }
                if parent.nextIsKey { return spend(size) }
            }
            return .withinBudget
        }

        /// Adds `size` to the document's total. Every size is at most the total so far,
        /// so the sums cannot overflow before the check stops them.
        private mutating func spend(_ size: Size) -> Outcome {
            nodes += size.nodes
            bytes += size.bytes
            if nodes > YAMLExpansionBudget.maxNodes {
                return .over("document expands to more than \(YAMLExpansionBudget.maxNodes.formatted) nodes (aliases count as copies of what they name); write it out or use fewer aliases")
            }
            if bytes > YAMLExpansionBudget.maxScalarBytes {
                return .over("document expands to more than \(YAMLExpansionBudget.maxScalarBytes.formatted) bytes of text (aliases count as copies of what they name)")
            }
            return .withinBudget
        }
    }
}

extension Int {
    /// `100000` as `100,000`, for limits in messages.
    fileprivate var formatted: String {
        let digits = Array(String(self))
        var text = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { text.append(",") }
            text.append(digit)
        }
        return text
    }
}
