import Foundation
import Testing
import TetherTestSupport

/// The operator CLI against a real `tether server` process, as a user runs it.
@Suite struct ControlCommandTests {
    static let admin = "cli-test-admin-secret-0123456789"

    /// A server on 127.0.0.1 (h2c) with a known admin token, and a way to run the CLI at it.
    final class Server: Sendable {
        let scratch: ScratchDirectory
        let process: ChildProcess
        let url: String

        init() throws {
            scratch = try ScratchDirectory()
            let tokenFile = scratch.path("admin.token")
            try ControlCommandTests.admin.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            process = try ChildProcess(Repository.tetherBinary,
                                       ["server", "--listen", "127.0.0.1:0", "--data-dir", scratch.path("data"),
                                        "--insecure-plaintext", "--bootstrap-token-file", tokenFile, "--synchronous", "normal"],
                                       readyPrefix: "listening on")
            url = "http://\(process.listeningAddress)"
        }

        /// Runs `tether ARGS --server URL --token ADMIN` (flags unless `useEnvironment`).
        func cli(_ arguments: [String], token: String = ControlCommandTests.admin, useEnvironment: Bool = false) throws -> ProcessResult {
            let home = scratch.path("home")  // no ~/.config/tether/config.yaml of the machine's user
            if useEnvironment {
                return try runProcess(Repository.tetherBinary, arguments,
                                      environment: ["TETHER_SERVER": url, "TETHER_TOKEN": token, "HOME": home])
            }
            return try runProcess(Repository.tetherBinary, arguments + ["--server", url, "--token", token],
                                  environment: ["HOME": home, "TETHER_SERVER": nil, "TETHER_TOKEN": nil])
        }

        func file(_ name: String, _ text: String) throws -> String {
            let path = scratch.path(name)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        deinit { _ = process.stop() }
    }

    static let dag = """
        dag_id: nightly_etl
        tasks:
          - id: extract
            entrypoint: extract
          - id: load
            entrypoint: load
            queue: gpu
            depends_on: [extract]
        """

    @Test func applyListShowTriggerAndInspectWithTablesAndJSON() async throws {
        try await onThreadOfItsOwn {
            let server = try Server()
            let file = try server.file("etl.yaml", Self.dag)
            let applied = try server.cli(["dag", "apply", file])
            #expect(applied.status == 0, "\(applied)")
            #expect(applied.stdout == "nightly_etl: version 1 applied\n")
            #expect(try server.cli(["dag", "apply", file]).stdout == "nightly_etl: version 1 unchanged\n")

            let list = try server.cli(["dag", "list"], useEnvironment: true)
            #expect(list.status == 0, "\(list)")
            #expect(list.stdout.hasPrefix("DAG "))
            #expect(list.stdout.contains("nightly_etl  1"))

            let json = try server.cli(["dag", "list", "--json"])
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let dags = object?["dags"] as? [[String: Any]]
            #expect(dags?.first?["dagId"] as? String == "nightly_etl")
            #expect(dags?.first?["latestVersion"] as? Int == 1)

            let show = try server.cli(["dag", "show", "nightly_etl"])
            #expect(show.stdout.contains("load  ") && show.stdout.contains("gpu"))

            let trigger = try server.cli(["run", "trigger", "nightly_etl"])
            #expect(trigger.status == 0, "\(trigger)")
            let runID = trigger.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(runID == "nightly_etl-1")
            let run = try server.cli(["run", "show", runID])
            #expect(run.stdout.contains("no connected agent serves queue 'default'"), "\(run.stdout)")
            let runs = try server.cli(["run", "list", "--dag", "nightly_etl", "--json"])
            #expect(runs.stdout.contains("\"runId\": \"nightly_etl-1\""))
            let cancel = try server.cli(["run", "cancel", runID])
            #expect(cancel.stdout == "\(runID): cancelled\n", "\(cancel)")
        }
    }

    @Test func tokensAreShownOnceAndAgentTokensCannotOperate() async throws {
        try await onThreadOfItsOwn {
            let server = try Server()
            let unbound = try server.cli(["token", "create", "--role", "agent", "--description", "eu agents"])
            #expect(unbound.status == 1 && unbound.stderr.contains("must be bound to the one agent name"), "\(unbound)")
            let created = try server.cli(["token", "create", "--role", "agent", "--agent-name", "eu-1", "--description", "eu agents"])
            #expect(created.status == 0, "\(created)")
            let secret = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(secret.hasPrefix("tether_"))
            let listed = try server.cli(["token", "list"])
            #expect(listed.stdout.contains("eu agents") && !listed.stdout.contains(secret))
            let refused = try server.cli(["dag", "list"], token: secret)
            #expect(refused.status == 4)
            #expect(refused.stderr.contains("permission denied"))
            let unknown = try server.cli(["dag", "list"], token: "wrong-token")
            #expect(unknown.status == 4 && unknown.stderr.contains("not authenticated"))
        }
    }

    @Test func badInputGetsAClearErrorAndExitCode() async throws {
        try await onThreadOfItsOwn {
            let server = try Server()
            let broken = try server.file("broken.yaml", Self.dag.replacingOccurrences(of: "[extract]", with: "[extrct]"))
            let refused = try server.cli(["dag", "apply", broken])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("broken.yaml") && refused.stderr.contains("extrct"), "\(refused)")
            let missing = try server.cli(["run", "show", "nope-1"])
            #expect(missing.status == 1 && missing.stderr.contains("unknown run 'nope-1'"))
            let badParam = try server.cli(["run", "trigger", "x", "--param", "novalue"])
            #expect(badParam.status != 0 && badParam.stderr.contains("NAME=VALUE"))
            let noServer = try runProcess(Repository.tetherBinary, ["dag", "list", "--server", "http://127.0.0.1:1", "--token", "t"],
                                          environment: ["HOME": server.scratch.path("home")])
            #expect(noServer.status == 3, "\(noServer)")
            let noToken = try runProcess(Repository.tetherBinary, ["dag", "list", "--server", server.url],
                                         environment: ["HOME": server.scratch.path("home"), "TETHER_TOKEN": nil])
            #expect(noToken.status != 0 && noToken.stderr.contains("no token"))
        }
    }
}
