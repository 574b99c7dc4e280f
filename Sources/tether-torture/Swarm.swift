import ArgumentParser
import Foundation
import GRPC
import H2
import TetherAgent

/// `tether-torture swarm`: many real agents in one process, for soaks with hundreds of
/// agents on a small machine. Each is a full `AgentDaemon` (its own name, token, outbox,
/// connection, Connect stream, heartbeats and lease deadlines; the real protocol code), and
/// they share one `AgentHost` (spawner threads and lease keeper) and a few event loops.
struct Swarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm",
        abstract: "Run many real agents in one process, each with its own name, token, state and connection.",
        discussion: """
            --config is a `tether agent` config file in which every {name} is replaced by an
            agent's name, so that each agent gets its own token_file, state_dir, log_dir and
            entrypoint environment; name: is set for each agent and need not be in the file.
            Settings come from the file only (no TETHER_* variables, no other flags).
            Agent i is named --names with {i} replaced by i, zero-padded to the width of N-1.

            Every agent's lines go to stderr after its name. "swarm: N agents started" says
            every agent is made and dialling. SIGTERM drains every agent (no new leases,
            running tasks finish); a second SIGTERM or a SIGINT stops them (tasks get SIGTERM,
            then SIGKILL after kill_grace); the process exits once every agent has ended: 0,
            or 4 if the server refused an agent's token. SIGHUP makes every agent reconnect.
            On SIGKILL every task dies with the process, as with `tether agent`.
            """
    )

    @Option(help: "Agent config file; {name} is replaced by each agent's name.")
    var config: String
    @Option(help: "How many agents.")
    var agents: Int
    @Option(help: "Agent names; {i} is replaced by the agent's index.")
    var names = "agent-{i}"
    @Option(help: "Event loops the agents' connections share (round robin).")
    var eventLoops = 1

    func validate() throws {
        guard agents >= 1, eventLoops >= 1 else { throw ValidationError("--agents and --event-loops must be at least 1") }
        guard names.contains("{i}") else { throw ValidationError("--names must contain {i}") }
    }

    func run() async throws {
        let signals = terminationSignals(also: [SIGHUP])
        // First, while the process holds the fewest descriptors (see `AgentHost.init`).
        let host = try AgentHost()
        // Never stopped: tasks are spawned on them too, and die with them.
        let loops = try (0..<eventLoops).map { try EventLoop.start(name: "swarm-connection-\($0)", busyPoll: .zero) }
        let template: String
        do {
            template = try String(contentsOfFile: config, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read --config \(config): \(error.localizedDescription)")
        }
        let width = String(agents - 1).count
        var daemons: [AgentDaemon] = []
        var stateDirectories: Set<String> = []
        for index in 0..<agents {
            let number = String(index)
            let name = names.replacingOccurrences(of: "{i}", with: String(repeating: "0", count: width - number.count) + number)
            let configuration: AgentConfiguration
            do {
                configuration = try AgentConfiguration.resolve(
                    fileText: template.replacingOccurrences(of: "{name}", with: name), sourceName: config, environment: [:],
                    overrides: .init(name: name))
            } catch {
                throw ValidationError("\(name): \(error)")
            }
            // Two agents on one outbox would acknowledge each other's events.
            guard stateDirectories.insert(configuration.stateDirectory).inserted else {
                throw ValidationError("agents share state_dir \(configuration.stateDirectory): put {name} in it")
            }
            let tokenFile = configuration.tokenFile
            let token: @Sendable () throws -> String = {
                try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            _ = try token()  // a missing token stops the start, as for `tether agent`
            daemons.append(try AgentDaemon(configuration: configuration, token: token,
                                           client: try configuration.makeClient(eventLoop: loops[index % loops.count]),
                                           host: host) { line in log("\(name): \(line)") })
        }
        log("swarm: \(agents) agents started")
        let watcher = watch(signals, daemons)
        await withTaskGroup(of: Void.self) { group in
            for daemon in daemons { group.addTask { await daemon.run() } }
        }
        watcher.cancel()
        host.stop()
        let refused = daemons.filter { $0.refusal != nil }
        for daemon in refused {
            log("\(daemon.configuration.name): the server refused its token (\(daemon.refusal!.code): \(daemon.refusal!.message))")
        }
        log("swarm: stopped")
        if !refused.isEmpty { throw ExitCode(4) }
    }

    /// Passes each signal to every agent, as `tether agent` takes it.
    private func watch(_ signals: AsyncStream<Int32>, _ daemons: [AgentDaemon]) -> Task<Void, Never> {
        Task {
            var count = 0
            for await signal in signals {
                if signal == SIGHUP {
                    for daemon in daemons { daemon.reconnect() }
                    continue
                }
                count += 1
                for daemon in daemons {
                    if count == 1 && signal == SIGTERM { daemon.drain(reason: "SIGTERM") } else { daemon.stop() }
                }
            }
        }
    }
}

/// A line on stderr after the UTC time, as `tether agent` writes its log.
private func log(_ line: String) {
    let stamp = Date.now.ISO8601Format(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    FileHandle.standardError.write(Data("\(stamp) \(line)\n".utf8))
}
