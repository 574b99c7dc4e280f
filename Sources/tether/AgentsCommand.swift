import ArgumentParser
import Foundation
import TetherWire

/// `tether agents [list]|drain|undrain|forget`.
struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "List, drain and forget agents.",
        discussion: "Agents stay listed after they disconnect, with when they were last seen and why they went (drained, lost, revoked, server stopped), until forgotten. A connected agent shows replaced when its session took over from one still open (it reconnected first).",
        subcommands: [List.self, Drain.self, Undrain.self, Forget.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List agents, connected or not (the default subcommand).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only agents serving this queue.") var queue: String?
        @Flag(help: "Only connected (and draining) agents.") var connected = false

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.ListAgentsRequest()
                request.queue = queue ?? ""
                request.includeDisconnected = !connected
                let response: ControlV1.ListAgentsResponse = try await control.call(ControlV1.ControlService.listAgents, request)
                try emit(response, json: client.json) {
                    printTable(["AGENT", "STATE", "QUEUES", "SLOTS", "LEASES", "TASKS DONE", "LABELS", "VERSION", "LAST SEEN", "LAST ENDED"],
                               response.agents.map { agent in
                        let done = agent.metrics.filter { $0.name == "tether_agent_tasks_finished_total" }.reduce(0) { $0 + $1.value }
                        return [agent.name, agent.state.label, agent.queues.joined(separator: ","),
                                String(agent.slots), String(agent.leaseIds.count), String(Int(done)),
                                agent.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                                agent.version.isEmpty ? "-" : agent.version, formatTime(agent.lastSeenAtUnixUs),
                                agent.disconnectReason.label]
                    })
                }
            }
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop giving an agent new tasks; it finishes the ones it runs, says Goodbye and exits.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Agent name.") var agent: String
        @Option(help: "Why, told to the agent and logged.") var reason: String?

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.DrainAgentRequest()
                request.agent = agent
                request.reason = reason ?? ""
                let response: ControlV1.DrainAgentResponse = try await control.call(ControlV1.ControlService.drainAgent, request)
                try emit(response, json: client.json) { print("\(agent): draining") }
            }
        }
    }

    struct Undrain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a draining agent that is still connected take tasks again.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Agent name.") var agent: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.UndrainAgentRequest()
                request.agent = agent
                let response: ControlV1.UndrainAgentResponse = try await control.call(ControlV1.ControlService.undrainAgent, request)
                try emit(response, json: client.json) { print("\(agent): taking tasks") }
            }
        }
    }

    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a disconnected agent from the list, with its metrics.",
            discussion: "Refused while the agent is connected. It is listed again if it connects again.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Agent name.") var agent: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.ForgetAgentRequest()
                request.agent = agent
                let response: ControlV1.ForgetAgentResponse = try await control.call(ControlV1.ControlService.forgetAgent, request)
                try emit(response, json: client.json) { print("\(agent): forgotten") }
            }
        }
    }
}

extension ControlV1.AgentState {
    var label: String {
        switch self {
        case .connected: "connected"
        case .draining: "draining"
        case .disconnected: "disconnected"
        default: "unknown"
        }
    }
}

extension ControlV1.AgentDisconnectReason {
    var label: String {
        switch self {
        case .drained: "drained"
        case .lost: "lost"
        case .revoked: "revoked"
        case .replaced: "replaced"
        case .serverStopped: "server stopped"
        default: "-"
        }
    }
}
