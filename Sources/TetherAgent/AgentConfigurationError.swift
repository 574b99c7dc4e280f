/// One thing wrong with an agent's configuration, located at the place that set it.
public struct AgentConfigurationProblem: Hashable, Sendable, CustomStringConvertible {
    /// Where the offending value came from.
    public enum Source: Hashable, Sendable {
        /// The configuration file, by the name given to `resolve`, and the 1-based line.
        case file(String, line: Int?)
        /// A `TETHER_*` environment variable.
        case environment(String)
        /// A command-line flag, e.g. `--slots`.
        case flag(String)
        /// Nothing set the key (it is required).
        case unset
    }

    public var source: Source
    /// The key in the file's spelling; nested keys are dotted (`entrypoints.load.argv`).
    /// Nil for problems with the file as a whole.
    public var key: String?
    /// What is wrong. Never contains an entrypoint environment value.
    public var message: String

    public init(source: Source, key: String?, message: String) {
        self.source = source
        self.key = key
        self.message = message
    }

    /// `agent.yaml:7: key 'slots': must be at least 1`, `environment TETHER_SLOTS: key
    /// 'slots': …`, `flag --slots: key 'slots': …`, or `key 'server': is required …`.
    public var description: String {
        var text: String
        switch source {
        case .file(let name, let line): text = name + (line.map { ":\($0)" } ?? "") + ": "
        case .environment(let variable): text = "environment \(variable): "
        case .flag(let flag): text = "flag \(flag): "
        case .unset: text = ""
        }
        if let key { text += "key '\(key)': " }
        return text + message
    }
}

/// Why an agent configuration was rejected: every problem found, file problems first in
/// line order, then the environment's, then the flags'.
public struct AgentConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Never empty.
    public var problems: [AgentConfigurationProblem]

    public init(problems: [AgentConfigurationProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
