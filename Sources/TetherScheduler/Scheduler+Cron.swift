// Cron: scheduled runs. Without catch-up (the default) a missed schedule fires once, for
// the latest instant it missed. With `catchup`, every instant after the last scheduled
// one gets its run, oldest first, as max_active_runs allows: the backlog is created as
// runs finish, never more than the limit at once.
extension Scheduler {
    /// Arms the DAG's next schedule instant after `instant` (none if paused or manual);
    /// a catch-up DAG instead creates the runs it is owed by now, then arms.
    func scheduleNext(_ entry: DAGEntry, after instant: Instant) {
        if entry.latestSpec.catchup {
            catchUp(entry, now: clock.now())
        } else {
            armCron(entry, after: instant)
        }
    }

    func armCron(_ entry: DAGEntry, after instant: Instant) {
        entry.nextFireAt = nil
        guard !entry.record.paused, let schedule = entry.schedule, let next = schedule.next(after: instant) else { return }
        entry.nextFireAt = next
        arm(.cron(dagID: entry.record.dagID), at: next)
    }

    func fireCron(_ dagID: String, timer: SchedulerTimer, now: Instant) {
        guard let entry = dags[dagID], entry.nextFireAt == timer.at, !entry.record.paused,
              let schedule = entry.schedule else { return }
        if entry.latestSpec.catchup {
            catchUp(entry, now: now)
            return
        }
        let logicalDate = schedule.previous(atOrBefore: now) ?? timer.at
        // At max_active_runs no scheduled run is created (as Airflow does): queuing one per
        // tick would pile up a backlog, which is catch-up by another name. The next fire
        // after a run finishes creates the latest one.
        if !entry.atRunLimit, entry.record.lastScheduledAt.map({ $0 < logicalDate }) ?? true {
            entry.record.lastScheduledAt = logicalDate
            _ = createRun(entry, trigger: .schedule, logicalDate: logicalDate,
                          dataInterval: schedule.interval(endingAt: logicalDate), params: [:], now: now)
        }
        armCron(entry, after: now)
    }

    /// Creates a run for each schedule instant after the last scheduled one (after the
    /// DAG's creation for its first), up to now, oldest first, while the DAG is under
    /// max_active_runs; then arms the next instant, or, with a backlog left, nothing:
    /// `finishRun` calls again when a place frees up.
    func catchUp(_ entry: DAGEntry, now: Instant) {
        entry.nextFireAt = nil
        guard !entry.record.paused, let schedule = entry.schedule else { return }
        var next = schedule.next(after: entry.record.lastScheduledAt ?? entry.record.createdAt)
        while let instant = next, instant <= now, !entry.atRunLimit {
            entry.record.lastScheduledAt = instant
            _ = createRun(entry, trigger: .schedule, logicalDate: instant, dataInterval: schedule.interval(endingAt: instant),
                          params: [:], now: now)
            next = schedule.next(after: instant)
        }
        if let instant = next, instant > now {
            entry.nextFireAt = instant
            arm(.cron(dagID: entry.record.dagID), at: instant)
        }
    }

    /// When the DAG's schedule fires next, if it is armed.
    public func nextScheduledRun(_ dagID: String) -> Instant? { dags[dagID]?.nextFireAt }
}

extension DAGEntry {
    /// Whether the DAG has max_active_runs runs queued or running.
    var atRunLimit: Bool { runningCount + waitingRuns.count >= latestSpec.maxActiveRuns }
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
