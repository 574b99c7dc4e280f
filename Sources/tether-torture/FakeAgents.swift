import ArgumentParser
import Foundation
import GRPC
import H2
import Synchronization
import TetherWire

/// `tether-torture fake-agents`: many agents that only connect and heartbeat, for measuring
/// what the server's read paths cost with a large fleet (`Scripts/bench metrics`: the
/// `/metrics` scrape). Each is one real `AgentService.Connect` stream (Hello, Welcome,
/// heartbeats, answered HeartbeatAcks), over a few shared connections; none runs anything.
/// For whole agents (outbox, task runner, lease keeper) use `swarm`.
struct FakeAgents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-agents",
        abstract: "Connect many heartbeating fake agents to a tether server; they run nothing.",
        discussion: """
            Agent i is named --names with {i} replaced by i, serves queue-(i mod --queues)
            with one slot and entrypoint noop, and carries the label region=region-(i mod
            --regions). The token must be an admin token (it may connect as any name).
            Prints "fake-agents: N connected" to stdout once every agent has its Welcome,
            then heartbeats at the interval the server asks for until SIGTERM or SIGINT,
            and exits 0. Exits 1 if a stream ends or fails on its own.
            """
    )

    @Option(help: "Server HOST:PORT (plaintext h2c).")
    var server: String
    @Option(help: "File holding an admin token.")
    var tokenFile: String
    @Option(help: "How many agents.")
    var agents = 1_000
    @Option(help: "Queues the agents are spread over.")
    var queues = 100
    @Option(help: "Regions the agents are spread over.")
    var regions = 4
    @Option(help: "HTTP/2 connections the agents' streams share (each carries at most 1,000 streams).")
    var connections = 4
    @Option(help: "Agent names; {i} is replaced by the agent's index.")
    var names = "fake-{i}"

    func validate() throws {
        guard agents >= 1, queues >= 1, regions >= 1, connections >= 1 else {
            throw ValidationError("--agents, --queues, --regions and --connections must be at least 1")
        }
        guard agents <= connections * 1_000 else { throw ValidationError("at most 1,000 agents per connection") }
        guard names.contains("{i}") else { throw ValidationError("--names must contain {i}") }
    }

    func run() async throws {
        let signals = terminationSignals()
        let secret = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let metadata = try E2EAgent.bearer(secret)
        let target = try SocketAddress(parsing: server)
        let clients = try plaintextClients(target, count: connections)
        let state = FleetState()
        let failures = WorkerFailures()
        let agents = self.agents
        let fleet = workersOnClientLoops(agents, clients, what: "agent", failed: failures.record) { index, client in
            try await runAgent(index, client: client, metadata: metadata) {
                if state.welcomed.add(1, ordering: .relaxed).newValue == agents {
                    writeLine("fake-agents: \(agents) connected")
                }
            }
        }
        // Whichever comes first: a signal, or an agent whose stream ended on its own.
        await untilSignalOrFailure(signals, failures.failed)
        fleet.cancel()
        // A stream's read does not end on cancellation; closing the connections ends them.
        for client in clients { await client.close() }
        await fleet.value
        if let failure = failures.first {
            writeLine("fake-agents: \(failure)", to: .standardError)
            throw ExitCode(1)
        }
    }

    /// One agent: Hello, Welcome, then heartbeats until cancelled, reading what the server sends.
    private func runAgent(_ index: Int, client: GRPCClient, metadata: GRPCMetadata,
                          onWelcome: @Sendable () -> Void) async throws {
        let call: GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage> =
            try await client.makeCall(AgentV1.AgentService.connect, metadata: metadata)
        var hello = AgentV1.Hello()
        let number = String(index), width = String(agents - 1).count
        hello.name = names.replacingOccurrences(of: "{i}", with: String(repeating: "0", count: width - number.count) + number)
        hello.version = "tether-torture-fake-agents"
        hello.queues = ["queue-\(index % queues)"]
        hello.slots = 1
        hello.entrypoints = ["noop"]
        hello.labels = ["region": "region-\(index % regions)"]
        hello.instanceID = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try await call.send(AgentV1.AgentMessage(.hello(hello)))
        guard let first = try await call.next(), case .welcome(let welcome)? = first.kind else {
            throw await call.status() ?? E2EError("the server's first message was not a Welcome")
        }
        onWelcome()
        let interval = Duration.milliseconds(Int64(max(100, welcome.heartbeatIntervalMs)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while try await call.next() != nil {}
                throw await call.status() ?? E2EError("the server ended the stream")
            }
            group.addTask {
                var id: UInt64 = 0
                while true {
                    try await Task.sleep(for: interval)
                    id += 1
                    var heartbeat = AgentV1.Heartbeat()
                    heartbeat.heartbeatID = id
                    heartbeat.freeSlots = 1
                    try await call.send(AgentV1.AgentMessage(.heartbeat(heartbeat)))
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}

/// What the fleet's agents share: how many have their Welcome.
private final class FleetState: Sendable {
    let welcomed = Atomic<Int>(0)
}
