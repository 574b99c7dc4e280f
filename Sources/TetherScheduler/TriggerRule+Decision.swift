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
    /// Airflow's semantics. A rule decides as soon as the outcome is certain (an
    /// `all_success` task is upstream_failed on the first failure, without waiting for
    /// the rest); a task with no upstream runs at once.
    func decide(_ upstream: UpstreamSummary) -> TriggerDecision {
        switch self {
        case .allSuccess:
            if upstream.failed > 0 { return .upstreamFailed }
            if upstream.skipped > 0 { return .skip }
            return upstream.allFinished ? .run : .wait
        case .allFailed:
            if upstream.succeeded > 0 || upstream.skipped > 0 { return .skip }
            return upstream.allFinished ? .run : .wait
        case .allDone:
            return upstream.allFinished ? .run : .wait
        case .oneSuccess:
            if upstream.succeeded > 0 || upstream.total == 0 { return .run }
            guard upstream.allFinished else { return .wait }
            return upstream.skipped == upstream.total ? .skip : .upstreamFailed
        case .oneFailed:
            if upstream.failed > 0 { return .run }
            guard upstream.allFinished else { return .wait }
            return upstream.total == 0 ? .run : .skip
        case .noneFailed:
            if upstream.failed > 0 { return .upstreamFailed }
            return upstream.allFinished ? .run : .wait
        }
    }
}
