import ArgumentParser

@main
struct Tether: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether",
        abstract: "Tether: DAG orchestration with a control server and agents that dial out.",
        version: TetherVersion.string,
        subcommands: [VersionCommand.self]
    )
}
