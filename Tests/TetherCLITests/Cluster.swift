import Foundation
import GRPC
import H2
import TetherTestSupport
import TetherWire

/// A `tether server` and `tether agent` processes on 127.0.0.1 (h2c), as an operator
/// would run them, plus an admin client for checking what the server knows. Every
/// process is stopped when the value goes away. Blocking: use from `onThreadOfItsOwn`.
final class Cluster: @unchecked Sendable {
    static let admin = "e2e-admin-secret-0123456789abcdef"

    let scratch: ScratchDirectory
    let port: String
    let leaseTTLSeconds: Int
    /// More `tether server` options, for every start.
    let serverArguments: [String]
    private(set) var server: ChildProcess
    private(set) var agents: [String: ChildProcess] = [:]
    var url: String { "http://127.0.0.1:\(port)" }
    let dataDirectory: String

    /// - Parameters:
    ///   - dataDirectory: the server's data dir; by default `server` in `scratch`.
    ///   - serverArguments: more `tether server` options.
    init(leaseTTLSeconds: Int = 30, dataDirectory: String? = nil, serverArguments: [String] = []) throws {
        scratch = try ScratchDirectory()
        self.leaseTTLSeconds = leaseTTLSeconds
        self.serverArguments = serverArguments
        self.dataDirectory = dataDirectory ?? scratch.path("server")
        try Self.admin.write(toFile: scratch.path("admin.token"), atomically: true, encoding: .utf8)
        server = try Self.startServer(scratch: scratch, dataDirectory: self.dataDirectory, listen: "127.0.0.1:0",
                                      leaseTTLSeconds: leaseTTLSeconds, more: serverArguments)
        port = String(server.listeningAddress.split(separator: ":").last ?? "")
    }

    /// The file holding agent `name`'s token (bound to that name), created on first use.
    func tokenFile(for name: String) throws -> String {
        let path = scratch.path("agent-\(name).token")
        if FileManager.default.fileExists(atPath: path) { return path }
        let created = try cli(["token", "create", "--role", "agent", "--agent-name", name])
        guard created.status == 0 else { throw ClusterError("token create failed: \(created)") }
        try created.stdout.trimmingCharacters(in: .whitespacesAndNewlines).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private static func startServer(scratch: ScratchDirectory, dataDirectory: String, listen: String,
                                    leaseTTLSeconds: Int, more: [String]) throws -> ChildProcess {
        try ChildProcess(Repository.tetherBinary,
                         ["server", "--listen", listen, "--data-dir", dataDirectory, "--insecure-plaintext",
                          "--bootstrap-token-file", scratch.path("admin.token"), "--lease-ttl", String(leaseTTLSeconds)] + more,
                         readyPrefix: "listening on")
    }

    /// SIGKILLs the server and starts it again on the same port and data directory.
    func killAndRestartServer() throws {
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        server = try Self.startServer(scratch: scratch, dataDirectory: dataDirectory, listen: "127.0.0.1:\(port)",
                                      leaseTTLSeconds: leaseTTLSeconds, more: serverArguments)
    }

    /// Starts the server again on the same port and data directory, once it has exited.
    func restartServer() throws {
        precondition(!server.process.isRunning, "the server is still running")
        server = try Self.startServer(scratch: scratch, dataDirectory: dataDirectory, listen: "127.0.0.1:\(port)",
                                      leaseTTLSeconds: leaseTTLSeconds, more: serverArguments)
    }

    /// Where an agent's task state (the outbox) goes.
    func stateDirectory(_ agent: String) -> String { scratch.path("agents/\(agent)/state") }

    /// Where an agent's task logs go.
    func logDirectory(_ agent: String) -> String { scratch.path("agents/\(agent)/logs") }

    /// Starts `tether agent` with a config file written from the arguments, and waits
    /// until it is connected. `environment` is added to its environment (e.g. a proxy).
    @discardableResult
    func startAgent(_ name: String, queues: [String] = ["default"], slots: Int = 2, labels: [String: String] = [:],
                    entrypoints: [String: [String]], environment: [String: String] = [:]) throws -> ChildProcess {
        let config = """
            server: \(url)
            insecure_plaintext: true
            token_file: \(try tokenFile(for: name))
            name: \(name)
            labels: {\(labels.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}
            queues: [\(queues.joined(separator: ", "))]
            slots: \(slots)
            log_dir: \(logDirectory(name))
            state_dir: \(stateDirectory(name))
            kill_grace: 2s
            entrypoints:
            \(entrypoints.map { "  \($0.key): {argv: [\($0.value.map { "\"\($0)\"" }.joined(separator: ", "))]}" }.joined(separator: "\n"))
            """
        let path = scratch.path("\(name).yaml")
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let env = URL(fileURLWithPath: "/usr/bin/env")
        let arguments = environment.map { "\($0.key)=\($0.value)" } + [Repository.tetherBinary.path, "agent", "--config", path]
        let agent = try ChildProcess(env, arguments, readyPrefix: "tether agent: connected as")
        agents[name] = agent
        return agent
    }

    func killAgent(_ name: String) {
        guard let agent = agents[name] else { return }
        kill(agent.process.processIdentifier, SIGKILL)
        agent.process.waitUntilExit()
    }

    /// `tether ARGS` with the admin token.
    func cli(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(Repository.tetherBinary, arguments + ["--server", url, "--token", Self.admin],
                       environment: ["HOME": scratch.path("home")])
    }

    func apply(_ yaml: String) throws {
        let file = scratch.path("dag-\(UUID().uuidString).yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try cli(["dag", "apply", file])
        guard result.status == 0 else { throw ClusterError("dag apply failed: \(result)") }
    }

    func trigger(_ dagID: String) throws -> String {
        let result = try cli(["run", "trigger", dagID])
        guard result.status == 0 else { throw ClusterError("run trigger failed: \(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The run as the server reports it (GetRun, decoded from `tether run show --json`).
    func run(_ runID: String) throws -> RunView {
        let result = try cli(["run", "show", runID, "--json"])
        guard result.status == 0 else { throw ClusterError("run show failed: \(result)") }
        return try RunView(json: result.stdout)
    }

    /// Polls the run until `done` holds, or throws after `timeout`.
    @discardableResult
    func wait(for runID: String, timeout: Duration = .seconds(60), until done: (RunView) -> Bool) throws -> RunView {
        let deadline = ContinuousClock.now + timeout
        var last: RunView?
        while ContinuousClock.now < deadline {
            let view = try run(runID)
            if done(view) { return view }
            last = view
            usleep(100_000)
        }
        throw ClusterError("run \(runID) did not reach the expected state within \(timeout); last: \(String(describing: last))")
    }

    /// Polls `condition` until it holds or `timeout` passes; returns whether it held.
    func eventually(_ timeout: Duration = .seconds(30), _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            usleep(100_000)
        }
        return try condition()
    }

    deinit {
        for agent in agents.values { agent.stop(grace: .seconds(5)) }
        server.stop()
    }
}

struct ClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What the tests read of a GetRun response (its protobuf JSON).
struct RunView: CustomStringConvertible {
    struct Attempt {
        var agent: String
        var outcome: String
        var grantedAt: Int64
        var finishedAt: Int64
        var message: String
    }

    struct Task {
        var id: String
        var state: String
        var attempts: [Attempt]
    }

    var state: String
    var tasks: [Task]
    /// Callbacks by id: their state (`TASK_STATE_...`).
    var callbacks: [String: String]

    init(json: String) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let run = object["run"] as? [String: Any] else { throw ClusterError("not a GetRun response: \(json)") }
        state = run["state"] as? String ?? ""
        tasks = (object["taskInstances"] as? [[String: Any]] ?? []).map { task in
            Task(id: task["taskId"] as? String ?? "", state: task["state"] as? String ?? "",
                 attempts: (task["attempts"] as? [[String: Any]] ?? []).map { attempt in
                     Attempt(agent: attempt["agentId"] as? String ?? "", outcome: attempt["outcome"] as? String ?? "",
                             grantedAt: Int64(attempt["grantedAtUnixUs"] as? String ?? "0") ?? 0,
                             finishedAt: Int64(attempt["finishedAtUnixUs"] as? String ?? "0") ?? 0,
                             message: attempt["message"] as? String ?? "")
                 })
        }
        callbacks = [:]
        for callback in object["callbacks"] as? [[String: Any]] ?? [] {
            callbacks[callback["callbackId"] as? String ?? ""] = callback["state"] as? String ?? ""
        }
    }

    func task(_ id: String) -> Task? { tasks.first { $0.id == id } }

    var description: String {
        "\(state): " + tasks.map { "\($0.id)=\($0.state)\($0.attempts.map { "[\($0.agent) \($0.outcome)]" }.joined())" }.joined(separator: " ")
    }
}
