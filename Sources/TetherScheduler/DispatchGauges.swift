/// What the dispatcher holds right now, for metrics read at scrape time (the host reads
/// these under `SchedulerService.read`, so they cost the scheduler's lock for as long).
extension Scheduler {
    /// Ready tasks waiting for a grant, by queue; queues with none are left out.
    /// O(ready tasks).
    public var readyTasksByQueue: [String: Int] { dispatcher.queuedCountByQueue }

    /// Live leases: granted and not yet ended by a report or expiry (revoked ones whose agent
    /// has not reported yet included).
    public var activeLeaseCount: Int { leases.count }
}
