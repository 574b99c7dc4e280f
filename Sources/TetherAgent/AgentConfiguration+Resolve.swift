internal import TetherYAML
import Yams
import TetherSyntax
import GRPC

extension AgentConfiguration {
    /// Values given on the command line, as text in the same form as the matching
    /// environment variable (`queues` and `labels` comma-separated, `labels` as
    /// `key=value`, durations like `30s`, booleans `true`/`false`). Nil means not given.
    public struct Overrides: Sendable, Equatable {
        public var server: String?
        public var caFile: String?
        public var tokenFile: String?
        public var name: String?
        public var labels: String?
        public var queues: String?
        public var slots: String?
        public var logDirectory: String?
        public var stateDirectory: String?
        public var logRetention: String?
        public var killGrace: String?
        public var insecurePlaintext: String?

        public init(server: String? = nil, caFile: String? = nil, tokenFile: String? = nil, name: String? = nil,
                    labels: String? = nil, queues: String? = nil, slots: String? = nil, logDirectory: String? = nil,
                    stateDirectory: String? = nil, logRetention: String? = nil, killGrace: String? = nil,
                    insecurePlaintext: String? = nil) {
            self.server = server
            self.caFile = caFile
            self.tokenFile = tokenFile
            self.name = name
            self.labels = labels
            self.queues = queues
            self.slots = slots
            self.logDirectory = logDirectory
            self.stateDirectory = stateDirectory
            self.logRetention = logRetention
            self.killGrace = killGrace
            self.insecurePlaintext = insecurePlaintext
        }
    }

    /// A key that flags and the environment may set as well as the file.
    public enum Setting: String, CaseIterable, Sendable {
        case server, caFile = "ca_file", tokenFile = "token_file", name, labels, queues, slots
        case logDirectory = "log_dir", stateDirectory = "state_dir", logRetention = "log_retention"
        case killGrace = "kill_grace", insecurePlaintext = "insecure_plaintext"

        /// The file key, e.g. `log_dir`.
        public var key: String { rawValue }
        /// The environment variable, e.g. `TETHER_LOG_DIR`.
        public var environmentVariable: String { "TETHER_" + rawValue.uppercased() }
        /// The command-line flag, e.g. `--log-dir`.
        public var flag: String { "--" + String(rawValue.map { $0 == "_" ? "-" : $0 }) }

        func value(in overrides: Overrides) -> String? {
            switch self {
            case .server: overrides.server
            case .caFile: overrides.caFile
            case .tokenFile: overrides.tokenFile
            case .name: overrides.name
            case .labels: overrides.labels
            case .queues: overrides.queues
            case .slots: overrides.slots
            case .logDirectory: overrides.logDirectory
            case .stateDirectory: overrides.stateDirectory
            case .logRetention: overrides.logRetention
            case .killGrace: overrides.killGrace
            case .insecurePlaintext: overrides.insecurePlaintext
            }
        }
    }

    /// Largest configuration file accepted: 1 MiB.
    public static let maxFileBytes = 1 << 20

    /// Builds the configuration from the file's text, the environment and flags, with
    /// precedence flags > environment > file > defaults, key by key. An environment
    /// variable set to the empty string counts as unset; `TETHER_*` variables that name
    /// no setting are ignored (tasks and other tools use that prefix too). Entrypoints
    /// come from the file only.
    ///
    /// Pure: reads no files and no process state, so callers pass the file's text and
    /// the environment. Safe from any thread.
    ///
    /// - Parameters:
    ///   - fileText: the YAML file's contents, or nil when there is no file.
    ///   - sourceName: names the file in problems (a path).
    /// - Throws: `AgentConfigurationError` with every problem found: YAML syntax, unknown
    ///   keys (typos must not pass silently), wrong types, missing required keys and
    ///   invalid values, each naming the file and line, variable or flag, and key.
    public static func resolve(
        fileText: String?, sourceName: String, environment: [String: String], overrides: Overrides
    ) throws(AgentConfigurationError) -> AgentConfiguration {
        var resolver = AgentConfigurationResolver(sourceName: sourceName, environment: environment, overrides: overrides)
        let configuration = resolver.resolve(fileText: fileText)
        guard let configuration, resolver.problems.isEmpty else {
            throw AgentConfigurationError(problems: resolver.orderedProblems)
        }
        return configuration
    }
}

/// One resolution of an agent configuration; collects every problem rather than
/// stopping at the first.
struct AgentConfigurationResolver {
    typealias Setting = AgentConfiguration.Setting
    typealias Source = AgentConfigurationProblem.Source

    let sourceName: String
    let environment: [String: String]
    let overrides: AgentConfiguration.Overrides
    private(set) var problems: [AgentConfigurationProblem] = []
    /// File entries by key, with the key's line.
    private var fileEntries: [String: (keyLine: Int?, value: Node)] = [:]
    /// False once the file failed to parse: keys it may have set are then not reported
    /// missing, which would only restate that failure.
    private var fileReadable = true

    static let fileKeys = Setting.allCases.map(\.key) + ["entrypoints"]
    static let entrypointKeys = ["argv", "env", "timeout", "working_dir"]

    init(sourceName: String, environment: [String: String], overrides: AgentConfiguration.Overrides) {
        self.sourceName = sourceName
        self.environment = environment
        self.overrides = overrides
    }

    /// Problems ordered file (by line), environment, flags, then unset keys.
    var orderedProblems: [AgentConfigurationProblem] {
        func rank(_ problem: AgentConfigurationProblem, _ offset: Int) -> (Int, Int, Int) {
            switch problem.source {
            case .file(_, let line): (0, line ?? .max, offset)
            case .environment: (1, 0, offset)
            case .flag: (2, 0, offset)
            case .unset: (3, 0, offset)
            }
        }
        return problems.enumerated().sorted { rank($0.element, $0.offset) < rank($1.element, $1.offset) }.map(\.element)
    }

    /// The configuration, or nil when a required key could not be read. `problems` may
    /// be non-empty even when a configuration is returned.
    mutating func resolve(fileText: String?) -> AgentConfiguration? {
        var entrypoints: [String: AgentConfiguration.Entrypoint] = [:]
        if let fileText {
            fileReadable = readFile(fileText)
        }
        if let entry = fileEntries["entrypoints"] {
            let before = problems.count
            entrypoints = readEntrypoints(entry.value) ?? [:]
            if entrypoints.isEmpty && problems.count == before {
                report(.file(sourceName, line: entry.keyLine), "entrypoints", "defines no entrypoint; an agent needs at least one")
            }
        } else if fileReadable {
            report(fileText == nil ? .unset : .file(sourceName, line: nil), "entrypoints",
                   "is required: the configuration file must define at least one entrypoint")
        }

        let server = resolved(.server, required: true) { $0.parseServer($1, $2) }
        let insecure = resolved(.insecurePlaintext) { $0.parseBool($1, .insecurePlaintext, $2) }
        let caFile = resolved(.caFile) { $0.absolutePath($1, .caFile, $2) }
        let tokenFile = resolved(.tokenFile, required: true) { $0.absolutePath($1, .tokenFile, $2) }
        let name = resolved(.name, required: true) { $0.identifier($1, .name, $2) }
        let labels = resolvedLabels()
        let queues = resolvedQueues()
        let slots = resolved(.slots) { resolver, text, source -> Int? in
            guard let value = Int(text) else { return resolver.rejected(source, .slots, "expected an integer, found '\(text)'") }
            guard (1...10_000).contains(value) else { return resolver.rejected(source, .slots, "must be 1...10000, found \(value)") }
            return value
        }
        let logDirectory = resolved(.logDirectory) { $0.absolutePath($1, .logDirectory, $2) }
        let stateDirectory = resolved(.stateDirectory) { $0.absolutePath($1, .stateDirectory, $2) }
        let retention = resolved(.logRetention) { $0.duration($1, Setting.logRetention.key, $2) }
        let grace = resolved(.killGrace) { $0.duration($1, Setting.killGrace.key, $2) }

        if let (address, serverSource) = server {
            let plaintext = insecure?.value ?? false
            if !address.usesTLS && !plaintext {
                report(serverSource, Setting.server.key, "http:// needs insecure_plaintext: true (h2c without TLS); use https://")
            } else if address.usesTLS && plaintext, let (_, insecureSource) = insecure {
                report(insecureSource, Setting.insecurePlaintext.key, "is true but server \(address) uses https://; write http:// for h2c")
            }
        }

        guard let server, let tokenFile, let name else { return nil }
        let logDirectoryValue = logDirectory?.value ?? AgentConfiguration.defaultLogDirectory
        return AgentConfiguration(
            server: server.value, caFile: caFile?.value, tokenFile: tokenFile.value, name: name.value,
            labels: labels ?? [:], queues: queues ?? AgentConfiguration.defaultQueues,
            slots: slots?.value ?? AgentConfiguration.defaultSlots, logDirectory: logDirectoryValue,
            stateDirectory: stateDirectory?.value,
            logRetentionMilliseconds: retention?.value ?? AgentConfiguration.defaultLogRetentionMilliseconds,
            killGraceMilliseconds: grace?.value ?? AgentConfiguration.defaultKillGraceMilliseconds,
            insecurePlaintext: insecure?.value ?? false, entrypoints: entrypoints
        )
    }

    // MARK: - Layers

    /// Where a setting's value comes from, highest precedence first.
    private enum Raw {
        case text(String)
        case node(Node)
    }

    private func winner(_ setting: Setting) -> (raw: Raw, source: Source)? {
        if let text = setting.value(in: overrides) { return (.text(text), .flag(setting.flag)) }
        if let text = environment[setting.environmentVariable], !text.isEmpty {
            return (.text(text), .environment(setting.environmentVariable))
        }
        if let entry = fileEntries[setting.key] {
            return (.node(entry.value), .file(sourceName, line: entry.value.mark?.line ?? entry.keyLine))
        }
        return nil
    }

    /// A scalar setting from the layer that wins, parsed by `parse`; nil when unset or
    /// invalid (invalid values are reported by `parse`).
    private mutating func resolved<T>(
        _ setting: Setting, required: Bool = false, _ parse: (inout Self, String, Source) -> T?
    ) -> (value: T, source: Source)? {
        guard let (raw, source) = winner(setting) else {
            if required && fileReadable {
                report(.unset, setting.key, "is required; set it in the file, with \(setting.environmentVariable) or with \(setting.flag)")
            }
            return nil
        }
        let text: String
        switch raw {
        case .text(let value): text = value
        case .node(let node):
            guard case .scalar(let scalar) = node, !node.isNull else {
                report(source, setting.key, "expected a single value, found \(kind(node))")
                return nil
            }
            text = scalar.string
        }
        return parse(&self, text, source).map { ($0, source) }
    }

    private mutating func resolvedQueues() -> [String]? {
        guard let (raw, source) = winner(.queues) else { return nil }
        var names: [String] = []
        switch raw {
        case .text(let text):
            names = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        case .node(let node):
            switch node {
            case .scalar(let scalar) where !node.isNull: names = [scalar.string]
            case .sequence(let sequence):
                for item in sequence {
                    guard case .scalar(let scalar) = item, !item.isNull else {
                        report(.file(sourceName, line: item.mark?.line), "queues", "expected a queue name, found \(kind(item))")
                        return nil
                    }
                    names.append(scalar.string)
                }
            default:
                report(source, "queues", "expected a list of queue names, found \(kind(node))")
                return nil
            }
        }
        guard !names.isEmpty else { report(source, "queues", "must name at least one queue"); return nil }
        var seen: Set<String> = []
        for name in names {
            guard identifier(name, .queues, source) != nil else { return nil }
            guard seen.insert(name).inserted else { report(source, "queues", "names '\(name)' twice"); return nil }
        }
        return names
    }

    private mutating func resolvedLabels() -> [String: String]? {
        guard let (raw, source) = winner(.labels) else { return nil }
        var pairs: [(key: String, value: String, source: Source)] = []
        switch raw {
        case .text(let text):
            for item in text.split(separator: ",") {
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    report(source, "labels", "expected key=value pairs separated by commas, found '\(item)'")
                    return nil
                }
                pairs.append((parts[0].trimmingSpaces, parts[1].trimmingSpaces, source))
            }
        case .node(let node):
            if node.isNull { return [:] }
            guard case .mapping(let mapping) = node else {
                report(source, "labels", "expected a mapping of keys to values, found \(kind(node))")
                return nil
            }
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let key) = keyNode, case .scalar(let value) = valueNode, !keyNode.isNull else {
                    report(.file(sourceName, line: keyNode.mark?.line), "labels", "expected text keys and values")
                    return nil
                }
                pairs.append((key.string, value.string, .file(sourceName, line: keyNode.mark?.line)))
            }
        }
        var labels: [String: String] = [:]
        for pair in pairs {
            guard isLabelKey(pair.key) else {
                report(pair.source, "labels", "key '\(pair.key)' must be 1-128 characters of [A-Za-z0-9._/-]")
                return nil
            }
            guard pair.value.unicodeScalars.count <= 256, !pair.value.unicodeScalars.contains(where: isControl) else {
                report(pair.source, "labels.\(pair.key)", "value must be at most 256 characters without control characters")
                return nil
            }
            guard labels.updateValue(pair.value, forKey: pair.key) == nil else {
                report(pair.source, "labels", "sets '\(pair.key)' twice")
                return nil
            }
        }
        return labels
    }

    // MARK: - File

    /// Reads the file's top-level entries into `fileEntries`; false when the file could
    /// not be read as a mapping at all (its problems are reported).
    private mutating func readFile(_ text: String) -> Bool {
        let file = Source.file(sourceName, line: nil)
        guard text.utf8.count <= AgentConfiguration.maxFileBytes else {
            report(file, nil, "file is \(text.utf8.count) bytes; at most \(AgentConfiguration.maxFileBytes) (1 MiB)")
            return false
        }
        let root: Node?
        do {
            root = try Parser(yaml: text, encoding: .utf8).singleRoot()
        } catch {
            let (line, message) = YAMLDiagnostics.problem(error, in: text)
            report(.file(sourceName, line: line), nil, message)
            return false
        }
        guard let root, !root.isNull else { return true }  // an empty file sets nothing
        guard case .mapping(let mapping) = root else {
            report(.file(sourceName, line: root.mark?.line), nil, "expected a mapping of settings, found \(kind(root))")
            return false
        }
        fileEntries = knownEntries(mapping, allowed: Self.fileKeys, section: nil)
        return true
    }

    private mutating func readEntrypoints(_ node: Node) -> [String: AgentConfiguration.Entrypoint]? {
        if node.isNull { return [:] }
        guard case .mapping(let mapping) = node else {
            report(.file(sourceName, line: node.mark?.line), "entrypoints", "expected a mapping of names to entrypoints, found \(kind(node))")
            return nil
        }
        var entrypoints: [String: AgentConfiguration.Entrypoint] = [:]
        for (nameNode, value) in mapping {
            let line = nameNode.mark?.line
            guard case .scalar(let nameScalar) = nameNode, !nameNode.isNull else {
                report(.file(sourceName, line: line), "entrypoints", "names must be text, found \(kind(nameNode))")
                continue
            }
            let name = nameScalar.string
            if let problem = Identifier.problem(name) {
                report(.file(sourceName, line: line), "entrypoints", "a name \(problem)")
                continue
            }
            if let entrypoint = readEntrypoint(value, name: name, nameLine: line) { entrypoints[name] = entrypoint }
        }
        return entrypoints
    }

    private mutating func readEntrypoint(_ node: Node, name: String, nameLine: Int?) -> AgentConfiguration.Entrypoint? {
        let prefix = "entrypoints.\(name)"
        guard case .mapping(let mapping) = node else {
            report(.file(sourceName, line: node.mark?.line ?? nameLine), prefix, "expected a mapping with argv, found \(kind(node))")
            return nil
        }
        let problemCount = problems.count
        let entries = knownEntries(mapping, allowed: Self.entrypointKeys, section: prefix)
        var entrypoint = AgentConfiguration.Entrypoint(argv: [])
        func at(_ node: Node) -> Source { .file(sourceName, line: node.mark?.line) }

        if let argvNode = entries["argv"]?.value {
            if case .sequence(let sequence) = argvNode {
                for item in sequence {
                    guard case .scalar(let scalar) = item, !item.isNull, !scalar.string.contains("\0") else {
                        report(at(item), "\(prefix).argv", "each argument must be text without NUL, found \(kind(item))")
                        return nil
                    }
                    entrypoint.argv.append(scalar.string)
                }
                if let program = entrypoint.argv.first {
                    if program.isEmpty || (program.contains("/") && !program.hasPrefix("/")) {
                        report(at(argvNode), "\(prefix).argv",
                               "program '\(program)' must be an absolute path or a bare name looked up in PATH")
                    }
                } else {
                    report(at(argvNode), "\(prefix).argv", "is empty; it needs at least the program")
                }
            } else {
                report(at(argvNode), "\(prefix).argv", "expected a list (program then arguments), found \(kind(argvNode))")
            }
        } else {
            report(.file(sourceName, line: node.mark?.line ?? nameLine), "\(prefix).argv", "is required")
        }
        if let envNode = entries["env"]?.value, !envNode.isNull {
            if case .mapping(let variables) = envNode {
                for (keyNode, valueNode) in variables {
                    guard case .scalar(let key) = keyNode, isVariableName(key.string) else {
                        report(at(keyNode), "\(prefix).env", "variable names must match [A-Za-z_][A-Za-z0-9_]*")
                        continue
                    }
                    guard !key.string.hasPrefix("TETHER_") else {
                        report(at(keyNode), "\(prefix).env.\(key.string)", "TETHER_ variables are set by the agent")
                        continue
                    }
                    // The value is never quoted back: it may be a secret.
                    guard case .scalar(let value) = valueNode, !valueNode.isNull, !value.string.contains("\0") else {
                        report(at(valueNode), "\(prefix).env.\(key.string)", "expected a text value without NUL (quote \"\" for empty), found \(kind(valueNode))")
                        continue
                    }
                    entrypoint.environment[key.string] = value.string
                }
            } else {
                report(at(envNode), "\(prefix).env", "expected a mapping of variable names to values, found \(kind(envNode))")
            }
        }
        if let timeoutNode = entries["timeout"]?.value {
            if case .scalar(let scalar) = timeoutNode, !timeoutNode.isNull {
                if let milliseconds = duration(scalar.string, "\(prefix).timeout", at(timeoutNode)) {
                    entrypoint.timeoutMilliseconds = milliseconds == 0 ? nil : milliseconds
                }
            } else {
                report(at(timeoutNode), "\(prefix).timeout", "expected a duration like 30m, found \(kind(timeoutNode))")
            }
        }
        if let directoryNode = entries["working_dir"]?.value {
            if case .scalar(let scalar) = directoryNode, !directoryNode.isNull, scalar.string.hasPrefix("/"), !scalar.string.contains("\0") {
                entrypoint.workingDirectory = scalar.string
            } else {
                report(at(directoryNode), "\(prefix).working_dir", "expected an absolute path")
            }
        }
        return problems.count == problemCount ? entrypoint : nil
    }

    /// The entries of `mapping` whose keys are in `allowed`; every other key is reported.
    private mutating func knownEntries(
        _ mapping: Node.Mapping, allowed: [String], section: String?
    ) -> [String: (keyLine: Int?, value: Node)] {
        var entries: [String: (keyLine: Int?, value: Node)] = [:]
        for (keyNode, value) in mapping {
            let source = Source.file(sourceName, line: keyNode.mark?.line)
            guard case .scalar(let scalar) = keyNode, !keyNode.isNull else {
                report(source, section, "keys must be text, found \(kind(keyNode))")
                continue
            }
            let key = scalar.string
            guard allowed.contains(key) else {
                let hint = YAMLDiagnostics.closestKey(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                report(source, section.map { "\($0).\(key)" } ?? key, "unknown key\(hint)")
                continue
            }
            entries[key] = (keyNode.mark?.line, value)
        }
        return entries
    }

    // MARK: - Values

    mutating func parseServer(_ text: String, _ source: Source) -> GRPCTarget? {
        do {
            return try GRPCTarget(url: text, defaultPort: ServerURL.defaultPort)
        } catch {
            return rejected(source, .server, "'\(text)' \(error.reason); expected https://host[:port] (port \(ServerURL.defaultPort) if none)")
        }
    }

    mutating func parseBool(_ text: String, _ setting: Setting, _ source: Source) -> Bool? {
        switch text {
        case "true", "True", "TRUE", "1": return true
        case "false", "False", "FALSE", "0": return false
        default: return rejected(source, setting, "expected true or false, found '\(text)'")
        }
    }

    mutating func absolutePath(_ text: String, _ setting: Setting, _ source: Source) -> String? {
        guard text.hasPrefix("/"), !text.contains("\0") else {
            return rejected(source, setting, "expected an absolute path, found '\(text)'")
        }
        return text
    }

    mutating func identifier(_ text: String, _ setting: Setting, _ source: Source) -> String? {
        if let problem = Identifier.problem(text) { return rejected(source, setting, problem) }
        return text
    }

    mutating func duration(_ text: String, _ key: String, _ source: Source) -> Int64? {
        do throws(DurationTextError) {
            return try DurationText.milliseconds(parsing: text)
        } catch {
            report(source, key, error.description)
            return nil
        }
    }

    /// Records a problem and returns nil, so parsers can `return rejected(…)`.
    mutating func rejected<T>(_ source: Source, _ setting: Setting, _ message: String) -> T? {
        report(source, setting.key, message)
        return nil
    }

    private mutating func report(_ source: Source, _ key: String?, _ message: String) {
        problems.append(AgentConfigurationProblem(source: source, key: key, message: message))
    }
}

// MARK: - Helpers

/// 1-128 characters of [A-Za-z0-9._/-]: a label key (`region`, `example.com/zone`).
private func isLabelKey(_ text: String) -> Bool {
    let scalars = text.unicodeScalars
    return (1...128).contains(scalars.count)
        && scalars.allSatisfy { isASCIIAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" || $0 == "/" }
}

private func isASCIIAlphanumeric(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "A"..."Z", "a"..."z", "0"..."9": true
    default: false
    }
}

private func isVariableName(_ text: String) -> Bool {
    guard let first = text.unicodeScalars.first, first == "_" || ("A"..."Z").contains(first) || ("a"..."z").contains(first) else {
        return false
    }
    return text.unicodeScalars.allSatisfy { isASCIIAlphanumeric($0) || $0 == "_" }
}

private func isControl(_ scalar: Unicode.Scalar) -> Bool { scalar.value < 0x20 || scalar.value == 0x7F }

private func kind(_ node: Node) -> String { YAMLDiagnostics.kind(of: node, scalar: "a single value") }

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}


