import ArgumentParser
import Foundation
import Synchronization
import TetherScheduler
import TetherSchedulerSQLite
import TetherStore

/// `tether-torture scheduler-bench`: dispatcher-only durable grants per second and the
/// latency from the event that made a grant possible (a trigger, or a report freeing a
/// slot or finishing an upstream task) to the grant's delivery after its commit.
struct SchedulerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler-bench",
        abstract: "Measure durable lease grants; prints one JSON line per metric.",
        discussion: """
            independent: --runs runs of a DAG of --tasks independent tasks (10 x 1,000 = 10,000 by default).
            chain: one run of a --tasks-long chain. Fake agents report success as soon as a grant arrives.
            --pools N spreads the tasks over N pools (round robin) that share the agents' slots
            evenly, to compare the grant rate with pools to the rate without.
            """
    )

    enum Shape: String, ExpressibleByArgument { case independent, chain }

    @Option(help: "Database file to create (must not exist).")
    var db: String
    @Option(help: "independent or chain.")
    var shape: Shape = .independent
    @Option(help: "Tasks per run.")
    var tasks = 1_000
    @Option(help: "Runs to trigger (independent only).")
    var runs = 10
    @Option(help: "PRAGMA synchronous: full or normal.")
    var synchronous: SQLiteDatabase.Options.Synchronous = .full
    @Option(help: "Connected fake agents.")
    var agents = 4
    @Option(help: "Slots per agent.")
    var slots = 64
    @Option(help: "Largest commit batch.")
    var maxBatch = 1024
    @Option(help: "Pools the tasks are spread over (0: none).")
    var pools = 0
    @Option(help: "The DAG's max_active_tasks (0: no limit).")
    var maxActiveTasks = 0

    func validate() throws {
        guard !FileManager.default.fileExists(atPath: db) else { throw ValidationError("\(db) exists; the bench writes a fresh database") }
        guard tasks > 0, runs > 0, agents > 0, slots > 0 else { throw ValidationError("counts must be positive") }
        guard pools >= 0, pools <= agents * slots else { throw ValidationError("--pools must be 0 to agents x slots") }
        guard maxActiveTasks >= 0 else { throw ValidationError("--max-active-tasks must be 0 or more") }
    }

    func run() throws {
        let store = try SQLiteSchedulerStore(path: db, synchronous: synchronous, maxBatchSize: maxBatch)
        let bench = BenchState()
        let service = try SchedulerService(
            store: store, clock: SystemClock(), configuration: SchedulerConfiguration(leaseTTLMilliseconds: 600_000)
        ) { effects in bench.delivered(effects) }
        let runCount = shape == .chain ? 1 : runs
        let spec = DAGSpec(dagID: "bench", maxActiveRuns: runCount, maxActiveTasks: maxActiveTasks, tasks: (0..<tasks).map { i in
            TaskSpec(id: "t\(i)", entrypoint: "noop", dependsOn: shape == .chain && i > 0 ? ["t\(i - 1)"] : [],
                     pool: pools > 0 ? "p\(i % pools)" : "")
        })
        for p in 0..<pools {
            _ = try bench.wait(service) { try $0.setPool("p\(p)", slots: agents * slots / pools) }
        }
        _ = try bench.wait(service) { try $0.apply(spec) }
        for a in 0..<agents {
            _ = try bench.wait(service) {
                $0.agentConnected(AgentRegistration(agentID: "agent-\(a)", queues: ["default"], entrypoints: ["noop"], slots: slots))
            }
        }
        let total = tasks * runCount
        let clock = ContinuousClock()
        let start = clock.now
        bench.expect(total)
        let statsBefore = store.commitStats
        for _ in 0..<runCount { bench.submit(service, cause: .trigger) { _ = try $0.trigger(dagID: "bench") } }
        // The agents: report success for every grant as it arrives.
        var sequences: [String: UInt64] = [:]
        while let grant = bench.nextGrant() {
            sequences[grant.agentID, default: 0] += 1
            let sequence = sequences[grant.agentID]!
            bench.submit(service, cause: .report) { scheduler in
                _ = scheduler.report(agentID: grant.agentID, sequence: sequence, TaskReport(
                    leaseID: grant.leaseID, epoch: grant.epoch, kind: .finished(.succeeded, AttemptUsage(exitCode: 0), message: "")))
            }
        }
        bench.waitForCommits()
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let finishedRuns = service.read { $0.activeRunCount }
        let stats = store.commitStats
        store.close()

        let latencies = bench.latencies.map(\.ms).sorted()
        let afterReport = bench.latencies.filter { $0.cause == .report }.map(\.ms).sorted()
        let afterTrigger = bench.latencies.filter { $0.cause == .trigger }.map(\.ms).sorted()
        func percentile(_ values: [Double], _ p: Double) -> Double {
            values.isEmpty ? 0 : values[min(values.count - 1, Int(Double(values.count) * p))]
        }
        func percentile(_ p: Double) -> Double { percentile(latencies, p) }
        let batches = stats.batches - statsBefore.batches
        let changes = stats.changes - statsBefore.changes
        let common = #""shape":"\#(shape.rawValue)","tasks":\#(total),"synchronous":"\#(synchronous.rawValue)","agents":\#(agents),"#
            + #""slots":\#(slots),"pools":\#(pools),"max_active_tasks":\#(maxActiveTasks),"commits":\#(batches),"writer_changes":\#(changes),"#
            + #""mean_batch":\#(String(format: "%.1f", Double(changes) / Double(max(1, batches)))),"#
            + #""max_batch":\#(stats.largestBatch),"elapsed_s":\#(String(format: "%.3f", seconds))"#
        func metric(_ name: String, _ value: Double, _ unit: String) {
            writeLine(#"{"bench":"scheduler_dispatch","metric":"\#(name)","value":\#(String(format: "%.3f", value)),"unit":"\#(unit)",\#(common)}"#)
        }
        metric("grants_per_s", Double(latencies.count) / seconds, "1/s")
        metric("ready_to_granted_p50_ms", percentile(0.50), "ms")
        metric("ready_to_granted_p99_ms", percentile(0.99), "ms")
        // The same, split by what made the grant possible: a report freeing a slot or
        // finishing an upstream task (the steady state), or the trigger creating the run.
        metric("report_to_granted_p50_ms", percentile(afterReport, 0.50), "ms")
        metric("report_to_granted_p99_ms", percentile(afterReport, 0.99), "ms")
        metric("trigger_to_granted_p50_ms", percentile(afterTrigger, 0.50), "ms")
        metric("trigger_to_granted_p99_ms", percentile(afterTrigger, 0.99), "ms")
        if latencies.count != total || finishedRuns != 0 {
            throw ValidationError("bench incomplete: \(latencies.count) of \(total) grants, \(finishedRuns) runs still active")
        }
    }
}

/// What the bench threads share. Grants reach the agent loop through a queue; each
/// grant's latency runs from the submission of the call that produced it to its delivery.
final class BenchState: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [LeaseGrant] = []
    private var expected = 0
    private var received = 0
    private var inFlight = 0
    enum Cause { case trigger, report }
    private(set) var latencies: [(cause: Cause, ms: Double)] = []
    /// Set by `delivered` and read by the completion that follows it on the commit thread.
    private var lastDelivered: [SchedulerEffect] = []

    func expect(_ grants: Int) { condition.withLock { expected = grants } }

    func delivered(_ effects: [SchedulerEffect]) { lastDelivered = effects }

    /// Submits `body`; when it is durable, its grants are queued for the agents.
    func submit(_ service: SchedulerService, cause: Cause, _ body: @escaping (Scheduler) throws -> Void) {
        let submitted = DispatchTime.now().uptimeNanoseconds
        condition.withLock { inFlight += 1 }
        service.perform({ try body($0) }) { [self] result in
            if case .failure(let error) = result { writeLine("bench call failed: \(error)", to: .standardError) }
            let effects = lastDelivered
            lastDelivered = []
            let now = DispatchTime.now().uptimeNanoseconds
            condition.withLock {
                for case .grant(let grant) in effects {
                    queue.append(grant)
                    latencies.append((cause, Double(now - submitted) / 1e6))
                }
                inFlight -= 1
                condition.broadcast()
            }
        }
    }

    /// Runs `body` and waits for its commit.
    func wait<T: Sendable>(_ service: SchedulerService, _ body: @escaping (Scheduler) throws -> T) throws -> T {
        defer { lastDelivered = [] }
        return try perform(service, body)
    }

    /// The next grant for the agents, or nil once every expected grant was handed out.
    func nextGrant() -> LeaseGrant? {
        condition.withLock {
            while queue.isEmpty {
                if received == expected { return nil }
                condition.wait()
            }
            received += 1
            return queue.removeFirst()
        }
    }

    func waitForCommits() {
        condition.withLock { while inFlight > 0 { condition.wait() } }
    }
}
