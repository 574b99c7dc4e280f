import TetherSyntax
public import TetherStore
public import GRPC

/// What a `tether agent` is configured with: where its server is, who it is, what it
/// serves, where it keeps logs and state, and the only commands it will ever run.
///
/// Built by `resolve(fileText:sourceName:environment:overrides:)` from a YAML file,
/// `TETHER_*` environment variables and command-line flags (flags win over the
/// environment, which wins over the file, which wins over the defaults below). A
/// resolved value has passed every check listed on its property.
///
/// Entrypoint environments hold secrets: `description` and `debugDescription` print
/// `<redacted>` for every entrypoint environment value. A plain value type; safe to share.
public struct AgentConfiguration: Sendable, Equatable {
    /// Where `log_dir` points when nothing sets it.
    public static let defaultLogDirectory = "/var/lib/tether-agent/logs"
    /// `log_retention` when nothing sets it: 7 days.
    public static let defaultLogRetentionMilliseconds: Int64 = 7 * 86_400_000
    /// `kill_grace` when nothing sets it: 10 seconds.
    public static let defaultKillGraceMilliseconds: Int64 = 10_000
    /// `queues` when nothing sets them.
    public static let defaultQueues = ["default"]
    /// `slots` when nothing sets it: one task at a time.
    public static let defaultSlots = 1

    /// `server`: the server to dial. `https://` (TLS) unless `insecurePlaintext`, which
    /// requires `http://` (h2c with prior knowledge). Required.
    public var server: GRPCTarget
    /// `ca_file`: PEM file of the CA that signed the server's certificate; nil means the
    /// system's trust store. An absolute path.
    public var caFile: String?
    /// `token_file`: file holding the agent's bearer token. Required; an absolute path.
    public var tokenFile: String
    /// `name`: 1-128 characters of [A-Za-z0-9._-], unique among the server's agents. Required.
    public var name: String
    /// `labels`: free-form key/value pairs shown to operators. Keys are 1-128 characters of
    /// [A-Za-z0-9._/-]; values at most 256 characters without control characters.
    public var labels: [String: String]
    /// `queues`: at least one queue name, each 1-128 characters of [A-Za-z0-9._-], no duplicates.
    public var queues: [String]
    /// `slots`: how many tasks run at once; 1...10000 (the server's limit).
    public var slots: Int
    /// `log_dir`: the root of the per-attempt task logs. An absolute path.
    public var logDirectory: String
    /// `state_dir`: where the event outbox database lives. An absolute path; defaults to
    /// `state` beside `log_dir` (`/var/lib/tether-agent/state` for the default `log_dir`).
    public var stateDirectory: String
    /// `log_retention`: attempt logs older than this are pruned; 0 keeps them forever.
    public var logRetentionMilliseconds: Int64
    /// `kill_grace`: how long a task has between SIGTERM and SIGKILL when it is timed out
    /// or cancelled; 0 sends SIGKILL at once.
    public var killGraceMilliseconds: Int64
    /// `insecure_plaintext`: talk h2c (no TLS) to an `http://` server; for local testing.
    public var insecurePlaintext: Bool
    /// `entrypoints`: the commands this agent runs, by the name tasks refer to. Only the
    /// file defines them; at least one.
    public var entrypoints: [String: Entrypoint]

    /// Creates `state_dir` and `log_dir` where missing, each directory made 0700: the
    /// outbox and task output are nobody else's to read. Existing directories keep their mode.
    /// Call it before the daemon starts.
    ///
    /// - Throws: `FileSystemError` naming the directory that could not be made.
    public func createDirectories() throws(FileSystemError) {
        try PrivateFiles.createDirectories(stateDirectory)
        try PrivateFiles.createDirectories(logDirectory)
    }

    /// A configuration from values already checked by the caller; `resolve` is the
    /// checking way in. `stateDirectory` defaults as `state_dir` does.
    public init(
        server: GRPCTarget, caFile: String? = nil, tokenFile: String, name: String,
        labels: [String: String] = [:], queues: [String] = AgentConfiguration.defaultQueues,
        slots: Int = AgentConfiguration.defaultSlots, logDirectory: String = AgentConfiguration.defaultLogDirectory,
        stateDirectory: String? = nil,
        logRetentionMilliseconds: Int64 = AgentConfiguration.defaultLogRetentionMilliseconds,
        killGraceMilliseconds: Int64 = AgentConfiguration.defaultKillGraceMilliseconds,
        insecurePlaintext: Bool = false, entrypoints: [String: Entrypoint]
    ) {
        self.server = server
        self.caFile = caFile
        self.tokenFile = tokenFile
        self.name = name
        self.labels = labels
        self.queues = queues
        self.slots = slots
        self.logDirectory = logDirectory
        self.stateDirectory = stateDirectory ?? Self.defaultStateDirectory(forLogDirectory: logDirectory)
        self.logRetentionMilliseconds = logRetentionMilliseconds
        self.killGraceMilliseconds = killGraceMilliseconds
        self.insecurePlaintext = insecurePlaintext
        self.entrypoints = entrypoints
    }

    /// `state` beside `logDirectory`: `/var/lib/tether-agent/logs` gives
    /// `/var/lib/tether-agent/state`; a log directory at `/` gives `/state`.
    public static func defaultStateDirectory(forLogDirectory logDirectory: String) -> String {
        var path = Substring(logDirectory)
        while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        guard let slash = path.lastIndex(of: "/") else { return "state" }
        let parent = path[..<slash]
        return parent.isEmpty ? "/state" : parent + "/state"
    }
}

extension AgentConfiguration {
    /// One named command the agent may run (`entrypoints.<name>`).
    public struct Entrypoint: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// `argv`: the program and its arguments, never passed through a shell. The program
        /// is an absolute path or a bare name looked up in the task's `PATH`.
        public var argv: [String]
        /// `env`: variables set for the task (may hold secrets; never printed). Names match
        /// [A-Za-z_][A-Za-z0-9_]* and do not start with `TETHER_`, which the agent sets.
        public var environment: [String: String]
        /// `timeout`: kill the task after this long; nil means no limit of the entrypoint's
        /// own (the lease's timeout may still apply).
        public var timeoutMilliseconds: Int64?
        /// `working_dir`: the task's working directory, an absolute path; nil means the agent's.
        public var workingDirectory: String?

        public init(argv: [String], environment: [String: String] = [:], timeoutMilliseconds: Int64? = nil,
                    workingDirectory: String? = nil) {
            self.argv = argv
            self.environment = environment
            self.timeoutMilliseconds = timeoutMilliseconds
            self.workingDirectory = workingDirectory
        }

        /// argv, variable names with `<redacted>` values, timeout and working directory.
        public var description: String {
            var parts = ["argv: [\(argv.map { "\"\($0)\"" }.joined(separator: ", "))]"]
            if !environment.isEmpty {
                parts.append("env: {\(environment.keys.sorted().map { "\($0): <redacted>" }.joined(separator: ", "))}")
            }
            if let timeoutMilliseconds { parts.append("timeout: \(DurationText.format(milliseconds: timeoutMilliseconds))") }
            if let workingDirectory { parts.append("working_dir: \(workingDirectory)") }
            return "{" + parts.joined(separator: ", ") + "}"
        }

        public var debugDescription: String { "Entrypoint" + description }

        /// What `dump` and the debugger show: the environment's values are redacted there too.
        public var customMirror: Mirror {
            Mirror(self, children: [
                "argv": argv,
                "environment": environment.mapValues { _ in "<redacted>" },
                "timeoutMilliseconds": timeoutMilliseconds as Any,
                "workingDirectory": workingDirectory as Any,
            ])
        }
    }

}

extension AgentConfiguration: CustomStringConvertible, CustomDebugStringConvertible {
    /// The configuration in the file's own key names, one key per line, with every
    /// entrypoint environment value shown as `<redacted>`. Safe to log.
    public var description: String {
        var lines = [
            "server: \(server)",
            "ca_file: \(caFile ?? "(system trust store)")",
            "token_file: \(tokenFile)",
            "name: \(name)",
            "labels: {\(labels.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}",
            "queues: [\(queues.joined(separator: ", "))]",
            "slots: \(slots)",
            "log_dir: \(logDirectory)",
            "state_dir: \(stateDirectory)",
            "log_retention: \(logRetentionMilliseconds == 0 ? "forever" : DurationText.format(milliseconds: logRetentionMilliseconds))",
            "kill_grace: \(DurationText.format(milliseconds: killGraceMilliseconds))",
            "insecure_plaintext: \(insecurePlaintext)",
            "entrypoints:",
        ]
        for name in entrypoints.keys.sorted() { lines.append("  \(name): \(entrypoints[name]!)") }
        return lines.joined(separator: "\n")
    }

    /// The same as `description`: debugging output must not leak secrets either.
    public var debugDescription: String { description }
}
