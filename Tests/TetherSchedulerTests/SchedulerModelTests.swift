import Foundation
import Testing
import TetherTestSupport
@testable import TetherScheduler
import TetherSchedulerSQLite

/// Random sequences of applies, triggers, grants, agent events, expiries, cancels,
/// crashes and restarts, checked after every step against the invariants:
/// - a task attempt never has two live leases, and epochs only grow;
/// - a report is applied only with the task's current epoch, and an event the store
///   acknowledged is never applied again;
/// - every finished run agrees with its tasks' states;
/// - after a restart the scheduler holds exactly what the store acknowledged;
/// - a backfill never has more runs running than its own max_active_runs;
/// - callbacks (run, task and deadline ones, leased like tasks) never change a run and
///   all finish; a deleted DAG leaves nothing behind and its id starts afresh.
@Suite struct SchedulerModelTests {
    /// The agent side of the model: what each agent believes it holds, and its outbox
    /// of events not yet acknowledged.
    struct ModelAgent {
        var id: String
        var queues: Set<String>
        var slots: Int
        var connected = false
        /// The current stream's id; an `endSession` for an older one is stale.
        var session: UInt64 = 0
        var held: [String: LeaseGrant] = [:]
        var nextSequence: UInt64 = 1
        var outbox: [(sequence: UInt64, report: TaskReport)] = []
        /// Leases it held once, for stale reports.
        var formerly: [LeaseGrant] = []
    }

    final class Model {
        var rng: SplitMix64
        let h: SchedulerHarness
        var agents: [ModelAgent]
        var highestEpoch: [TaskKey: UInt64] = [:]
        /// (agent, sequence) of applied events whose commit was acknowledged.
        var committedEvents = Set<String>()
        /// Applied since the last flush.
        var pendingEvents: [String] = []
        var steps = 0
        /// Task instances set back to scheduled by clears so far.
        var clearedTasks = 0
        /// The most slots of any pool held at once so far.
        var mostPoolSlotsHeld = 0
        /// Runs created by backfills so far.
        var backfilledRuns = 0

        init(seed: UInt64) {
            rng = SplitMix64(seed: seed)
            h = SchedulerHarness(configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000, timeoutGraceMilliseconds: 2_000))
            agents = [
                ModelAgent(id: "eu-1", queues: ["default", "gpu"], slots: 2),
                ModelAgent(id: "us-1", queues: ["default"], slots: 3),
                ModelAgent(id: "ap-1", queues: ["gpu"], slots: 1),
            ]
            // Pools shared by every DAG; sized once, so their limits hold at every step.
            for (name, slots) in Self.pools { try! h.scheduler.setPool(name, slots: slots) }
            h.flush()
        }

        static let pools = ["warehouse": 2, "api": 3]

        func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &rng) }
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

        func randomSpec() -> DAGSpec {
            let dagID = ["alpha", "beta", "gamma"][int(0..<3)]
            let count = int(1..<7)
            var tasks: [TaskSpec] = []
            for i in 0..<count {
                let parents = (0..<i).filter { _ in chance(0.35) }.map { "t\($0)" }
                tasks.append(TaskSpec(
                    id: "t\(i)", entrypoint: "work", queue: chance(0.25) ? "gpu" : "default", dependsOn: parents,
                    triggerRule: TriggerRule.allCases[int(0..<TriggerRule.allCases.count)],
                    retry: RetryPolicy(retries: int(0..<3), delayMilliseconds: Int64(int(0..<3)) * 1_000, exponentialBackoff: chance(0.5)),
                    executionTimeoutMilliseconds: chance(0.2) ? 30_000 : nil, priority: int(0..<3),
                    pool: chance(0.4) ? ["warehouse", "api"][int(0..<2)] : "", poolSlots: int(1..<3),
                    queueTimeoutMilliseconds: chance(0.15) ? 20_000 : nil,
                    onSuccess: chance(0.1) ? "work" : "", onFailure: chance(0.3) ? "work" : "", onRetry: chance(0.2) ? "work" : ""))
            }
            var spec = DAGSpec(dagID: dagID, tasks: tasks)
            spec.schedule = chance(0.5) ? "*/5 * * * *" : ""
            spec.onSuccess = chance(0.2) ? "work" : ""
            spec.onFailure = chance(0.3) ? "work" : ""
            if chance(0.3) {
                spec.deadline = .afterCreation(milliseconds: 30_000)
                spec.onDeadlineMiss = chance(0.7) ? "work" : ""
            }
            spec.maxActiveRuns = int(1..<3)
            spec.maxActiveTasks = int(0..<3)
            spec.runTimeoutMilliseconds = chance(0.2) ? 60_000 : nil
            return spec
        }

        /// Commits, acknowledging applied events and delivering effects to connected agents.
        func flush() {
            let effects = h.flush()
            committedEvents.formUnion(pendingEvents)
            pendingEvents = []
            // The Ack after the commit; sometimes lost with the connection, so the agent resends.
            for i in agents.indices where agents[i].connected && chance(0.7) { agents[i].outbox = [] }
            deliver(effects)
        }

        func deliver(_ effects: [SchedulerEffect]) {
            for effect in effects {
                switch effect {
                case .grant(let grant):
                    let i = agents.firstIndex { $0.id == grant.agentID }!
                    #expect(grant.epoch > highestEpoch[grant.key] ?? 0, "epoch must grow: \(grant.leaseID)")
                    highestEpoch[grant.key] = grant.epoch
                    // A grant for an agent that went away is lost in transit; its lease expires.
                    if agents[i].connected { agents[i].held[grant.leaseID] = grant }
                case .revoke(let agentID, let leaseID, _, _):
                    let i = agents.firstIndex { $0.id == agentID }!
                    guard agents[i].connected, let grant = agents[i].held[leaseID] else { continue }
                    send(i, TaskReport(leaseID: leaseID, epoch: grant.epoch, kind: .finished(.cancelled, AttemptUsage(), message: "revoked")))
                case .endSession(let agentID, let session, _):
                    // Silent for a TTL: its stream is ended; it keeps its leases and may resume them.
                    let i = agents.firstIndex { $0.id == agentID }!
                    guard agents[i].connected, agents[i].session == session else { continue }
                    #expect(!h.scheduler.isConnected(agentID))
                    agents[i].connected = false
                }
            }
        }

        func send(_ i: Int, _ report: TaskReport) {
            let sequence = agents[i].nextSequence
            agents[i].nextSequence += 1
            agents[i].outbox.append((sequence, report))
            if case .finished = report.kind, let grant = agents[i].held.removeValue(forKey: report.leaseID) {
                agents[i].formerly.append(grant)
            }
            submit(i, sequence, report)
        }

        func submit(_ i: Int, _ sequence: UInt64, _ report: TaskReport) {
            let eventID = "\(agents[i].id)#\(sequence)"
            let result = h.scheduler.report(agentID: agents[i].id, sequence: sequence, report)
            if result == .applied {
                let appliedBefore = committedEvents.contains(eventID)
                #expect(!appliedBefore, "event \(eventID) applied twice")
                // A lease of a deleted DAG ends with nothing written; its key may be a new run's.
                if h.scheduler.leases[report.leaseID]?.orphaned != true {
                    #expect(report.epoch == highestEpoch[h.scheduler.leases[report.leaseID]?.key ?? TaskKey(runID: "", taskID: "")] ?? report.epoch)
                }
                pendingEvents.append(eventID)
            }
        }

        func step() {
            steps += 1
            switch int(0..<100) {
            case 0..<6:
                _ = try? h.scheduler.apply(randomSpec())
            case 6..<20:
                _ = try? h.scheduler.trigger(dagID: ["alpha", "beta", "gamma"][int(0..<3)])
            case 20..<28:
                let i = int(0..<agents.count)
                agents[i].connected = true
                agents[i].session += 1
                let welcome = h.scheduler.agentConnected(AgentRegistration(
                    agentID: agents[i].id, queues: agents[i].queues, entrypoints: ["work"], slots: agents[i].slots,
                    resumingLeaseIDs: agents[i].held.keys.sorted(), session: agents[i].session))
                for leaseID in agents[i].held.keys where !welcome.confirmedLeaseIDs.contains(leaseID) {
                    agents[i].formerly.append(agents[i].held.removeValue(forKey: leaseID)!)
                }
                // Resend what the scheduler has not acknowledged, in order.
                let resendFrom = chance(0.5) ? welcome.appliedSequence : 0  // an agent may ignore the hint
                for (sequence, report) in agents[i].outbox where sequence > resendFrom {
                    submit(i, sequence, report)
                }
            case 28..<32:
                let i = int(0..<agents.count)
                if agents[i].connected {
                    agents[i].connected = false
                    h.scheduler.agentDisconnected(agents[i].id)
                }
            case 32..<34:  // agent process dies: loses its leases (and outbox) and reconnects later
                let i = int(0..<agents.count)
                if agents[i].connected { h.scheduler.agentDisconnected(agents[i].id) }
                agents[i].connected = false
                agents[i].formerly += agents[i].held.values
                agents[i].held = [:]
                agents[i].outbox = []
            case 34..<62:
                let connected = agents.indices.filter { agents[$0].connected && !agents[$0].held.isEmpty }
                guard let i = connected.randomElement(using: &rng) else { return }
                let grant = agents[i].held.values.sorted { $0.leaseID < $1.leaseID }[int(0..<agents[i].held.count)]
                let kind: TaskReport.Kind = chance(0.2)
                    ? .started(at: h.clock.now())
                    : .finished([.succeeded, .succeeded, .failed, .timedOut, .rejected][int(0..<5)], AttemptUsage(), message: "")
                send(i, TaskReport(leaseID: grant.leaseID, epoch: grant.epoch, kind: kind))
            case 62..<66:  // a stale report from a lease held earlier
                let candidates = agents.indices.filter { agents[$0].connected && !agents[$0].formerly.isEmpty }
                guard let i = candidates.randomElement(using: &rng) else { return }
                let old = agents[i].formerly[int(0..<agents[i].formerly.count)]
                // Settle first: delivering revokes makes agents report.
                while true {
                    let pending = h.scheduler.takeOutput()
                    if pending.changes.isEmpty && pending.effects.isEmpty { break }
                    deliver(h.commit(pending))
                }
                let before = h.store.task(old.key)
                send(i, TaskReport(leaseID: old.leaseID, epoch: old.epoch, kind: .finished(.succeeded, AttemptUsage(), message: "")))
                let after = h.scheduler.takeOutput()
                #expect(after.changes.allSatisfy { if case .agentSequence = $0 { true } else { false } } || before?.lease?.leaseID == old.leaseID,
                        "stale report changed state")
                deliver(h.commit(after))
            case 66..<76:
                for i in agents.indices where agents[i].connected { h.scheduler.heartbeat(agentID: agents[i].id) }
            case 76..<88:
                h.clock.advance(milliseconds: Int64(int(0..<12_000)))
                h.scheduler.tick()
            case 88..<90:  // a backfill of the last hour or so, with or without a limit of its own
                let dagID = ["alpha", "beta", "gamma"][int(0..<3)]
                let from = h.clock.now().adding(milliseconds: -Int64(int(0..<3_600_000)))
                let through = from.adding(milliseconds: Int64(int(0..<1_800_000)))
                let existing = h.store.runs(ofDAG: dagID).filter { $0.trigger != .manual && (from...through).contains($0.logicalDate) }
                    .map { StoredRun(run: $0, tasks: h.store.tasks(ofRun: $0.runID)) }
                let outcome = try? h.scheduler.backfill(dagID: dagID, from: from, through: through, rerunFailed: chance(0.3),
                                                        existing: existing, maxActiveRuns: int(0..<3))
                backfilledRuns += outcome?.created.count ?? 0
            case 90..<92:  // clear tasks of any run, finished or not (a lagging store included)
                let all = ["alpha", "beta", "gamma"].flatMap { h.store.runs(ofDAG: $0) }
                guard let run = all.randomElement(using: &rng) else { return }
                let tasks = h.store.tasks(ofRun: run.runID)
                let picked = chance(0.5) ? [] : [tasks.map(\.key.taskID).sorted().randomElement(using: &rng)].compactMap { $0 }
                let done = try? h.scheduler.clear(runID: run.runID, ClearRequest(taskIDs: picked, downstream: chance(0.5), failedOnly: chance(0.5)),
                                                  stored: StoredRun(run: run, tasks: tasks))
                clearedTasks += done?.count ?? 0
            case 92..<94:
                let active = h.scheduler.runs.keys.sorted()
                guard let runID = active.randomElement(using: &rng) else { return }
                if chance(0.5) {
                    try? h.scheduler.cancelRun(runID)
                } else {
                    let taskID = h.scheduler.runs[runID]!.tasks.keys.sorted().randomElement(using: &rng)!
                    try? h.scheduler.cancelTask(runID: runID, taskID: taskID)
                }
            case 94..<95:  // delete a DAG, refused while it has active runs unless they are cancelled
                let dagID = ["alpha", "beta", "gamma"][int(0..<3)]
                if (try? h.scheduler.deleteDAG(dagID, cancelRuns: chance(0.5))) != nil {
                    // A later apply starts afresh: run ids and epochs of this DAG begin again.
                    highestEpoch = highestEpoch.filter { !$0.key.runID.hasPrefix("\(dagID)-") }
                }
            default:  // crash: unflushed output is lost; agents keep running and reconnect
                h.restart()
                pendingEvents = []
                for i in agents.indices { agents[i].connected = false }
                checkSchedulerMatchesStore()
            }
            if chance(0.85) { flush() }
            checkInvariants()
        }

        func checkInvariants() {
            var liveByTask: [TaskKey: Int] = [:]
            for live in h.scheduler.leases.values where live.record.revoked == nil { liveByTask[live.key, default: 0] += 1 }
            #expect(liveByTask.values.allSatisfy { $0 <= 1 }, "two live leases for one task at step \(steps)")
            // A pool's slots: leases (revoked ones too, until their agent reports) never hold more.
            var held: [String: Int] = [:]
            for live in h.scheduler.leases.values { if let pool = live.pool { held[pool.name, default: 0] += pool.slots } }
            mostPoolSlotsHeld = max(mostPoolSlotsHeld, held.values.max() ?? 0)
            for (name, size) in Self.pools {
                #expect(held[name, default: 0] <= size, "pool \(name) over its \(size) slots at step \(steps)")
                #expect(h.scheduler.dispatcher.poolUse(name) <= size && h.scheduler.dispatcher.poolUse(name) >= held[name, default: 0])
            }
            // Work-conserving: no queued task waits only for a free slot while an agent that
            // could take it has one (its DAG below its limit, its pool letting it in).
            let dispatcher = h.scheduler.dispatcher
            for run in h.scheduler.runs.values {
                for task in run.tasks.values where task.state == .queued {
                    guard case .noFreeSlot(let queue)? = dispatcher.waitReason(task.key),
                          let entrypoint = run.specs[task.key.taskID]?.entrypoint else { continue }
                    let idle = dispatcher.agents.values.filter { $0.free > 0 && $0.queues.contains(queue) && $0.entrypoints.contains(entrypoint) }
                    #expect(idle.isEmpty, "\(task.key) waits while \(idle.map(\.id)) have free slots, at step \(steps)")
                }
            }
            for (runID, run) in h.scheduler.runs {
                for task in run.tasks.values where task.state == .running {
                    #expect(task.lease != nil && h.scheduler.leases[task.lease!.leaseID] != nil, "running task \(runID)/\(task.key.taskID) without a live lease")
                }
            }
            // A backfill's own limit, and the count the scheduler keeps of it.
            var running: [String: Int] = [:]
            for run in h.scheduler.runs.values where run.record.state == .running {
                guard let id = run.record.backfillID else { continue }
                running[id, default: 0] += 1
                #expect(running[id]! <= run.record.backfillMaxActiveRuns, "backfill \(id) over its limit at step \(steps)")
            }
            for (id, count) in running {
                #expect(h.scheduler.backfillRunning.values.compactMap { $0[id] }.first == count, "backfill \(id) miscounted at step \(steps)")
            }
            for callback in h.scheduler.callbacks.values {
                #expect(!callback.instance.state.isFinal, "a finished callback is still held")
                if callback.instance.state == .running {
                    #expect(callback.instance.lease.map { h.scheduler.leases[$0.leaseID] != nil } == true,
                            "running callback \(callback.key) without a live lease")
                }
                #expect(h.scheduler.dags[callback.dagID] != nil, "callback \(callback.key) of a deleted DAG")
            }
        }

        func checkSchedulerMatchesStore() {
            for (runID, run) in h.scheduler.runs {
                #expect(h.store.run(runID)?.state == run.record.state)
                for task in run.tasks.values { #expect(h.store.task(task.key) == task, "task \(task.key) differs after restart") }
            }
            for callback in h.scheduler.callbacks.values {
                #expect(h.store.callbacks(ofRun: callback.key.runID).first { $0.key == callback.key } == callback,
                        "callback \(callback.key) differs after restart")
            }
        }

        func checkFinishedRuns() {
            for dagID in ["alpha", "beta", "gamma"] {
                for run in h.store.runs(ofDAG: dagID) where run.state.isFinal {
                    let states = h.store.tasks(ofRun: run.runID).map(\.state)
                    #expect(states.allSatisfy { $0.isFinal }, "finished run \(run.runID) has unfinished tasks")
                    let bad = states.contains { [.failed, .upstreamFailed, .cancelled].contains($0) }
                    switch run.state {
                    case .success: #expect(!bad, "run \(run.runID) succeeded with failed tasks")
                    case .failed: #expect(bad, "run \(run.runID) failed with no failed task")
                    case .cancelled: #expect(states.contains(.cancelled) || states.isEmpty)
                    default: break
                    }
                }
            }
        }
    }

    @Test func sqliteStoreReadsBackExactlyWhatWasCommitted() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tether-sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = Model(seed: 42)
        let sqlite = try SQLiteSchedulerStore(path: directory.appendingPathComponent("state.db").path, synchronous: .normal)
        model.h.mirror = sqlite
        for round in 0..<6 {
            for _ in 0..<200 { model.step() }
            model.flush()
            let expected = Normalized(try model.h.store.loadSnapshot())
            let actual = Normalized(try sqlite.loadSnapshot())
            #expect(actual.dags == expected.dags, "round \(round)")
            #expect(actual.versions == expected.versions, "round \(round)")
            #expect(actual.runs == expected.runs, "round \(round)")
            #expect(actual.tasks == expected.tasks, "round \(round)")
            #expect(actual.attempts == expected.attempts, "round \(round)")
            #expect(actual.sequences == expected.sequences, "round \(round)")
            #expect(actual.callbacks == expected.callbacks, "round \(round)")
            #expect(!expected.tasks.isEmpty || round == 0)
        }
        sqlite.close()
    }

    /// A snapshot with its arrays in a fixed order, for comparison.
    struct Normalized: Equatable {
        var dags: [DAGRecord], versions: [DAGVersionRecord], runs: [RunRecord], tasks: [TaskInstanceRecord]
        var attempts: [AttemptRecord], sequences: [String: UInt64], callbacks: [CallbackRecord]

        init(_ s: SchedulerSnapshot) {
            dags = s.dags.sorted { $0.dagID < $1.dagID }
            versions = s.versions.sorted { ($0.dagID, $0.version) < ($1.dagID, $1.version) }
            runs = s.activeRuns.sorted { $0.runID < $1.runID }
            tasks = s.tasks.sorted { $0.key < $1.key }
            attempts = s.liveAttempts.filter { a in s.tasks.contains { $0.lease?.leaseID == a.leaseID } }.sorted { $0.leaseID < $1.leaseID }
            sequences = s.agentSequences
            callbacks = s.callbacks.sorted { $0.key < $1.key }
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomHistoriesKeepTheInvariants(_ seed: UInt64) {
        let model = Model(seed: seed)
        for _ in 0..<1_500 { model.step() }
        model.flush()
        model.checkFinishedRuns()
        // Let everything finish: agents connect, heartbeat and succeed whatever they hold.
        for _ in 0..<400 {
            for i in model.agents.indices where !model.agents[i].connected {
                model.agents[i].connected = true
                model.agents[i].session += 1
                _ = model.h.scheduler.agentConnected(AgentRegistration(agentID: model.agents[i].id, queues: ["default", "gpu"],
                                                                        entrypoints: ["work"], slots: 4, session: model.agents[i].session))
                model.agents[i].held = [:]
            }
            model.flush()
            for i in model.agents.indices {
                for grant in model.agents[i].held.values.sorted(by: { $0.leaseID < $1.leaseID }) {
                    model.send(i, TaskReport(leaseID: grant.leaseID, epoch: grant.epoch, kind: .finished(.succeeded, AttemptUsage(), message: "")))
                }
                model.h.scheduler.heartbeat(agentID: model.agents[i].id, activeLeaseIDs: model.agents[i].held.keys.sorted())
            }
            model.h.clock.advance(milliseconds: 5_000)
            model.h.scheduler.tick()
            model.flush()
            model.checkInvariants()
            if model.h.scheduler.runs.isEmpty && model.h.scheduler.callbacks.isEmpty { break }
        }
        #expect(model.h.scheduler.runs.isEmpty, "runs still active: \(model.h.scheduler.runs.keys.sorted())")
        #expect(model.h.scheduler.callbacks.isEmpty, "callbacks unfinished: \(model.h.scheduler.callbacks.keys.sorted())")
        model.checkFinishedRuns()
        #expect(model.steps == 1_500)
        #expect(model.clearedTasks > 0, "the run exercised no clear")
        #expect(model.mostPoolSlotsHeld == 3, "the api pool (3 slots) never filled")
        #expect(model.backfilledRuns > 0, "the run exercised no backfill")
        let callbacks = ["alpha", "beta", "gamma"].flatMap { model.h.store.runs(ofDAG: $0) }.flatMap { model.h.store.callbacks(ofRun: $0.runID) }
        #expect(!callbacks.isEmpty && callbacks.allSatisfy { $0.instance.state.isFinal }, "no callback ran, or one did not finish")
    }
}
