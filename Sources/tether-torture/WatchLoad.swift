import ArgumentParser
import Foundation
import GRPC
import H2
import Synchronization
import TetherWire

/// `tether-torture watch-events`: WatchEvents subscribers that do nothing but decode and
/// count, over `--connections` connections, for the benchmark of what serving them costs the
/// server. On a 2-core machine the subscribers share the cores with the server, so they are
/// kept cheap: one connection (one client thread) unless asked otherwise, no printing.
struct WatchLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch-events",
        abstract: "Hold N WatchEvents streams (agents included) until SIGTERM; print what each got.",
        discussion: """
            Prints "watch-events: N streams open" once every stream is open, and at SIGTERM one line:
              streams=N events=E1,E2,...
            Fails if a stream ends on its own.
            """
    )

    @Option(help: "Server HOST:PORT (plaintext h2c).") var server: String
    @Option(help: "File holding an admin (or viewer) token.") var tokenFile: String
    @Option(help: "Streams to hold.") var streams = 10
    @Option(help: "Connections the streams are spread over (each has a thread of its own).") var connections = 1
    @Option(help: "Only this DAG's events (and agents'): a DAG that does not run leaves the streams open and quiet.")
    var dag = ""

    func validate() throws {
        guard streams > 0, connections > 0, connections <= streams else {
            throw ValidationError("--streams and --connections must be positive, with no more connections than streams")
        }
    }

    func run() async throws {
        let signals = terminationSignals()
        let secret = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let metadata = try E2EAgent.bearer(secret)
        let target = try SocketAddress(parsing: server)
        let clients = try plaintextClients(target, count: connections)
        let state = WatchLoadState(streams: streams)
        let failures = WorkerFailures()
        let request = {
            var request = ControlV1.WatchEventsRequest()
            request.includeAgents = true
            request.dagID = dag
            return request
        }()
        let calls = try await withThrowingTaskGroup(of: GRPCClientCall<ControlV1.WatchEventsRequest, ControlV1.WatchEventsResponse>.self) { group in
            for index in 0..<streams {
                let client = clients[index % clients.count]
                group.addTask(executorPreference: client.eventLoop) {
                    let call = try await client.makeCall(ControlV1.ControlService.watchEvents, metadata: metadata)
                    try await call.send(request)
                    await call.finishSending()
                    return call
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        writeLine("watch-events: \(streams) streams open")
        let readers = workersOnClientLoops(streams, clients, what: "stream", failed: failures.record) { index, _ in
            let call = calls[index]
            while try await call.next() != nil { state.counts.withLock { $0[index] += 1 } }
            throw await call.status() ?? GRPCStatus(code: .unknown, message: "ended")
        }
        await untilSignalOrFailure(signals, failures.failed)
        readers.cancel()
        for call in calls { await call.cancel() }
        for client in clients { await client.close() }
        if let failure = failures.first { throw E2EError("a stream ended: \(failure)") }
        writeLine("streams=\(streams) events=\(state.counts.withLock { $0 }.map(String.init).joined(separator: ","))")
    }
}

private final class WatchLoadState: Sendable {
    let counts: Mutex<[Int]>

    init(streams: Int) { counts = Mutex([Int](repeating: 0, count: streams)) }
}
