import ArgumentParser
import Foundation
import GRPC
import TetherWire

/// `tether events`: follows the server's event stream (WatchEvents).
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Follow DAG, run, task and agent changes as they commit.",
        discussion: """
            Prints one line per change (with --json, one JSON object per line) until interrupted or --count \
            events were printed. Each carries a cursor: --after CURSOR replays the changes after it first, so a \
            watcher that stopped can go on without missing any. If the connection drops, the command reconnects \
            and resumes from the last cursor it printed. The server keeps events in memory: after it restarts, \
            or once a cursor is older than what it keeps, resuming says so on stderr and goes on from the \
            newest events; an --after cursor the server cannot resume from is an error (exit code 1).
            """
    )
    @OptionGroup var client: ClientOptions
    @Option(help: "Only changes of this DAG (its runs and tasks too).") var dag: String?
    @Option(help: "Only changes of this run and its tasks.") var run: String?
    @Flag(help: "Include agents' comings and goings (excluded unless asked for).") var agents = false
    @Option(help: "Replay the changes after this cursor first.") var after: UInt64 = 0
    @Option(help: "Exit after printing this many events.") var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        try await withControl(client) { control in
            var request = ControlV1.WatchEventsRequest()
            request.dagID = dag ?? ""
            request.runID = run ?? ""
            request.includeAgents = agents
            request.afterCursor = after
            var printed = 0
            var retry = 0
            while true {
                do {
                    let call = try await control.client.makeCall(ControlV1.ControlService.watchEvents, metadata: control.metadata)
                    try await call.send(request)
                    await call.finishSending()
                    while let event = try await call.next() {
                        retry = 0
                        request.afterCursor = event.cursor
                        try printEvent(event)
                        printed += 1
                        if let count, printed >= count {
                            await call.cancel()
                            return
                        }
                    }
                    if let status = await call.status(), status.code != .ok { throw status }
                    throw GRPCStatus(code: .unavailable, message: "the stream ended")
                } catch let status as GRPCStatus where status.code == .outOfRange && request.afterCursor != 0 && printed > 0 {
                    // Resuming after a reconnect; an --after the user gave is refused below instead.
                    printError("tether: events may have been missed: \(status.message); going on from the newest")
                    request.afterCursor = 0
                } catch let status as GRPCStatus where status.code == .unavailable || status.code == .resourceExhausted {
                    retry += 1
                    guard retry <= 10 else { throw CLIError.from(status, server: control.server) }
                    printError("tether: \(status.message); reconnecting (resuming after cursor \(request.afterCursor))")
                    try await Task.sleep(for: .milliseconds(min(5_000, 200 << min(retry, 5))))
                } catch let status as GRPCStatus {
                    throw CLIError.from(status, server: control.server)
                }
            }
        }
    }

    private func printEvent(_ event: ControlV1.WatchEventsResponse) throws {
        if client.json {
            print(try event.jsonString(options: compactJSON))
            fflush(nil)
            return
        }
        let (kind, subject, detail): (String, String, String)
        switch event.subject {
        case .dag(let dag)?:
            (kind, subject, detail) = ("dag", dag.dagID, dag.deleted ? "deleted" : "version \(dag.latestVersion)\(dag.paused ? ", paused" : "")")
        case .run(let run)?:
            (kind, subject, detail) = ("run", "\(run.dagID)/\(run.runID)", run.state.label + (run.note.isEmpty ? "" : " (\(run.note))"))
        case .taskInstance(let task)?:
            let attempt = task.attempts.last.map { " try \(task.tries)\($0.agentID.isEmpty ? "" : " on \($0.agentID)")" } ?? ""
            let why = task.reason.isEmpty ? "" : " (\(task.reason))"
            (kind, subject, detail) = ("task", "\(task.runID)/\(task.taskID)", task.state.label + attempt + why)
        case .agent(let agent)?:
            let why = agent.state == .disconnected ? " (\(agent.disconnectReason.label)\(agent.disconnectDetail.isEmpty ? "" : ": \(agent.disconnectDetail)"))" : ""
            (kind, subject, detail) = ("agent", agent.name, agent.state.label + why)
        case nil:
            (kind, subject, detail) = ("?", "-", "a change this CLI does not know")
        }
        print("\(formatTime(event.committedAtUnixUs))  \(event.cursor)  \(kind.padding(toLength: 5, withPad: " ", startingAt: 0))  \(subject)  \(detail)")
        fflush(nil)
    }
}
