import Foundation
import Testing
import TetherScheduler
import TetherSchedulerSQLite
import TetherTestSupport

/// Callbacks (on_success / on_failure / on_retry / on_deadline_miss), deadlines, deleting a
/// DAG and a backfill's own max_active_runs, on the manual clock.
@Suite struct CallbackTests {
    static let minute: Int64 = 60_000
    static let ttl = SchedulerConfiguration(leaseTTLMilliseconds: 86_400_000, timeoutGraceMilliseconds: 5_000)

    private static func callbackGrants(_ h: SchedulerHarness) -> [LeaseGrant] {
        h.grants.filter { CallbackKind.isCallbackID($0.key.taskID) }
    }

    @Test func aFailedTaskStartsItsOnFailureCallbackWithItsDetailsAndTheRunStaysFailed() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        try h.apply(dag("d", ["a", "b<a"]) {
            $0.onFailure = "notify"
            if $0.id == "a" { $0.queue = "etl" }
        })
        h.connect("x", queues: ["etl"], entrypoints: ["a", "notify"], slots: 2)
        let run = try h.trigger("d")
        let a = try #require(h.grants.first { $0.key.taskID == "a" })
        h.report("x", TaskReport(leaseID: a.leaseID, epoch: a.epoch,
                                 kind: .finished(.failed, AttemptUsage(exitCode: 3), message: "exit code 3")))
        #expect(h.runState(run.runID) == .failed)
        let callback = try #require(Self.callbackGrants(h).first)
        #expect(callback.key == TaskKey(runID: run.runID, taskID: "on_failure.1"))
        #expect(callback.entrypoint == "notify" && callback.agentID == "x")
        #expect(callback.params["callback"] == "on_failure")
        #expect(callback.params["dag_id"] == "d" && callback.params["run_id"] == run.runID)
        #expect(callback.params["task_id"] == "a" && callback.params["state"] == "failed")
        #expect(callback.params["attempt"] == "1" && callback.params["reason"] == "exit code 3")
        #expect(callback.params["logical_date"] != nil && callback.params["data_interval_end"] != nil)
        // b was upstream_failed: no callback for it (as in Airflow), and none for the run.
        #expect(Self.callbackGrants(h).count == 1)
        // The callback fails: it shows, and the run is as it was.
        h.report("x", TaskReport(leaseID: callback.leaseID, epoch: callback.epoch,
                                 kind: .finished(.failed, AttemptUsage(exitCode: 1), message: "webhook said 500")))
        let stored = try #require(h.store.callbacks(ofRun: run.runID).first)
        #expect(stored.instance.state == .failed && stored.instance.reason == "webhook said 500")
        #expect(stored.kind == .onFailure && stored.taskID == "a" && stored.queue == "etl")
        #expect(h.runState(run.runID) == .failed)
        #expect(h.scheduler.pendingCallbacks.isEmpty)
        #expect(Self.callbackGrants(h).count == 1)  // a callback is not retried
    }

    @Test func aLongFailureMessageReachesTheCallbackCutToAParamValueOnACharacterBoundary() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        try h.apply(dag("d", ["a"]) { $0.onFailure = "notify" })
        h.connect("x", entrypoints: ["a", "notify"], slots: 2)
        _ = try h.trigger("d")
        let a = try #require(h.grants.first)
        let message = String(repeating: "é", count: 3_000)  // 6,000 bytes; a byte cut would split one
        h.report("x", TaskReport(leaseID: a.leaseID, epoch: a.epoch, kind: .finished(.failed, AttemptUsage(exitCode: 1), message: message)))
        let reason = try #require(Self.callbackGrants(h).first?.params["reason"])
        #expect(reason.utf8.count <= DAGSpecLimits.maxParamValueBytes && reason.utf8.count > 4_000)
        #expect(reason.hasPrefix("éé") && reason.hasSuffix("é...") && !reason.contains("\u{FFFD}"))
    }

    @Test func runCallbacksRunAfterTheRunHasFinishedAndAFailedOneLeavesItSucceeded() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        var spec = dag("d", ["a"])
        spec.onSuccess = "celebrate"
        spec.onFailure = "page"
        try h.apply(spec)
        h.connect("x", entrypoints: ["a", "celebrate", "page"], slots: 2)
        let run = try h.trigger("d")
        h.finish(try #require(h.grants.first { $0.key.taskID == "a" }))
        #expect(h.runState(run.runID) == .success)  // finished before its callback runs
        #expect(h.scheduler.activeRun(run.runID) == nil)
        let callback = try #require(Self.callbackGrants(h).first)
        #expect(callback.entrypoint == "celebrate" && callback.params["state"] == "success" && callback.params["task_id"] == nil)
        h.finish(callback, .failed)
        #expect(h.runState(run.runID) == .success)
        #expect(h.store.callbacks(ofRun: run.runID).map(\.instance.state) == [.failed])
    }

    @Test func onRetryReportsEachOwnFailureThatIsRetriedButNotALostAttempt() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000))
        try h.apply(dag("d", ["a"]) {
            $0.retry = RetryPolicy(retries: 2)
            $0.onRetry = "retrying"
        })
        h.connect("x", entrypoints: ["a"], slots: 1)
        let run = try h.trigger("d")
        h.finish(try #require(h.grants.last), .failed)
        #expect(h.store.callbacks(ofRun: run.runID).map(\.kind) == [.onRetry])
        #expect(h.store.callbacks(ofRun: run.runID).first?.params["state"] == "up_for_retry")
        // The second attempt's agent vanishes: lost, re-queued, no on_retry.
        _ = h.advance(10_000)
        #expect(h.store.callbacks(ofRun: run.runID).count == 1)
        #expect(h.store.attempts(of: TaskKey(runID: run.runID, taskID: "a")).map(\.outcome) == [.failed, .lost])
    }

    @Test func aCallbackWhoseAgentVanishesRunsAgainOnAnotherAgentAndTheOldLeaseIsFenced() throws {
        let h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000))
        try h.apply(dag("d", ["a"]) { $0.onSuccess = "notify" })
        h.connect("x", entrypoints: ["a", "notify"], slots: 2)
        let run = try h.trigger("d")
        h.finish(try #require(h.grants.first { $0.key.taskID == "a" }))
        let first = try #require(Self.callbackGrants(h).first)
        _ = h.advance(10_000)  // x is silent for a TTL
        h.connect("y", entrypoints: ["notify"])
        let second = try #require(Self.callbackGrants(h).last)
        #expect(second.agentID == "y" && second.key == first.key && second.epoch == first.epoch + 1)
        // x's late report carries the old epoch: rejected, nothing changes.
        #expect(h.finish(first, agentID: "x") == .rejected(.staleEpoch(leaseID: first.leaseID, reported: first.epoch,
                                                                        current: second.epoch)))
        h.finish(second)
        let stored = try #require(h.store.callbacks(ofRun: run.runID).first)
        #expect(stored.instance.state == .success && stored.instance.infrastructureAttempts == 1)
        #expect(h.store.attempts(of: first.key).map(\.outcome) == [.lost, .succeeded])
    }

    @Test func callbacksSurviveARestartQueuedAndLeased() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        try h.apply(dag("d", ["a", "b"]) { $0.onSuccess = "notify_\($0.id)" })
        h.connect("x", entrypoints: ["a", "b", "notify_a"], slots: 3)
        let run = try h.trigger("d")
        for grant in h.grants { h.finish(grant) }
        let leased = try #require(Self.callbackGrants(h).first)
        #expect(leased.entrypoint == "notify_a")
        #expect(h.scheduler.pendingCallbacks.count == 2)  // notify_b has no agent
        h.restart()
        #expect(h.scheduler.pendingCallbacks.map(\.entrypoint).sorted() == ["notify_a", "notify_b"])
        let welcome = h.connect("x", entrypoints: ["a", "b", "notify_a", "notify_b"], slots: 3, resuming: [leased.leaseID])
        #expect(welcome.confirmedLeaseIDs == [leased.leaseID])
        let b = try #require(Self.callbackGrants(h).first { $0.entrypoint == "notify_b" })
        h.finish(leased)
        h.finish(b)
        #expect(h.store.callbacks(ofRun: run.runID).map(\.instance.state) == [.success, .success])
        #expect(h.runState(run.runID) == .success)
    }

    @Test func callbacksAndDeadlinesRoundTripThroughSQLite() async throws {
        let directory = try ScratchDirectory()
        let sqlite = try SQLiteSchedulerStore(path: directory.url.appendingPathComponent("state.db").path)
        defer { sqlite.close() }
        let h = SchedulerHarness(configuration: Self.ttl)
        h.mirror = sqlite
        var spec = dag("d", ["a"]) { $0.onFailure = "notify" }
        spec.deadline = .afterCreation(milliseconds: 30 * Self.minute)
        spec.onDeadlineMiss = "late"
        try h.apply(spec)
        h.connect("x", entrypoints: ["a", "notify"], slots: 2)
        let run = try h.trigger("d")
        _ = h.advance(30 * Self.minute)
        h.finish(try #require(h.grants.first { $0.key.taskID == "a" }), .failed)
        let leased = try #require(Self.callbackGrants(h).first)
        let snapshot = try sqlite.loadSnapshot()
        #expect(snapshot.callbacks.map(\.key.taskID).sorted() == ["on_deadline_miss.1", "on_failure.2"])
        #expect(snapshot.callbacks.first { $0.kind == .onFailure }?.instance.lease?.leaseID == leased.leaseID)
        #expect(snapshot.liveAttempts.map(\.leaseID) == [leased.leaseID])
        let restarted = Scheduler(clock: h.clock, configuration: h.configuration, snapshot: snapshot)
        #expect(restarted.pendingCallbacks.count == 2)
        let events = restarted.agentConnected(AgentRegistration(agentID: "x", queues: ["default"], entrypoints: ["notify"],
                                                                slots: 2, resumingLeaseIDs: [leased.leaseID]))
        #expect(events.confirmedLeaseIDs == [leased.leaseID])
        let stored = try #require(try await sqlite.run(run.runID))
        #expect(stored.deadlineAt == run.createdAt.adding(milliseconds: 30 * Self.minute))
        #expect(stored.deadlineMissedAt == stored.deadlineAt && stored.callbackCount == 2)
    }

    // MARK: Deadlines

    @Test func aRunPastItsDeadlineIsMarkedOnceAndItsCallbackRunsOnce() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        var spec = dag("d", ["a"])
        spec.deadline = .afterCreation(milliseconds: 120 * Self.minute)
        spec.onDeadlineMiss = "late"
        try h.apply(spec)
        h.connect("x", entrypoints: ["a", "late"], slots: 2)
        let run = try h.trigger("d")
        _ = h.advance(120 * Self.minute - 1)
        #expect(h.store.run(run.runID)?.deadlineMissedAt == nil)
        _ = h.advance(1)
        #expect(h.store.run(run.runID)?.deadlineMissedAt == run.createdAt.adding(milliseconds: 120 * Self.minute))
        let callback = try #require(Self.callbackGrants(h).first)
        #expect(callback.entrypoint == "late" && callback.params["callback"] == "on_deadline_miss")
        #expect(callback.params["reason"] == "unfinished tasks: a" && callback.params["state"] == "running")
        #expect(callback.params["deadline"] == "2026-01-01T02:00:00Z")
        _ = h.advance(240 * Self.minute)
        #expect(Self.callbackGrants(h).count == 1)
        #expect(h.runState(run.runID) == .running)  // a missed deadline changes nothing else
    }

    @Test func aRunFinishedBeforeItsDeadlineGetsNothing() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        var spec = dag("d", ["a"])
        spec.deadline = .afterCreation(milliseconds: 60 * Self.minute)
        spec.onDeadlineMiss = "late"
        try h.apply(spec)
        h.connect("x", entrypoints: ["a", "late"], slots: 2)
        let run = try h.trigger("d")
        _ = h.advance(59 * Self.minute)
        h.finish(try #require(h.grants.first))
        _ = h.advance(120 * Self.minute)
        #expect(h.store.run(run.runID)?.deadlineMissedAt == nil)
        #expect(Self.callbackGrants(h).isEmpty && h.store.callbacks(ofRun: run.runID).isEmpty)
    }

    @Test func aTimeOfDayDeadlineCountsFromTheDataIntervalEnd() throws {
        // The @daily run of 2026-01-02T00:00Z (interval ending then) is due by 06:00 that day.
        let h = SchedulerHarness(configuration: Self.ttl)
        var spec = dag("d", ["a"])
        spec.schedule = "@daily"
        spec.deadline = .timeOfDay(minutes: 6 * 60)
        try h.apply(spec)
        _ = h.advance(1_440 * Self.minute)
        let run = try #require(h.store.runs(ofDAG: "d").first)
        #expect(run.dataInterval.end == Instant(millisecondsSinceEpoch: 1_767_312_000_000))
        #expect(run.deadlineAt == Instant(millisecondsSinceEpoch: 1_767_312_000_000 + 360 * Self.minute))
        _ = h.advance(360 * Self.minute)
        #expect(h.store.run(run.runID)?.deadlineMissedAt == run.deadlineAt)
        // 07:00 is after an interval end of 08:00's day: the next day's 07:00.
        #expect(RunDeadline.timeOfDay(minutes: 7 * 60).instant(
            createdAt: Instant(millisecondsSinceEpoch: 0), intervalEnd: Instant(millisecondsSinceEpoch: 8 * 60 * Self.minute))
            == Instant(millisecondsSinceEpoch: (24 + 7) * 60 * Self.minute))
    }

    @Test func aDeadlineAfterARestartComesAtMostItsDurationLater() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        var spec = dag("d", ["a"])
        spec.deadline = .afterCreation(milliseconds: 30 * Self.minute)
        spec.onDeadlineMiss = "late"
        try h.apply(spec)
        let run = try h.trigger("d")
        // The wall clock stepped back a day while the server was down: the deadline is re-based.
        let earlier = ManualClock(h.clock.now().adding(milliseconds: -86_400_000))
        let restarted = Scheduler(clock: earlier, configuration: h.configuration, snapshot: try h.store.loadSnapshot())
        h.store.apply(restarted.takeOutput().changes)
        earlier.advance(milliseconds: 30 * Self.minute)
        restarted.tick()
        h.store.apply(restarted.takeOutput().changes)
        #expect(h.store.run(run.runID)?.deadlineMissedAt == earlier.now())
        #expect(h.store.callbacks(ofRun: run.runID).map(\.kind) == [.onDeadlineMiss])
        // Restarted again after the miss: recorded once, never again.
        let again = Scheduler(clock: earlier, configuration: h.configuration, snapshot: try h.store.loadSnapshot())
        earlier.advance(milliseconds: 60 * Self.minute)
        again.tick()
        h.store.apply(again.takeOutput().changes)
        #expect(h.store.callbacks(ofRun: run.runID).count == 1)
    }

    // MARK: Deleting a DAG

    @Test func deletingADAGWithUnfinishedRunsIsRefusedUnlessItsRunsAreCancelled() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        var spec = dag("d", ["a"]) { $0.pool = "p" }
        spec.schedule = "@hourly"
        try h.apply(spec)
        try h.scheduler.setPool("p", slots: 2)
        h.connect("x", entrypoints: ["a"], slots: 2)
        let run = try h.trigger("d")
        let grant = try #require(h.grants.first)
        #expect(throws: SchedulerError.self) { try h.scheduler.deleteDAG("d", cancelRuns: false) }
        #expect(h.store.dag("d") != nil)
        #expect(try h.scheduler.deleteDAG("d", cancelRuns: true) == [run.runID])
        h.flush()
        #expect(h.revokes.map(\.leaseID) == [grant.leaseID])
        #expect(h.store.dag("d") == nil && h.store.versions(ofDAG: "d").isEmpty && h.store.runs(ofDAG: "d").isEmpty)
        #expect(h.store.tasks(ofRun: run.runID).isEmpty && h.store.attemptCount == 0)
        #expect(h.scheduler.poolStatuses.map(\.pool.name) == ["p"])
        // The agent's late reports change nothing and write nothing; its slot is free again.
        #expect(h.report("x", TaskReport(leaseID: grant.leaseID, epoch: grant.epoch, kind: .started(at: h.clock.now()))) == .applied)
        #expect(h.finish(grant) == .applied)
        #expect(h.store.attemptCount == 0)
        // The hourly schedule never fires again, not even after a restart.
        _ = h.advance(3 * 60 * Self.minute)
        h.restart()
        _ = h.advance(3 * 60 * Self.minute)
        #expect(h.store.runs(ofDAG: "d").isEmpty && h.scheduler.dag("d") == nil)
        // Applying the id again starts afresh.
        let version = try h.apply(dag("d", ["a"]))
        #expect(version.version == 1)
        #expect(try h.trigger("d").runID == "d-1")
    }

    @Test func deletingADAGWithOnlyFinishedRunsNeedsNoCancel() throws {
        let h = SchedulerHarness(configuration: Self.ttl)
        try h.apply(dag("d", ["a"]) { $0.onSuccess = "notify" })
        h.connect("x", entrypoints: ["a"], slots: 1)
        let run = try h.trigger("d")
        h.finish(try #require(h.grants.first))
        #expect(h.scheduler.pendingCallbacks.count == 1)  // no agent offers notify
        #expect(try h.scheduler.deleteDAG("d", cancelRuns: false).isEmpty)
        h.flush()
        #expect(h.scheduler.pendingCallbacks.isEmpty && h.store.callbacks(ofRun: run.runID).isEmpty)
        #expect(h.store.run(run.runID) == nil)
        #expect(throws: SchedulerError.unknownDAG("d")) { try h.scheduler.deleteDAG("d", cancelRuns: true) }
    }

    @Test func aDeletedDAGStaysDeletedInSQLite() async throws {
        let directory = try ScratchDirectory()
        let sqlite = try SQLiteSchedulerStore(path: directory.url.appendingPathComponent("state.db").path)
        defer { sqlite.close() }
        let h = SchedulerHarness(configuration: Self.ttl)
        h.mirror = sqlite
        try h.apply(dag("d", ["a"]) { $0.onSuccess = "notify" })
        try h.apply(dag("keep", ["a"]))
        h.connect("x", entrypoints: ["a", "notify"], slots: 2)
        _ = try h.trigger("d")
        _ = try h.trigger("keep")
        for grant in h.grants where grant.key.taskID == "a" { h.finish(grant) }
        try h.scheduler.deleteDAG("d", cancelRuns: false)
        h.flush()
        let snapshot = try sqlite.loadSnapshot()
        #expect(snapshot.dags.map(\.dagID) == ["keep"] && snapshot.versions.map(\.dagID) == ["keep"])
        #expect(snapshot.callbacks.isEmpty)
        let counts = try await sqlite.read { db -> [Int64] in
            var counts: [Int64] = []
            for table in ["runs", "task_instances", "task_attempts", "callbacks"] {
                try db.query("SELECT count(*) FROM \(table) WHERE run_id LIKE 'd-%'") { counts.append($0[0].int64 ?? -1) }
            }
            return counts
        }
        #expect(counts == [0, 0, 0, 0])
    }

    // MARK: Backfill's own max_active_runs

    @Test func aBackfillRunsAtMostItsOwnMaxActiveRunsAtOnce() throws {
        let day: Int64 = 86_400_000
        let applied = Instant(millisecondsSinceEpoch: 1_767_225_600_000 + 9 * day)
        let h = SchedulerHarness(configuration: Self.ttl, clock: ManualClock(applied))
        var spec = dag("d", ["a"])
        spec.schedule = "@daily"
        try h.apply(spec)
        h.connect("x", entrypoints: ["a"], slots: 10)
        #expect(throws: SchedulerError.self) {
            try h.scheduler.backfill(dagID: "d", from: applied.adding(milliseconds: -5 * day), through: applied,
                                     rerunFailed: false, existing: [], maxActiveRuns: -1)
        }
        let outcome = try h.scheduler.backfill(dagID: "d", from: applied.adding(milliseconds: -5 * day),
                                               through: applied.adding(milliseconds: -1 * day), rerunFailed: false,
                                               existing: [], maxActiveRuns: 2)
        h.flush()
        #expect(outcome.created.count == 5)
        let ids = outcome.created.map(\.runID)
        func running() -> [String] { ids.filter { h.runState($0) == .running } }
        #expect(running() == Array(ids.prefix(2)))
        #expect(h.scheduler.waitReason(ofRun: ids[2]) == "backfill \(ids[0]) has 2 of its max_active_runs 2 running")
        // A manual run is not held back by the backfill's limit.
        let manual = try h.trigger("d")
        #expect(h.runState(manual.runID) == .running)
        h.finish(try #require(h.grants.first { $0.key.runID == ids[0] }))
        #expect(running() == [ids[1], ids[2]])
        // The limit holds across a restart.
        h.restart()
        #expect(h.scheduler.waitReason(ofRun: ids[3]) == "backfill \(ids[0]) has 2 of its max_active_runs 2 running")
        h.connect("x", entrypoints: ["a"], slots: 10, resuming: h.grants.filter { [ids[1], ids[2], manual.runID].contains($0.key.runID) }.map(\.leaseID))
        for runID in ids.dropFirst() {
            h.finish(try #require(h.grants.last { $0.key.runID == runID }))
        }
        #expect(ids.allSatisfy { h.runState($0) == .success })
    }
}
