import Foundation
import Synchronization
import Testing
import TetherScheduler

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
        // Each delivered grant must already be readable from the database.
        let seenInStore = Mutex<[Bool]>([])
        let service = try SchedulerService(store: store, clock: ManualClock()) { effects in
            for case .grant(let grant) in effects {
                let stored = (try? store.attempts(of: grant.key))?.contains { $0.leaseID == grant.leaseID } ?? false
                seenInStore.withLock { $0.append(stored) }
            }
        }
        _ = try await service.perform { try $0.apply(dag("d", (0..<50).map { "t\($0)" }) { $0.entrypoint = "work" }) }
        _ = try await service.perform { $0.agentConnected(AgentRegistration(agentID: "a", queues: ["default"], entrypoints: ["work"], slots: 50)) }
        let run = try await service.perform { try $0.trigger(dagID: "d") }
        #expect(try store.run(run.runID)?.state == .running)
        #expect(try store.tasks(ofRun: run.runID).count == 50)
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
}
