/// What a task's trigger rule says, given its upstream tasks' states so far.
enum TriggerDecision: Equatable {
    /// Not decidable yet: some upstream task is still to finish.
    case wait
    case run
    case skip
    case upstreamFailed
}

/// Counts of a task's upstream states. A cancelled upstream counts as failed.
struct UpstreamSummary: Equatable {
    var total = 0
    var succeeded = 0
    var failed = 0
    var skipped = 0

    var finished: Int { succeeded + failed + skipped }
    var allFinished: Bool { finished == total }

    mutating func count(_ state: TaskState) {
        switch state {
        case .success: succeeded += 1
        case .failed, .upstreamFailed, .cancelled: failed += 1
        case .skipped: skipped += 1
        case .scheduled, .queued, .running, .upForRetry: break
        }
    }
}

extension TriggerRule {
    /// Airflow's semantics (its `trigger_rule_dep.py`), where "failed" includes
    /// upstream_failed and cancelled. A rule decides as soon as the outcome is certain (an
    /// `all_success` task is upstream_failed on the first failure, without waiting for the
    /// rest); a task with no upstream, and an `always` task, run at once.
    func decide(_ upstream: UpstreamSummary) -> TriggerDecision {
        if upstream.total == 0 { return .run }
        let done = upstream.allFinished
        switch self {
        case .always:
            return .run
        case .allSuccess:
            if upstream.failed > 0 { return .upstreamFailed }
            if upstream.skipped > 0 { return .skip }
            return done ? .run : .wait
        case .allFailed:
            if upstream.succeeded > 0 || upstream.skipped > 0 { return .skip }
            return done ? .run : .wait
        case .allDone:
            return done ? .run : .wait
        case .allDoneMinOneSuccess:
            // As in Airflow, a skipped upstream is not "done" for this rule: it skips.
            if upstream.skipped > 0 { return .skip }
            guard done else { return .wait }
            return upstream.succeeded > 0 ? .run : .upstreamFailed
        case .allSkipped:
            if upstream.succeeded > 0 || upstream.failed > 0 { return .skip }
            return done ? .run : .wait
        case .oneSuccess:
            if upstream.succeeded > 0 { return .run }
            guard done else { return .wait }
            return upstream.skipped == upstream.total ? .skip : .upstreamFailed
        case .oneFailed:
            if upstream.failed > 0 { return .run }
            return done ? .skip : .wait
        case .oneDone:
            if upstream.succeeded > 0 || upstream.failed > 0 { return .run }
            return done ? .skip : .wait
        case .noneFailed:
            if upstream.failed > 0 { return .upstreamFailed }
            return done ? .run : .wait
        case .noneFailedMinOneSuccess:
            if upstream.failed > 0 { return .upstreamFailed }
            if upstream.skipped == upstream.total { return .skip }
            return done ? .run : .wait
        case .noneSkipped:
            if upstream.skipped > 0 { return .skip }
            return done ? .run : .wait
        }
    }
}
