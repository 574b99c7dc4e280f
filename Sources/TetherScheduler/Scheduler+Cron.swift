// Cron: scheduled runs. No catch-up: after downtime, a missed schedule fires once, for
// the latest instant it missed.
extension Scheduler {
    /// Arms the DAG's next schedule instant after `instant` (none if paused or manual).
    func armCron(_ entry: DAGEntry, after instant: Instant) {
        entry.nextFireAt = nil
        guard !entry.record.paused, let schedule = entry.schedule, let next = schedule.next(after: instant) else { return }
        entry.nextFireAt = next
        arm(.cron(dagID: entry.record.dagID), at: next)
    }

    func fireCron(_ dagID: String, timer: SchedulerTimer, now: Instant) {
        guard let entry = dags[dagID], entry.nextFireAt == timer.at, !entry.record.paused,
              let schedule = entry.schedule else { return }
        let logicalDate = schedule.previous(atOrBefore: now) ?? timer.at
        // At max_active_runs no scheduled run is created (as Airflow does): queuing one per
        // tick would pile up a backlog, which is catch-up by another name. The next fire
        // after a run finishes creates the latest one.
        let atLimit = entry.runningCount + entry.waitingRuns.count >= entry.latestSpec.maxActiveRuns
        if !atLimit, entry.record.lastScheduledAt.map({ $0 < logicalDate }) ?? true {
            entry.record.lastScheduledAt = logicalDate
            _ = createRun(entry, trigger: .schedule, logicalDate: logicalDate,
                          dataInterval: schedule.interval(endingAt: logicalDate), params: [:], now: now)
        }
        armCron(entry, after: now)
    }

    /// When the DAG's schedule fires next, if it is armed.
    public func nextScheduledRun(_ dagID: String) -> Instant? { dags[dagID]?.nextFireAt }
}

extension CronSchedule {
    /// The schedule interval that closes at `end`, one of its instants: from the instant
    /// before it.
    func interval(endingAt end: Instant) -> DataInterval {
        DataInterval(start: previous(atOrBefore: end.adding(milliseconds: -1)) ?? end, end: end)
    }

    /// The latest whole interval that closed at or before `instant`: a manual run's data
    /// interval, as Airflow infers it.
    func interval(endingAtOrBefore instant: Instant) -> DataInterval {
        guard let end = previous(atOrBefore: instant) else { return DataInterval(start: instant, end: instant) }
        return interval(endingAt: end)
    }
}

extension DAGEntry {
    /// The latest version's schedule; nil for manual-only DAGs.
    var schedule: CronSchedule? {
        latestSpec.schedule.isEmpty ? nil : try? CronSchedule(parsing: latestSpec.schedule)
    }
}
