/// The state of one task instance. Transitions are explicit: `transition(to:)` throws
/// on any move the table below does not allow.
///
///     scheduled ──> queued ──> running ──> success
///        │            ├──────────┼──────> failed   (queued: its queue_timeout passed)
///        │            │          └──────> up_for_retry ──> queued
///        ├──> upstream_failed / skipped   (trigger rule decided it will not run)
///        └──> cancelled   (from any non-final state)
///     any final state ──> scheduled   (cleared by an operator: `cleared()`)
public enum TaskState: String, Sendable, CaseIterable, Codable {
    /// Waiting for its upstream tasks.
    case scheduled
    /// Ready; waiting in its queue for an agent slot.
    case queued
    /// Leased to an agent.
    case running
    case success
    /// Failed with no retries left.
    case failed
    /// Failed; queued again once its retry delay has passed.
    case upForRetry = "up_for_retry"
    /// Will not run: an upstream failure makes its trigger rule unmeetable.
    case upstreamFailed = "upstream_failed"
    /// Will not run: its trigger rule can no longer be met, with no upstream failure to blame.
    case skipped
    /// Cancelled by an operator.
    case cancelled

    /// Final states never change again.
    public var isFinal: Bool {
        switch self {
        case .success, .failed, .upstreamFailed, .skipped, .cancelled: return true
        case .scheduled, .queued, .running, .upForRetry: return false
        }
    }

    /// Whether a move from `self` to `next` is legal.
    public func allows(_ next: TaskState) -> Bool {
        switch (self, next) {
        case (.scheduled, .queued), (.scheduled, .upstreamFailed), (.scheduled, .skipped),
             (.queued, .running), (.queued, .failed),
             (.running, .success), (.running, .failed), (.running, .upForRetry),
             (.upForRetry, .queued):
            return true
        case (_, .cancelled):
            return !isFinal
        default:
            return false
        }
    }

    /// The state after moving to `next`.
    /// - Throws: `SchedulerError.illegalTransition` if the table does not allow it.
    public func transition(to next: TaskState) throws(SchedulerError) -> TaskState {
        guard allows(next) else {
            throw .illegalTransition(entity: "task", from: rawValue, to: next.rawValue)
        }
        return next
    }

    /// `scheduled` again, for a clear: only a final state can be cleared.
    /// - Throws: `SchedulerError.illegalTransition` from a state that is not final.
    public func cleared() throws(SchedulerError) -> TaskState {
        guard isFinal else { throw .illegalTransition(entity: "task", from: rawValue, to: TaskState.scheduled.rawValue) }
        return .scheduled
    }
}

/// The state of a run.
///
///     queued ──> running ──> success | failed
///        └──────────┴──────> cancelled
///     success | failed | cancelled ──> queued   (some of its tasks cleared: `cleared()`)
public enum RunState: String, Sendable, CaseIterable, Codable {
    /// Waiting for a free max_active_runs place.
    case queued
    /// Its tasks are being scheduled.
    case running
    case success
    case failed
    case cancelled

    public var isFinal: Bool { self == .success || self == .failed || self == .cancelled }

    public func allows(_ next: RunState) -> Bool {
        switch (self, next) {
        case (.queued, .running), (.running, .success), (.running, .failed),
             (.queued, .cancelled), (.running, .cancelled):
            return true
        default:
            return false
        }
    }

    /// - Throws: `SchedulerError.illegalTransition` if the table does not allow it.
    public func transition(to next: RunState) throws(SchedulerError) -> RunState {
        guard allows(next) else {
            throw .illegalTransition(entity: "run", from: rawValue, to: next.rawValue)
        }
        return next
    }

    /// `queued` again, for a clear of a finished run's tasks.
    /// - Throws: `SchedulerError.illegalTransition` from a state that is not final.
    public func cleared() throws(SchedulerError) -> RunState {
        guard isFinal else { throw .illegalTransition(entity: "run", from: rawValue, to: RunState.queued.rawValue) }
        return .queued
    }
}

/// How one attempt (one lease) ended.
public enum AttemptOutcome: String, Sendable, CaseIterable, Codable {
    case running
    case succeeded
    case failed
    /// Killed at its execution timeout (by the agent, or by the server as a backstop).
    case timedOut = "timed_out"
    /// Stopped by a cancel.
    case cancelled
    /// Its lease expired: the agent stopped heartbeating.
    case lost
    /// The agent could not start it.
    case rejected

    /// Outcomes that consume a try and may lead to a retry.
    var isFailure: Bool {
        switch self {
        case .failed, .timedOut, .lost, .rejected, .cancelled: return true
        case .running, .succeeded: return false
        }
    }
}
