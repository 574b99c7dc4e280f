import Foundation
import TetherScheduler
import TetherSchedulerSQLite

/// A scheduler over an in-memory store and a manual clock. `flush()` plays the owner's
/// part: commit the output, then collect the effects for agents.
final class SchedulerHarness {
    let clock: ManualClock
    let store = InMemorySchedulerStore()
    let configuration: SchedulerConfiguration
    private(set) var scheduler: Scheduler
    /// Effects delivered so far, oldest first.
    private(set) var delivered: [SchedulerEffect] = []
    private var sequences: [String: UInt64] = [:]
    /// A second store that receives every commit too, waited for.
    var mirror: SQLiteSchedulerStore?

    init(configuration: SchedulerConfiguration = SchedulerConfiguration(leaseTTLMilliseconds: 10_000, timeoutGraceMilliseconds: 5_000),
         clock: ManualClock = ManualClock()) {
        self.clock = clock
        self.configuration = configuration
        scheduler = Scheduler(clock: clock, configuration: configuration)
    }

    /// Commits what the scheduler recorded and returns the new effects.
    @discardableResult
    func flush() -> [SchedulerEffect] {
        commit(scheduler.takeOutput())
    }

    /// Commits `output` to the store (and the mirror) and records its effects as delivered.
    @discardableResult
    func commit(_ output: SchedulerOutput) -> [SchedulerEffect] {
        store.apply(output.changes)
        if let mirror {
            let done = DispatchSemaphore(value: 0)
            mirror.commit(output.changes) { result in
                if case .failure(let error) = result { fatalError("mirror commit failed: \(error)") }
                done.signal()
            }
            done.wait()
        }
        delivered += output.effects
        return output.effects
    }

    /// A new scheduler from the store, as after a crash (unflushed output is lost).
    func restart() {
        _ = scheduler.takeOutput()
        scheduler = Scheduler(clock: clock, configuration: configuration, snapshot: try! store.loadSnapshot())
        flush()
    }

    func advance(_ milliseconds: Int64) -> [SchedulerEffect] {
        clock.advance(milliseconds: milliseconds)
        scheduler.tick()
        return flush()
    }

    @discardableResult
    func apply(_ spec: DAGSpec) throws -> DAGVersionRecord {
        let result = try scheduler.apply(spec)
        flush()
        return result.version
    }

    /// A new manual run (fails the test if the trigger returned an existing one).
    func trigger(_ dagID: String, params: [String: String] = [:]) throws -> RunRecord {
        try trigger(dagID, TriggerRequest(params: params))
    }

    func trigger(_ dagID: String, _ request: TriggerRequest) throws -> RunRecord {
        let outcome = try scheduler.trigger(dagID: dagID, request)
        flush()
        guard case .created(let run) = outcome else { throw HarnessError.existingRun(outcome.runID) }
        return run
    }

    @discardableResult
    func connect(_ agentID: String, queues: Set<String> = ["default"], entrypoints: Set<String>, slots: Int = 1,
                 resuming: [String] = [], session: UInt64 = 0) -> AgentWelcome {
        let welcome = scheduler.agentConnected(AgentRegistration(agentID: agentID, queues: queues, entrypoints: entrypoints,
                                                                 slots: slots, resumingLeaseIDs: resuming, session: session))
        flush()
        return welcome
    }

    /// Reports an attempt's end with the agent's next sequence number.
    @discardableResult
    func finish(_ grant: LeaseGrant, _ outcome: AttemptOutcome = .succeeded, agentID: String? = nil, epoch: UInt64? = nil) -> ReportResult {
        report(agentID ?? grant.agentID, TaskReport(leaseID: grant.leaseID, epoch: epoch ?? grant.epoch,
                                                    kind: .finished(outcome, AttemptUsage(exitCode: outcome == .succeeded ? 0 : 1), message: "")))
    }

    @discardableResult
    func report(_ agentID: String, _ report: TaskReport) -> ReportResult {
        sequences[agentID, default: 0] += 1
        let result = scheduler.report(agentID: agentID, sequence: sequences[agentID]!, report)
        flush()
        return result
    }

    /// Grants delivered so far that no later effect revoked and the test has not finished.
    var grants: [LeaseGrant] {
        delivered.compactMap { if case .grant(let g) = $0 { return g } else { return nil } }
    }

    func grants(to agentID: String) -> [LeaseGrant] { grants.filter { $0.agentID == agentID } }

    var revokes: [(agentID: String, leaseID: String, reason: RevokeReason)] {
        delivered.compactMap {
            if case .revoke(let agent, let lease, _, let reason) = $0 { return (agent, lease, reason) } else { return nil }
        }
    }

    func taskState(_ runID: String, _ taskID: String) -> TaskState? {
        store.task(TaskKey(runID: runID, taskID: taskID))?.state
    }

    func runState(_ runID: String) -> RunState? { store.run(runID)?.state }
}

/// A compact spec builder: `dag("d", ["a", "b<a", "c<a,b"])` makes tasks with those
/// dependencies, every entrypoint named after its task.
func dag(_ id: String, _ tasks: [String], configure: (inout TaskSpec) -> Void = { _ in }) -> DAGSpec {
    DAGSpec(dagID: id, tasks: tasks.map { text in
        let parts = text.split(separator: "<", maxSplits: 1)
        var task = TaskSpec(id: String(parts[0]), entrypoint: String(parts[0]),
                            dependsOn: parts.count > 1 ? parts[1].split(separator: ",").map(String.init) : [])
        configure(&task)
        return task
    })
}

enum HarnessError: Error {
    case existingRun(String)
}
