import Foundation
import Synchronization
import Testing
import TetherScheduler
import TetherSchedulerSQLite
import TetherStore
import TetherTestSupport

@Suite struct SchedulerServiceTests {
    final class TemporaryDirectory {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("tether-service-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: url) }
        var database: String { url.appendingPathComponent("state.db").path }
    }

    @Test func callerAndAgentLearnOfAChangeOnlyAfterItIsCommitted() async throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteSchedulerStore(path: directory.database)
        defer { store.close() }
        // Each delivered grant must already be readable from the database (read here on a
        // connection of the test's own: delivery is synchronous, the store's reads are not).
        let seenInStore = Mutex<[Bool]>([])
        let path = directory.database
        let service = try SchedulerService(store: store, clock: ManualClock()) { effects in
            for case .grant(let grant) in effects {
                let reader = try? SQLiteDatabase(.init(path: path, access: .readOnly))
                let count = try? reader?.scalar("SELECT count(*) FROM task_attempts WHERE lease_id = ?", [.text(grant.leaseID)]).int64
                seenInStore.withLock { $0.append(count == 1) }
            }
        }
        _ = try await service.perform { try $0.apply(dag("d", (0..<50).map { "t\($0)" }) { $0.entrypoint = "work" }) }
        _ = try await service.perform { $0.agentConnected(AgentRegistration(agentID: "a", queues: ["default"], entrypoints: ["work"], slots: 50)) }
        let run = try await service.perform { try $0.trigger(dagID: "d") }
        #expect(try await store.run(run.runID)?.state == .running)
        #expect(try await store.tasks(ofRun: run.runID).count == 50)
        let seen = seenInStore.withLock { $0 }
        #expect(seen.count == 50)
        #expect(seen.allSatisfy { $0 })
    }

    @Test func rejectedCallChangesNothingAndReportsItsError() async throws {
        let service = try SchedulerService(store: InMemorySchedulerStore(), clock: ManualClock()) { _ in }
        await #expect(throws: SchedulerError.unknownDAG("nope")) {
            try await service.perform { try $0.trigger(dagID: "nope") }
        }
    }

    @Test func restartResumesFromTheStore() async throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        var runID = ""
        do {
            let store = try SQLiteSchedulerStore(path: directory.database)
            let service = try SchedulerService(store: store, clock: clock) { _ in }
            _ = try await service.perform { try $0.apply(dag("d", ["a", "b<a"])) }
            runID = try await service.perform { try $0.trigger(dagID: "d") }.runID
            store.close()
        }
        let store = try SQLiteSchedulerStore(path: directory.database)
        defer { store.close() }
        let grants = Mutex<[LeaseGrant]>([])
        let service = try SchedulerService(store: store, clock: clock) { effects in
            for case .grant(let grant) in effects { grants.withLock { $0.append(grant) } }
        }
        #expect(service.read { $0.activeRun(runID)?.state } == .running)
        _ = try await service.perform { $0.agentConnected(AgentRegistration(agentID: "x", queues: ["default"], entrypoints: ["a", "b"], slots: 1)) }
        #expect(grants.withLock { $0.map(\.key.taskID) } == ["a"])
    }

    /// A store whose commits fail, as on a full disk.
    final class FailingStore: SchedulerStore {
        func loadSnapshot() throws -> SchedulerSnapshot { SchedulerSnapshot() }
        func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
            DispatchQueue.global().async { completion(.failure(CocoaError(.fileWriteOutOfSpace))) }
        }
        func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
            DispatchQueue.global().async { completion(.failure(CocoaError(.fileWriteOutOfSpace))) }
        }
    }

    @Test func failedCommitStopsTheServiceInsteadOfDivergingFromDisk() async throws {
        let delivered = Mutex(0)
        let service = try SchedulerService(store: FailingStore(), clock: ManualClock()) { _ in delivered.withLock { $0 += 1 } }
        await #expect(throws: SchedulerServiceError.self) {
            try await service.perform { try $0.apply(dag("d", ["a"])) }
        }
        await #expect(throws: SchedulerServiceError.self) {
            try await service.perform { $0.dag("d") }
        }
        #expect(delivered.withLock { $0 } == 0)
    }

    /// An in-memory store whose writes fail while `full` is set, fencing as the protocol
    /// says: after a failed commit every commit fails until a probe succeeds.
    final class DiskFullStore: SchedulerStore {
        let contents = InMemorySchedulerStore()
        private let condition = Mutex((full: false, fenced: false))
        private let completions = DispatchQueue(label: "disk-full-store")

        var full: Bool {
            get { condition.withLock { $0.full } }
            set { condition.withLock { $0.full = newValue } }
        }

        func loadSnapshot() throws -> SchedulerSnapshot { try contents.loadSnapshot() }

        func commit(_ changes: [SchedulerChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
            let written = condition.withLock { condition -> Bool in
                condition.fenced = condition.fenced || condition.full
                return !condition.fenced
            }
            if written { contents.apply(changes) }
            completions.async { completion(written ? .success(()) : .failure(CocoaError(.fileWriteOutOfSpace))) }
        }

        func probe(completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
            let written = condition.withLock { condition -> Bool in
                if !condition.full { condition.fenced = false }
                return !condition.full
            }
            completions.async { completion(written ? .success(()) : .failure(CocoaError(.fileWriteOutOfSpace))) }
        }
    }

    @Test func afterAFailedCommitTheServiceReloadsFromTheStoreOnceAProbeCommitsAndTellsEachChangeOnce() async throws {
        let store = DiskFullStore()
        let clock = ManualClock()
        let events = Mutex<[SchedulerServiceEvent]>([])
        let grants = Mutex<[LeaseGrant]>([])
        let service = try SchedulerService(store: store, clock: clock, configuration: SchedulerConfiguration(leaseTTLMilliseconds: 10_000),
                                           onEvent: { event in events.withLock { $0.append(event) } }) { effects in
            for case .grant(let grant) in effects { grants.withLock { $0.append(grant) } }
        }
        _ = try await service.perform { try $0.apply(dag("d", ["a"])) }
        let agent = AgentRegistration(agentID: "x", queues: ["default"], entrypoints: ["a"], slots: 1)
        _ = try await service.perform { $0.agentConnected(agent) }
        let first = try await service.perform { try $0.trigger(dagID: "d") }
        let lease = try #require(grants.withLock { $0.first })

        store.full = true
        await #expect(throws: SchedulerServiceError.self) { try await service.perform { try $0.trigger(dagID: "d") } }
        // The one in memory, never written, is not claimed: later calls are refused too.
        await #expect(throws: SchedulerServiceError.self) { try await service.perform { try $0.setPaused("d", true) } }
        #expect(service.hasFailed)
        #expect(await service.recover() == false)
        let whileFull = events.withLock { $0 }
        #expect(whileFull.count == 1)
        if case .storeFailed? = whileFull.first {} else { Issue.record("no storeFailed event: \(whileFull)") }

        store.full = false
        clock.advance(milliseconds: 60_000)  // past the lease's TTL: the reload gives it a new one
        #expect(await service.recover())
        #expect(!service.hasFailed)
        let after = events.withLock { $0 }
        #expect(after.count == 2)
        if case .recovered? = after.last {} else { Issue.record("no recovered event: \(after)") }

        // Memory is the store's again: the failed trigger's run is gone, the acked one stands.
        #expect(service.read { $0.activeRun(first.runID)?.state } == .running)
        #expect(store.contents.runs(ofDAG: "d").map(\.runID) == [first.runID])
        #expect(service.read { $0.isConnected("x") } == false)
        var resuming = agent
        resuming.resumingLeaseIDs = [lease.leaseID]
        let welcome = try await service.perform { $0.agentConnected(resuming) }
        #expect(welcome.confirmedLeaseIDs == [lease.leaseID])
        let second = try await service.perform { try $0.trigger(dagID: "d") }
        #expect(store.contents.runs(ofDAG: "d").map(\.runID) == [first.runID, second.runID])
        #expect(events.withLock { $0.count } == 2)
    }

    @Test(.enabled(if: SmallFilesystem.isAvailable, "mounting a tmpfs needs root: \(SmallFilesystem.unavailableReason ?? "")"))
    func onAFullDiskAFailedCommitFencesTheStoreUntilAProbeCommits() async throws {
        let disk = try SmallFilesystem(bytes: 2 << 20)
        let store = try SQLiteSchedulerStore(path: disk.path("state.db"), synchronous: .normal)
        defer {
            store.close()
            withExtendedLifetime(disk) {}  // unmounted only after the store closed
        }
        func commit(_ changes: [SchedulerChange]) async -> Result<Void, any Error> {
            await withCheckedContinuation { continuation in store.commit(changes) { continuation.resume(returning: $0) } }
        }
        func probe() async -> Result<Void, any Error> {
            await withCheckedContinuation { continuation in store.probe { continuation.resume(returning: $0) } }
        }
        func sequence(_ n: UInt64) -> SchedulerChange { .agentSequence(agentID: "agent-\(n)", sequence: n) }
        try await commit([sequence(1)]).get()

        // Room for a small commit, not for a 1 MiB DAG version.
        try disk.fill(leaving: 128 << 10)
        var big = dag("big", ["a"])
        big.description = String(repeating: "x", count: 1 << 20)
        let version = DAGVersionRecord(dagID: "big", version: 1, contentHash: "h", spec: big, specYAML: "", appliedAt: Instant(millisecondsSinceEpoch: 0))
        // Both submitted, in this order, before the failure is known (two `async let`s would
        // not keep the order: the second could commit first).
        typealias Results = (Result<Void, any Error>, Result<Void, any Error>)
        let (failedResult, behindResult) = await withCheckedContinuation { (both: CheckedContinuation<Results, Never>) in
            let results = Mutex<[Int: Result<Void, any Error>]>([:])
            @Sendable func done(_ index: Int, _ result: Result<Void, any Error>) {
                let all = results.withLock { results -> Results? in
                    results[index] = result
                    return results.count == 2 ? (results[0]!, results[1]!) : nil
                }
                if let all { both.resume(returning: all) }
            }
            store.commit([.dagVersion(version)]) { done(0, $0) }
            store.commit([sequence(2)]) { done(1, $0) }
        }
        guard case .failure(let error) = failedResult else { Issue.record("a 1 MiB commit fit in 128 KiB"); return }
        #expect("\(error)".contains("SQLITE_FULL") && "\(error)".contains("no space left"), "\(error)")
        #expect(throws: (any Error).self) { try behindResult.get() }
        // Fits, but is fenced: it may build on the lost commit.
        guard case .failure(let fenced) = await commit([sequence(3)]) else { Issue.record("a commit after a failed one was written"); return }
        #expect("\(fenced)".contains("earlier commit failed"), "\(fenced)")

        try await probe().get()
        try await commit([sequence(4)]).get()
        let snapshot = try store.loadSnapshot()
        #expect(snapshot.agentSequences == ["agent-1": 1, "agent-4": 4])
        #expect(snapshot.versions.isEmpty)
    }
}
