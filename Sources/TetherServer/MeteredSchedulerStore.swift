import TetherScheduler

/// The scheduler's store, counting the attempts each commit ends (`ServerMetrics`) once that
/// commit succeeded. An attempt's final outcome is written once, when it ends, so each
/// ending is counted once; one in a failed commit is not counted (its caller got an error,
/// and the attempt may end again after recovery).
final class MeteredSchedulerStore: SchedulerStore {
    private let base: any SchedulerStore
    private let metrics: ServerMetrics

    init(_ base: any SchedulerStore, metrics: ServerMetrics) {
        self.base = base
        self.metrics = metrics
    }

    func loadSnapshot() throws -> SchedulerSnapshot { try base.loadSnapshot() }

    func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        var ended: [AttemptOutcome: Int] = [:]
        for case .attempt(let attempt) in changes where attempt.outcome != .running { ended[attempt.outcome, default: 0] += 1 }
        guard !ended.isEmpty else { return base.commit(changes, completion: completion) }
        base.commit(changes) { [metrics, ended] result in
            if case .success = result { metrics.attemptsEnded(ended) }
            completion(result)
        }
    }

    func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) { base.probe(completion: completion) }
}
