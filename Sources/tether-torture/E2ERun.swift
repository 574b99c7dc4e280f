import ArgumentParser
import Foundation
import GRPC
import H2
import Synchronization
import TetherWire

/// `tether-torture e2e-run`: triggers one run of a DAG and waits for it cheaply, for the
/// end-to-end benchmark's real-agent workloads.
///
/// It polls ListRuns (one row), not GetRun: GetRun reads every task's attempts, which for a
/// 1,000-task run costs the server ~150 ms of CPU per call, and `tether run trigger --wait`
/// calls it every 200 ms — the poll would compete with the run it measures. Timings come
/// from the server's run and attempt timestamps, so the poll interval only bounds how soon
/// this returns. GetRun is called once, after the run finished, for the per-task breakdown.
struct E2ERun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e-run",
        abstract: "Trigger a run, wait for it, print its wall time and per-task breakdown.",
        discussion: """
            Prints one line to stdout once the run succeeded (fails otherwise):
              run=ID tasks=N wall_ms=W grant_to_spawn_ms=A spawn_to_done_ms=B [cpu_ms_PID=C ...]
            wall_ms: the run's startedAt..finishedAt (server clock, millisecond resolution).
            grant_to_spawn_ms: mean over tasks of the lease's grant (server clock) to the process
            start the agent reported. spawn_to_done_ms: mean of that start to the attempt's finish
            as the server recorded it (agent and server share the clock here: same machine).
            cpu_ms_PID: CPU time (user + system, its own threads) each --cpu-of process used from
            before the trigger until the poll saw the run finished.
            """
    )

    @Option(help: "Server HOST:PORT (plaintext h2c).")
    var server: String
    @Option(help: "File holding an admin token.")
    var adminTokenFile: String
    @Option(help: "DAG to trigger.")
    var dag: String
    @Option(help: "ListRuns poll interval, milliseconds.")
    var pollMs = 100
    @Option(help: "Give up after this many seconds.")
    var timeoutS = 120
    @Option(help: "A process (e.g. the server, the agent) whose CPU time over the run to report; repeatable.")
    var cpuOf: [Int32] = []

    func run() throws {
        let secret = try String(contentsOfFile: adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let metadata = try E2EAgent.bearer(secret)
        let client = try GRPCClient(configuration: .init(target: try SocketAddress(parsing: server), tls: nil))
        let (dag, pollMs, timeoutS, pids) = (self.dag, self.pollMs, self.timeoutS, self.cpuOf)
        writeLine(try onClientLoop(client) {
            try await Self.runOnce(client, metadata, dag: dag, pollMs: pollMs, timeoutS: timeoutS, pids: pids)
        })
    }

    private static func runOnce(_ client: GRPCClient, _ metadata: GRPCMetadata, dag: String, pollMs: Int, timeoutS: Int,
                                pids: [Int32]) async throws -> String {
        func control<Request: WireMessage, Response: WireMessage>(
            _ method: RPCMethod<Request, Response, RPCShape.Unary>, _ request: Request
        ) async throws -> Response {
            try await client.unary(method, request, metadata: metadata, timeout: .seconds(30))
        }
        let cpuBefore = try pids.map(cpuMilliseconds)
        var trigger = ControlV1.TriggerRunRequest()
        trigger.dagID = dag
        let triggered: ControlV1.TriggerRunResponse = try await control(ControlV1.ControlService.triggerRun, trigger)
        guard let runID = triggered.run?.runID, !runID.isEmpty else { throw E2EError("TriggerRun returned no run") }

        var list = ControlV1.ListRunsRequest()
        list.dagID = dag
        list.pageSize = 1
        let deadline = ContinuousClock.now + .seconds(timeoutS)
        while true {
            let page: ControlV1.ListRunsResponse = try await control(ControlV1.ControlService.listRuns, list)
            if let run = page.runs.first(where: { $0.runID == runID }), [.success, .failed, .cancelled].contains(run.state) {
                guard run.state == .success else { throw E2EError("run \(runID) ended \(run.state.rawValue), not success") }
                break
            }
            guard ContinuousClock.now < deadline else { throw E2EError("run \(runID) did not finish within \(timeoutS) s") }
            try await Task.sleep(for: .milliseconds(pollMs))
        }
        let cpu = try zip(pids, cpuBefore).map { pid, before in " cpu_ms_\(pid)=\(try cpuMilliseconds(of: pid) - before)" }

        var get = ControlV1.GetRunRequest()
        get.runID = runID
        let response: ControlV1.GetRunResponse = try await control(ControlV1.ControlService.getRun, get)
        guard let run = response.run else { throw E2EError("GetRun \(runID) returned no run") }
        let attempts = response.taskInstances.compactMap(\.attempts.last)
        guard !attempts.isEmpty else { throw E2EError("run \(runID) has no attempts") }
        func meanMs(_ values: [Int64]) -> String {
            String(format: "%.3f", Double(values.reduce(0, +)) / Double(values.count) / 1e3)
        }
        let wall = String(format: "%.1f", Double(run.finishedAtUnixUs - run.startedAtUnixUs) / 1e3)
        return "run=\(runID) tasks=\(attempts.count) wall_ms=\(wall)"
            + " grant_to_spawn_ms=\(meanMs(attempts.map { $0.startedAtUnixUs - $0.grantedAtUnixUs }))"
            + " spawn_to_done_ms=\(meanMs(attempts.map { $0.finishedAtUnixUs - $0.startedAtUnixUs }))" + cpu.joined()
    }

    /// utime + stime of `pid`'s own threads, from /proc/PID/stat (fields 14 and 15), in ms.
    private static func cpuMilliseconds(of pid: Int32) throws -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { throw E2EError("cannot read /proc/\(pid)/stat") }
        // After "pid (comm) ": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else {
            throw E2EError("unexpected /proc/\(pid)/stat: \(stat)")
        }
        return (user + system) * 1000 / sysconf(Int32(_SC_CLK_TCK))
    }
}
