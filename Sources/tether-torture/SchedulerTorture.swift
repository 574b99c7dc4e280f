import ArgumentParser
import Foundation
import Synchronization
import TetherScheduler
import TetherSchedulerSQLite
import TetherStore

/// `tether-torture scheduler`: drives the scheduler on a SQLite store forever and prints
/// what it acknowledged, each line only after the commit holding it returned:
///   `ack run RUN_ID` (a trigger), `ack grant LEASE_ID` (a grant delivered to the agent),
///   `ack report SEQUENCE LEASE_ID` (an agent's success report).
/// A test kills it with SIGKILL at random instants, restarts it on the same database
/// (which exercises restore), and checks that every acknowledged change is there.
struct SchedulerTorture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Run fan-out DAGs forever on a fake agent; print acks after commits. Stop it with kill -9.",
        discussion: "Prints \"ready\" once the scheduler has resumed from the database."
    )

    @Option(help: "Database file (created if new).")
    var db: String
    @Option(help: "PRAGMA synchronous: full or normal.")
    var synchronous: SQLiteDatabase.Options.Synchronous = .full
    @Option(help: "Runs kept active at once.")
    var activeRuns = 4

    func run() throws {
        let store = try SQLiteSchedulerStore(path: db, synchronous: synchronous)
        let grants = GrantQueue()
        let service = try SchedulerService(store: store, clock: SystemClock()) { effects in
            for case .grant(let grant) in effects {
                writeLine("ack grant \(grant.leaseID)")
                grants.push(grant)
            }
        }
        let spec = DAGSpec(dagID: "torture", maxActiveRuns: 1_000, tasks:
            [TaskSpec(id: "root", entrypoint: "work")]
            + (0..<20).map { TaskSpec(id: "leaf\($0)", entrypoint: "work", dependsOn: ["root"], retry: RetryPolicy(retries: 100)) }
            + [TaskSpec(id: "join", entrypoint: "work", dependsOn: (0..<20).map { "leaf\($0)" })])
        try perform(service) { _ = try $0.apply(spec) }
        // The agent restarts with the process: it resumes nothing, so its old leases are
        // lost and retried. Its sequence numbers continue after what the server applied.
        var sequence = try perform(service) {
            $0.agentConnected(AgentRegistration(agentID: "agent", queues: ["default"], entrypoints: ["work"], slots: 8))
        }.appliedSequence
        writeLine("ready")

        let trigger = Thread {
            while true {
                if service.read({ $0.activeRunCount }) < activeRuns {
                    if let run = try? perform(service, { try $0.trigger(dagID: "torture") }) { writeLine("ack run \(run.runID)") }
                } else {
                    usleep(500)
                }
            }
        }
        trigger.start()
        while true {
            let grant = grants.pop()
            sequence += 1
            let reported = sequence
            service.perform({ scheduler in
                scheduler.report(agentID: "agent", sequence: reported, TaskReport(
                    leaseID: grant.leaseID, epoch: grant.epoch, kind: .finished(.succeeded, AttemptUsage(exitCode: 0), message: "")))
            }) { result in
                if case .success(.applied) = result { writeLine("ack report \(reported) \(grant.leaseID)") }
            }
        }
    }
}

/// Grants waiting for the fake agent.
private final class GrantQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var grants: [LeaseGrant] = []  // guarded by `condition`

    func push(_ grant: LeaseGrant) {
        condition.withLock {
            grants.append(grant)
            condition.signal()
        }
    }

    func pop() -> LeaseGrant {
        condition.withLock {
            while grants.isEmpty { condition.wait() }
            return grants.removeFirst()
        }
    }
}
