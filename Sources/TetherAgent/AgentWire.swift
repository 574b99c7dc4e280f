import Glibc
import TetherWire

// The agent's side of the wire mapping: `tether.agent.v1` messages to and from the
// agent's own values (`Lease`, `TaskRunner.Start`, `TaskRunner.Result`, `RunningLease`).

extension Lease {
    /// The lease a grant carries; nil if it names no task.
    init?(_ grant: AgentV1.LeaseGrant) {
        guard let task = grant.task else { return nil }
        self.init(id: grant.leaseID, epoch: grant.epoch, dagID: task.dagID, dagVersion: task.dagVersion, runID: task.runID,
                  taskID: task.taskID, attempt: grant.attempt, entrypoint: grant.entrypoint, params: grant.params,
                  timeoutMilliseconds: grant.timeoutMs, logicalDateUnixMicroseconds: grant.logicalTimeUnixUs,
                  dataIntervalStartUnixMicroseconds: grant.dataIntervalStartUnixUs,
                  dataIntervalEndUnixMicroseconds: grant.dataIntervalEndUnixUs)
    }
}

extension AgentV1.TaskEvent {
    /// `kind` for `leaseID` at `epoch`, now.
    private init(_ kind: AgentV1.TaskEventKind, leaseID: String, epoch: UInt64, at occurredAtUnixUs: Int64 = unixMicrosecondsNow()) {
        self.init()
        self.leaseID = leaseID
        self.epoch = epoch
        self.kind = kind
        self.occurredAtUnixUs = occurredAtUnixUs
    }

    /// The `started` event of `lease`.
    init(started start: TaskRunner.Start, of lease: Lease) {
        self.init(.started, leaseID: lease.id, epoch: lease.epoch, at: start.startedAtUnixUs)
        startedAtUnixUs = start.startedAtUnixUs
    }

    /// The final event of `lease`.
    init(finished result: TaskRunner.Result, of lease: Lease) {
        self.init(AgentV1.TaskEventKind(result.outcome), leaseID: lease.id, epoch: lease.epoch, at: result.finishedAtUnixUs)
        exitStatus = result.exit.map { AgentV1.ExitStatus(exit: $0) }
        resourceUsage = result.usage.map { AgentV1.ResourceUsage(usage: $0) }
        startedAtUnixUs = result.startedAtUnixUs
        finishedAtUnixUs = result.finishedAtUnixUs
        message = result.message
    }

    /// A grant the agent will not start (draining, late, duplicate, malformed): `rejected`,
    /// which re-queues the task without using one of its retries.
    init(refusing grant: AgentV1.LeaseGrant, reason: String) {
        self.init(.rejected, leaseID: grant.leaseID, epoch: grant.epoch)
        message = reason
    }

    /// A lease a previous agent process left running: `lost`, since the agent's end ended
    /// it, not the task itself (an infrastructure loss, which uses none of its retries).
    init(orphaned lease: RunningLease, killed: Bool, message: String) {
        self.init(.lost, leaseID: lease.leaseID, epoch: lease.epoch)
        startedAtUnixUs = lease.startedAtUnixUs
        finishedAtUnixUs = occurredAtUnixUs
        if killed { exitStatus = AgentV1.ExitStatus(AgentV1.ExitStatus.Status.signal(SIGKILL)) }
        self.message = message
    }
}

extension AgentV1.TaskEventKind {
    /// The event kind that reports `outcome`.
    init(_ outcome: TaskRunner.Outcome) {
        switch outcome {
        case .succeeded: self = .succeeded
        case .failed: self = .failed
        case .timedOut: self = .timedOut
        case .cancelled: self = .cancelled
        case .rejected: self = .rejected
        case .lost: self = .lost
        }
    }
}

extension AgentV1.ExitStatus {
    init(exit: TaskRunner.Exit) {
        switch exit {
        case .code(let code): self.init(Status.exitCode(code))
        case .signal(let number): self.init(Status.signal(number))
        }
    }
}

extension AgentV1.ResourceUsage {
    init(usage: TaskRunner.Usage) {
        self.init()
        wallMs = usage.wallMilliseconds
        userCpuMs = usage.userCPUMilliseconds
        systemCpuMs = usage.systemCPUMilliseconds
        maxRssKib = usage.maxRSSKiB
    }
}
