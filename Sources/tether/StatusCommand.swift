import ArgumentParser
import Foundation
import TetherWire

/// `tether status`: the server at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show agents by queue, active runs, pools and recent failures on one screen.",
        discussion: "With --json: one object with the responses it is made of (agents, dags, activeRuns, pools, failedRuns)."
    )
    @OptionGroup var client: ClientOptions
    @Option(help: "Failed runs to show.") var failures: UInt32 = 5

    func run() async throws {
        try await withControl(client) { control in
            var agentsRequest = ControlV1.ListAgentsRequest()
            agentsRequest.includeDisconnected = true
            let agents: ControlV1.ListAgentsResponse = try await control.call(ControlV1.ControlService.listAgents, agentsRequest)
            var dagsRequest = ControlV1.ListDagsRequest()
            dagsRequest.pageSize = 1000
            let dags: ControlV1.ListDagsResponse = try await control.call(ControlV1.ControlService.listDags, dagsRequest)
            var activeRequest = ControlV1.ListRunsRequest()
            activeRequest.states = [.running, .queued]
            activeRequest.pageSize = 1000
            let active: ControlV1.ListRunsResponse = try await control.call(ControlV1.ControlService.listRuns, activeRequest)
            var failedRequest = ControlV1.ListRunsRequest()
            failedRequest.states = [.failed]
            failedRequest.pageSize = max(1, min(failures, 1000))
            let failed: ControlV1.ListRunsResponse = try await control.call(ControlV1.ControlService.listRuns, failedRequest)
            let pools: ControlV1.ListPoolsResponse = try await control.call(ControlV1.ControlService.listPools, ControlV1.ListPoolsRequest())

            if client.json {
                let parts = [("agents", try agents.jsonString()), ("dags", try dags.jsonString()), ("activeRuns", try active.jsonString()),
                             ("pools", try pools.jsonString()), ("failedRuns", try failed.jsonString())]
                print("{" + parts.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
                return
            }
            print("server \(control.server)")
            print("")
            let byState = Dictionary(grouping: agents.agents, by: \.state)
            print("AGENTS: \(byState[.connected]?.count ?? 0) connected, \(byState[.draining]?.count ?? 0) draining, "
                  + "\(byState[.disconnected]?.count ?? 0) disconnected")
            let live = agents.agents.filter { $0.state != .disconnected }
            let queues = Set(live.flatMap(\.queues)).sorted()
            if !queues.isEmpty {
                printTable(["QUEUE", "AGENTS", "SLOTS", "FREE", "REGIONS"], queues.map { queue in
                    let serving = live.filter { $0.queues.contains(queue) }
                    let regions = Set(serving.compactMap { $0.labels["region"] }).sorted()
                    return [queue, String(serving.count), String(serving.reduce(0) { $0 + Int($1.slots) }),
                            String(serving.reduce(0) { $0 + Int($1.freeSlots) }), regions.isEmpty ? "-" : regions.joined(separator: ",")]
                })
            }
            let gone = agents.agents.filter { $0.state == .disconnected }
            if !gone.isEmpty {
                print("gone: " + gone.map { "\($0.name) (\($0.disconnectReason.label), last seen \(formatTime($0.lastSeenAtUnixUs)))" }
                    .joined(separator: ", "))
            }
            print("")
            let paused = dags.dags.filter(\.paused).count
            print("DAGS: \(dags.dags.count)\(dags.nextPageToken.isEmpty ? "" : "+")\(paused > 0 ? " (\(paused) paused)" : "")")
            print("")
            print("ACTIVE RUNS: \(active.runs.count)\(active.nextPageToken.isEmpty ? "" : "+")")
            if !active.runs.isEmpty {
                printTable(["RUN", "DAG", "STATE", "STARTED", "TASKS"], active.runs.map { run in
                    [run.runID, run.dagID, run.state.label, formatTime(run.startedAtUnixUs),
                     run.taskCounts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")]
                })
            }
            if !pools.pools.isEmpty {
                print("")
                print("POOLS:")
                printTable(["POOL", "SLOTS", "USED", "WAITING"], pools.pools.map { [$0.name, String($0.slots), String($0.used), String($0.waiting)] })
            }
            print("")
            print("RECENT FAILED RUNS: \(failed.runs.isEmpty ? "none" : "")")
            if !failed.runs.isEmpty {
                printTable(["RUN", "DAG", "FINISHED"], failed.runs.map { [$0.runID, $0.dagID, formatTime($0.finishedAtUnixUs)] })
            }
        }
    }
}
