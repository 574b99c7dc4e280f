import Foundation
import Testing
import GRPC
import TetherAgent
import TetherSyntax

@Suite struct AgentConfigurationTests {
    static let minimal = """
        server: https://tether.example.com:7443
        token_file: /etc/tether/agent.token
        name: eu-gpu-1
        entrypoints:
          load: {argv: [python3, /opt/etl/load.py]}
        """

    private func resolve(_ text: String?, environment: [String: String] = [:],
                         overrides: AgentConfiguration.Overrides = .init()) throws(AgentConfigurationError) -> AgentConfiguration {
        try AgentConfiguration.resolve(fileText: text, sourceName: "agent.yaml", environment: environment, overrides: overrides)
    }

    private func problems(_ text: String?, environment: [String: String] = [:],
                          overrides: AgentConfiguration.Overrides = .init()) -> [AgentConfigurationProblem] {
        do {
            _ = try resolve(text, environment: environment, overrides: overrides)
            Issue.record("expected the configuration to be rejected")
            return []
        } catch {
            return error.problems
        }
    }

    @Test func minimalFileResolvesWithDocumentedDefaults() throws {
        let configuration = try resolve(Self.minimal)
        #expect(configuration.server == .init(usesTLS: true, host: "tether.example.com", port: 7443))
        #expect(configuration.tokenFile == "/etc/tether/agent.token")
        #expect(configuration.name == "eu-gpu-1")
        #expect(configuration.caFile == nil)
        #expect(configuration.queues == ["default"])
        #expect(configuration.slots == 1)
        #expect(configuration.labels.isEmpty)
        #expect(configuration.logDirectory == "/var/lib/tether-agent/logs")
        #expect(configuration.stateDirectory == "/var/lib/tether-agent/state")
        #expect(configuration.logRetentionMilliseconds == 7 * 86_400_000)
        #expect(configuration.killGraceMilliseconds == 10_000)
        #expect(configuration.insecurePlaintext == false)
        #expect(configuration.entrypoints == ["load": .init(argv: ["python3", "/opt/etl/load.py"])])
    }

    @Test func fullExampleFileResolves() throws {
        let configuration = try resolve("""
            server: https://tether.example.com:7443
            ca_file: /etc/tether/ca.pem
            token_file: /etc/tether/agent.token
            name: eu-gpu-1
            labels: {region: eu-west}
            queues: [default, gpu]
            slots: 8
            log_dir: /var/lib/tether-agent/logs
            state_dir: /srv/agent-state
            log_retention: 3d
            kill_grace: 30s
            entrypoints:
              extract: {argv: [/opt/etl/extract.sh], env: {DB_PASSWORD: "hunter2"}, timeout: 30m, working_dir: /opt/etl}
              load:    {argv: [python3, /opt/etl/load.py]}
            """)
        #expect(configuration.caFile == "/etc/tether/ca.pem")
        #expect(configuration.labels == ["region": "eu-west"])
        #expect(configuration.queues == ["default", "gpu"])
        #expect(configuration.slots == 8)
        #expect(configuration.stateDirectory == "/srv/agent-state")
        #expect(configuration.logRetentionMilliseconds == 3 * 86_400_000)
        #expect(configuration.killGraceMilliseconds == 30_000)
        #expect(configuration.entrypoints["extract"] == .init(
            argv: ["/opt/etl/extract.sh"], environment: ["DB_PASSWORD": "hunter2"], timeoutMilliseconds: 1_800_000,
            workingDirectory: "/opt/etl"))
    }

    @Test func flagsBeatEnvironmentWhichBeatsTheFileWhichBeatsDefaults() throws {
        let file = """
            server: https://tether.example.com:7443
            token_file: /etc/tether/agent.token
            name: from-file
            slots: 2
            queues: [file-q]
            log_dir: /file/logs
            entrypoints:
              load: {argv: [python3, /opt/etl/load.py]}
            """
        let environment = [
            "TETHER_SLOTS": "3", "TETHER_QUEUES": "env-a, env-b", "TETHER_NAME": "from-env",
            "TETHER_LABELS": "region=eu-west,tier=gold", "TETHER_KILL_GRACE": "",
        ]
        let overrides = AgentConfiguration.Overrides(slots: "4")
        let configuration = try resolve(file, environment: environment, overrides: overrides)
        #expect(configuration.slots == 4)                                 // flag over env and file
        #expect(configuration.queues == ["env-a", "env-b"])               // env over file
        #expect(configuration.name == "from-env")                         // env over file
        #expect(configuration.labels == ["region": "eu-west", "tier": "gold"])  // env over default
        #expect(configuration.logDirectory == "/file/logs")               // file over default
        #expect(configuration.stateDirectory == "/file/state")            // default follows log_dir
        #expect(configuration.killGraceMilliseconds == 10_000)            // empty env var is unset

        let flagged = try resolve(file, environment: environment,
                                  overrides: .init(name: "from-flag", queues: "flag-q", logDirectory: "/flag/logs"))
        #expect(flagged.name == "from-flag")
        #expect(flagged.queues == ["flag-q"])
        #expect(flagged.logDirectory == "/flag/logs")
        #expect(flagged.slots == 3)
    }

    @Test func requiredKeysMayComeFromTheEnvironmentAlone() throws {
        let configuration = try resolve("entrypoints:\n  load: {argv: [/bin/true]}\n", environment: [
            "TETHER_SERVER": "http://127.0.0.1:7080", "TETHER_INSECURE_PLAINTEXT": "true",
            "TETHER_TOKEN_FILE": "/tmp/token", "TETHER_NAME": "local-1",
        ])
        #expect(configuration.server == .init(usesTLS: false, host: "127.0.0.1", port: 7080))
        #expect(configuration.insecurePlaintext)
    }

    @Test func unknownKeyIsAnErrorNamingItsLineAndTheLikelyKey() {
        let found = problems(Self.minimal + "\nslot: 4\n")
        #expect(found.count == 1)
        #expect(found.first?.source == .file("agent.yaml", line: 6))
        #expect(found.first?.key == "slot")
        #expect(found.first?.description == "agent.yaml:6: key 'slot': unknown key (did you mean 'slots'?)")

        let nested = problems("""
            server: https://tether.example.com:7443
            token_file: /etc/tether/agent.token
            name: eu-gpu-1
            entrypoints:
              load:
                argv: [python3, /opt/etl/load.py]
                timout: 5m
            """)
        #expect(nested.map(\.description) == ["agent.yaml:7: key 'entrypoints.load.timout': unknown key (did you mean 'timeout'?)"])
    }

    @Test func badValuesAreReportedWithFileLineAndKey() {
        let found = problems("""
            server: http://tether.example.com
            token_file: /etc/tether/agent.token
            name: eu gpu/1
            slots: 0
            entrypoints:
              load: {argv: []}
              bad: {argv: [bin/run]}
            """)
        let text = found.map(\.description)
        #expect(text.contains("agent.yaml:1: key 'server': http:// needs insecure_plaintext: true (h2c without TLS); use https://"))
        #expect(text.contains("agent.yaml:3: key 'name': 'eu gpu/1' may only contain A-Z a-z 0-9 . _ -"), "\(text)")
        #expect(text.contains("agent.yaml:4: key 'slots': must be 1...10000, found 0"))
        #expect(text.contains("agent.yaml:6: key 'entrypoints.load.argv': is empty; it needs at least the program"))
        #expect(text.contains(
            "agent.yaml:7: key 'entrypoints.bad.argv': program 'bin/run' must be an absolute path or a bare name looked up in PATH"))
        #expect(found.count == 5)
    }

    /// Reported: the agent accepted names the server refuses at Hello ('.' and '..'), so a
    /// config that passed locally failed at connect. One rule (`Identifier`) now decides both.
    @Test func namesFollowTheServersRuleDotAndDotDotIncluded() {
        for name in [".", ".."] {
            let text = problems(Self.minimal.replacingOccurrences(of: "name: eu-gpu-1", with: "name: '\(name)'")).map(\.description)
            #expect(text == ["agent.yaml:3: key 'name': must not be '.' or '..'"], "\(text)")
        }
        let entrypoint = problems(Self.minimal.replacingOccurrences(of: "  load:", with: "  '..':")).map(\.description)
        #expect(entrypoint == ["agent.yaml:5: key 'entrypoints': a name must not be '.' or '..'"], "\(entrypoint)")
    }

    @Test func badEnvironmentAndFlagValuesNameTheirSource() {
        let found = problems(Self.minimal, environment: ["TETHER_SLOTS": "many"], overrides: .init(logDirectory: "logs"))
        #expect(found.map(\.description) == [
            "environment TETHER_SLOTS: key 'slots': expected an integer, found 'many'",
            "flag --log-dir: key 'log_dir': expected an absolute path, found 'logs'",
        ])
    }

    @Test func missingRequiredKeysSayWhereTheyMayBeSet() {
        let found = problems("entrypoints:\n  load: {argv: [/bin/true]}\n")
        #expect(found.map(\.description).contains(
            "key 'server': is required; set it in the file, with TETHER_SERVER or with --server"))
        #expect(found.count == 3)
    }

    @Test func yamlSyntaxErrorNamesItsLine() {
        let found = problems("server: https://a\nname: [unclosed\n")
        #expect(found.count == 1)
        if case .file("agent.yaml", let line) = found.first?.source { #expect(line != nil) } else { Issue.record("\(found)") }
    }

    @Test func entrypointSecretsAreRedactedFromEveryDescription() throws {
        let configuration = try resolve("""
            server: https://tether.example.com
            token_file: /etc/tether/agent.token
            name: eu-gpu-1
            entrypoints:
              extract: {argv: [/opt/etl/extract.sh], env: {DB_PASSWORD: "s3cr3t-value"}}
            """)
        var dumped = ""
        dump(configuration, to: &dumped)
        for text in [configuration.description, String(reflecting: configuration), "\(configuration.entrypoints)", dumped] {
            #expect(!text.contains("s3cr3t-value"), "leaked in: \(text)")
            #expect(text.contains("DB_PASSWORD"))
        }
        #expect(configuration.description.contains("DB_PASSWORD: <redacted>"))
    }

    @Test func entrypointEnvironmentMayNotSetAgentVariables() {
        let found = problems(Self.minimal.replacingFirst("load.py]}", with: "load.py], env: {TETHER_RUN_ID: x}}"))
        #expect(found.map(\.description) == ["agent.yaml:5: key 'entrypoints.load.env.TETHER_RUN_ID': TETHER_ variables are set by the agent"])
    }

    /// Reported: `https://host` meant port 443 to the agent and 7443 to the CLI. Both now
    /// parse with GRPCTarget and the one default, ServerURL.defaultPort.
    @Test func serverURLIsTakenApartWithTheOneDefaultPort() throws {
        #expect(try resolve(Self.minimal, overrides: .init(server: "https://tether.example.com")).server.port == 7443)
        #expect(try resolve(Self.minimal, overrides: .init(server: "https://tether.example.com")).server
                == GRPCTarget(url: "https://tether.example.com", defaultPort: ServerURL.defaultPort))
        let v6 = try resolve(Self.minimal, overrides: .init(server: "https://[::1]:7443/"))
        #expect(v6.server == .init(usesTLS: true, host: "::1", port: 7443))
        #expect(v6.server.description == "https://[::1]:7443")
        let found = problems(Self.minimal, overrides: .init(server: "https://host/path"))
        #expect(found.map(\.description) == ["flag --server: key 'server': 'https://host/path' is not scheme://host[:port] (no path or user); "
                                             + "expected https://host[:port] (port 7443 if none)"], "\(found)")
        let insecureWithTLS = problems(Self.minimal, overrides: .init(insecurePlaintext: "true"))
        #expect(insecureWithTLS.first?.key == "insecure_plaintext")
    }

    @Test func stateDirectoryDefaultsBesideTheLogDirectory() {
        #expect(AgentConfiguration.defaultStateDirectory(forLogDirectory: "/var/lib/tether-agent/logs/") == "/var/lib/tether-agent/state")
        #expect(AgentConfiguration.defaultStateDirectory(forLogDirectory: "/logs") == "/state")
    }
}

extension String {
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
