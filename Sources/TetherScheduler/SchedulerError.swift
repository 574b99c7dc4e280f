/// Errors the scheduler core reports to its callers. Each says what was refused and why;
/// a refused call changes nothing.
public enum SchedulerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A state machine was asked for a move its table does not allow.
    case illegalTransition(entity: String, from: String, to: String)
    case unknownDAG(String)
    case unknownVersion(dagID: String, version: Int)
    case unknownRun(String)
    case unknownTask(runID: String, taskID: String)
    /// A trigger named a parameter that neither the DAG nor any task declares.
    case unknownParam(dagID: String, name: String)
    /// The run or task already reached a final state.
    case alreadyFinished(String)
    /// The thing is still in progress and the request needs it finished.
    case notFinished(String)
    /// The store has not caught up with the scheduler yet; the same call may succeed soon.
    case notYetStored(String)
    case unknownAgent(String)
    case unknownPool(String)
    /// A bad argument to a call (not a spec): the text says which and why.
    case invalidArgument(String)
    /// The agent named a lease the scheduler does not hold live (finished, expired, or never granted).
    case unknownLease(String)
    /// The lease belongs to another agent.
    case notLeaseHolder(leaseID: String, agentID: String)
    /// The report's epoch is older than the task's current grant (fencing).
    case staleEpoch(leaseID: String, reported: UInt64, current: UInt64)
    /// The spec failed validation; the text lists every problem.
    case invalidSpec(String)
    /// An agent report that makes no sense (e.g. "finished" with outcome running).
    case invalidReport(String)

    public var description: String {
        switch self {
        case let .illegalTransition(entity, from, to): return "illegal \(entity) transition \(from) -> \(to)"
        case let .unknownDAG(id): return "unknown DAG '\(id)'"
        case let .unknownVersion(id, version): return "DAG '\(id)' has no version \(version)"
        case let .unknownRun(id): return "unknown run '\(id)'"
        case let .unknownTask(run, task): return "run '\(run)' has no task '\(task)'"
        case let .unknownParam(dag, name): return "DAG '\(dag)' declares no parameter '\(name)'"
        case let .alreadyFinished(what): return "\(what) already finished"
        case let .notFinished(what): return what
        case let .notYetStored(what): return what
        case let .unknownAgent(id): return "unknown agent '\(id)'"
        case let .unknownPool(name): return "unknown pool '\(name)'"
        case let .invalidArgument(text): return text
        case let .unknownLease(id): return "no live lease '\(id)'"
        case let .notLeaseHolder(lease, agent): return "lease '\(lease)' is not held by agent '\(agent)'"
        case let .staleEpoch(lease, reported, current):
            return "stale epoch \(reported) for lease '\(lease)' (current epoch \(current))"
        case let .invalidSpec(text): return text
        case let .invalidReport(text): return "invalid report: \(text)"
        }
    }
}
