import Foundation
import Testing
@testable import TetherSchedulerSQLite
import TetherScheduler
import TetherStore

/// A run's data interval, idempotency key and note in SQLite, and runs written before
/// schema 3 had them.
@Suite struct RunRecordStoreTests {
    private static func path() throws -> (String, URL) {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tether-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return (url.appendingPathComponent("state.db").path, url)
    }

    private static func commit(_ store: SQLiteSchedulerStore, _ changes: [SchedulerChange]) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            store.commit(changes) { done.resume(with: $0) }
        }
    }

    @Test func runKeepsItsDataIntervalKeyAndNoteAndTheKeyIsInTheSnapshot() async throws {
        let (path, directory) = try Self.path()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteSchedulerStore(path: path)
        defer { store.close() }
        let at = Instant(millisecondsSinceEpoch: 1_767_225_600_000)
        var run = RunRecord(runID: "d-1", dagID: "d", version: 1, number: 1, state: .success, trigger: .manual,
                            logicalDate: at, dataInterval: DataInterval(start: at.adding(milliseconds: -86_400_000), end: at),
                            params: [:], idempotencyKey: "k1", note: "first", createdAt: at)
        try await Self.commit(store, [.run(run)])
        run.note += "\ncancelled: why"  // the upsert keeps the note up to date
        try await Self.commit(store, [.run(run)])
        #expect(try await store.run("d-1") == run)
        #expect(try store.loadSnapshot().idempotencyKeys == [IdempotencyKey(dagID: "d", key: "k1"): "d-1"])
    }

    @Test func runWrittenUnderSchema2ReadsAsSpanningItsLogicalDateWithNoKeyOrNote() async throws {
        let (path, directory) = try Self.path()
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let old = try SQLiteDatabase(.init(path: path))
            _ = try old.migrate(Array(SQLiteSchedulerStore.migrations.prefix(2)))
            try old.run("""
                INSERT INTO runs VALUES ('d-1', 'd', 1, 1, 'success', 'schedule', 1767225600000, '{}', 1767225600001, NULL, NULL)
                """)
        }
        let store = try SQLiteSchedulerStore(path: path)
        defer { store.close() }
        let run = try #require(try await store.run("d-1"))
        let at = Instant(millisecondsSinceEpoch: 1_767_225_600_000)
        #expect(run.dataInterval == DataInterval(start: at, end: at))
        #expect(run.idempotencyKey == nil && run.note.isEmpty)
    }

    @Test func runWrittenUnderSchema3ReadsWithNoDeadlineCallbacksOrBackfillLimit() async throws {
        let (path, directory) = try Self.path()
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let old = try SQLiteDatabase(.init(path: path))
            _ = try old.migrate(Array(SQLiteSchedulerStore.migrations.prefix(3)))
            try old.run("""
                INSERT INTO runs (run_id, dag_id, version, number, state, trigger, logical_date_ms, params_json, created_at_ms)
                VALUES ('d-1', 'd', 1, 1, 'running', 'backfill', 1767225600000, '{}', 1767225600001)
                """)
        }
        let store = try SQLiteSchedulerStore(path: path)
        defer { store.close() }
        let run = try #require(try await store.run("d-1"))
        #expect(run.deadlineAt == nil && run.deadlineMissedAt == nil && run.callbackCount == 0)
        #expect(run.backfillID == nil && run.backfillMaxActiveRuns == 0)
        #expect(try store.loadSnapshot().callbacks.isEmpty)
        #expect(try await store.callbacks(ofRun: "d-1").isEmpty)
    }
}
