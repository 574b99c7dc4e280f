import ArgumentParser

@main
struct Tether: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether",
        abstract: "Tether: DAG orchestration with a control server and agents that dial out.",
        version: TetherVersion.string,
        subcommands: [ServerCommand.self, AgentCommand.self, DagCommand.self, RunCommand.self, PoolCommand.self, AgentsCommand.self, EventsCommand.self, StatusCommand.self, TokenCommand.self, AuditCommand.self, VersionCommand.self]
    )
}
