import Foundation
import Synchronization
import Testing
import TetherStore
import TetherTestSupport

@Suite struct GroupCommitWriterTests {
    struct Refusal: Error {}

    /// Holds the writer thread inside a change until released, so that everything
    /// submitted meanwhile is queued for the next batch: batching without timing.
    final class WriterGate: Sendable {
        private let entered = DispatchSemaphore(value: 0)
        private let released = DispatchSemaphore(value: 0)

        var change: GroupCommitWriter.Change {
            { [self] _ in
                entered.signal()
                released.wait()
            }
        }

        /// Submits the holding change and waits until the writer is inside it.
        func hold(_ writer: GroupCommitWriter, _ outcomes: Outcomes) throws {
            writer.submit(change, completion: outcomes.completion(-1))
            try #require(entered.wait(timeout: .now() + 60) == .success, "the writer never ran the gate")
        }

        func release() { released.signal() }
    }

    /// Each change's outcome by id, and a wait for a number of them.
    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Int: Result<Void, any Error>] = [:]
        private let arrived = DispatchSemaphore(value: 0)

        func completion(_ id: Int) -> GroupCommitWriter.Completion {
            { [self] result in
                lock.withLock { results[id] = result }
                arrived.signal()
            }
        }

        func wait(for count: Int) throws {
            for _ in 0..<count {
                try #require(arrived.wait(timeout: .now() + 60) == .success, "a completion never came")
            }
        }

        subscript(id: Int) -> Result<Void, any Error>? { lock.withLock { results[id] } }
        var count: Int { lock.withLock { results.count } }
        var failures: Int { lock.withLock { results.values.filter { if case .failure = $0 { true } else { false } }.count } }
    }

    private func makeWriter(_ scratch: ScratchDirectory, maxBatchSize: Int = 1024) throws -> GroupCommitWriter {
        let schema = SQLiteMigration(version: 1, name: "t", sql: "CREATE TABLE t(id INTEGER PRIMARY KEY)")
        return try GroupCommitWriter(.init(path: scratch.path()), migrations: [schema], maxBatchSize: maxBatchSize)
    }

    private static func insert(_ id: Int) -> GroupCommitWriter.Change {
        { database in try database.run("INSERT INTO t(id) VALUES (?)", [SQLiteValue(id)]) }
    }

    private func rowCount(_ scratch: ScratchDirectory) throws -> Int64? {
        try scratch.open().scalar("SELECT count(*) FROM t").int64
    }

    @Test func changesSubmittedConcurrentlyDuringACommitShareTheNextOne() throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        let gate = WriterGate(), outcomes = Outcomes()
        try gate.hold(writer, outcomes)
        DispatchQueue.concurrentPerform(iterations: 1000) { id in
            writer.submit(Self.insert(id), completion: outcomes.completion(id))
        }
        gate.release()
        try outcomes.wait(for: 1001)
        let stats = writer.stats
        #expect(stats.batches == 2, "\(stats)")
        #expect(stats.largestBatch == 1000, "\(stats)")
        #expect(stats.changes == 1001)
        #expect(stats.description.contains("max 1000"))
        #expect(outcomes.failures == 0)
        #expect(try rowCount(scratch) == 1000)
    }

    @Test func batchesNeverExceedMaxBatchSize() throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch, maxBatchSize: 100)
        let gate = WriterGate(), outcomes = Outcomes()
        try gate.hold(writer, outcomes)
        for id in 0..<250 { writer.submit(Self.insert(id), completion: outcomes.completion(id)) }
        gate.release()
        try outcomes.wait(for: 251)
        let stats = writer.stats
        #expect(stats.batches == 4, "\(stats)")   // the gate, 100, 100, 50
        #expect(stats.largestBatch == 100)
        #expect(try rowCount(scratch) == 250)
    }

    @Test func throwingChangeFailsAloneWhileItsBatchMatesCommit() throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        let gate = WriterGate(), outcomes = Outcomes()
        try gate.hold(writer, outcomes)
        writer.submit(Self.insert(1), completion: outcomes.completion(1))
        writer.submit({ database in
            try database.run("INSERT INTO t(id) VALUES (2)")
            throw Refusal()
        }, completion: outcomes.completion(2))
        writer.submit(Self.insert(1), completion: outcomes.completion(3))   // duplicate key
        writer.submit(Self.insert(4), completion: outcomes.completion(4))
        gate.release()
        try outcomes.wait(for: 5)

        #expect(writer.stats.largestBatch == 4)
        #expect(throws: Never.self) { try outcomes[1]?.get() }
        #expect(throws: Refusal.self) { try outcomes[2]?.get() }
        let duplicate = try #require(throws: SQLiteError.self) { try outcomes[3]?.get() }
        #expect(duplicate.code.primary == .constraint)
        #expect(throws: Never.self) { try outcomes[4]?.get() }
        var ids: [Int64] = []
        try scratch.open().query("SELECT id FROM t ORDER BY id") { ids.append($0[0].int64 ?? -1) }
        #expect(ids == [1, 4])
    }

    @Test func batchObserverHearsEachBatchsSizeDurationAndOutcomeBeforeItsCompletions() throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        let seen = Mutex<[GroupCommitBatch]>([])
        writer.observeBatches { batch in seen.withLock { $0.append(batch) } }
        let gate = WriterGate(), outcomes = Outcomes()
        try gate.hold(writer, outcomes)
        let heardBeforeCompletion = Mutex<Bool?>(nil)
        for id in 0..<10 {
            writer.submit(Self.insert(id)) { result in
                if id == 0 { heardBeforeCompletion.withLock { $0 = seen.withLock { $0.count } == 2 } }
                outcomes.completion(id)(result)
            }
        }
        gate.release()
        try outcomes.wait(for: 11)
        let batches = seen.withLock { $0 }
        #expect(batches.map(\.size) == [1, 10])   // the gate alone, then everything queued behind it
        #expect(batches.allSatisfy { $0.committed && $0.duration > .zero })
        #expect(heardBeforeCompletion.withLock { $0 } == true)
    }

    @Test func failedCommitFailsEveryChangeInItsBatch() throws {
        let scratch = try ScratchDirectory()
        let schema = SQLiteMigration(version: 1, name: "deferred foreign key", sql: """
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE child(parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
            """)
        let writer = try GroupCommitWriter(.init(path: scratch.path()), migrations: [schema])
        let gate = WriterGate(), outcomes = Outcomes()
        try gate.hold(writer, outcomes)
        writer.submit({ try $0.run("INSERT INTO parent VALUES (1)") }, completion: outcomes.completion(1))
        // Passes its own savepoint; the deferred foreign key fails the batch's COMMIT.
        writer.submit({ try $0.run("INSERT INTO child VALUES (99)") }, completion: outcomes.completion(2))
        writer.submit({ try $0.run("INSERT INTO parent VALUES (3)") }, completion: outcomes.completion(3))
        gate.release()
        try outcomes.wait(for: 4)

        for id in 1...3 {
            let error = try #require(throws: SQLiteError.self) { try outcomes[id]?.get() }
            #expect(error.sql == "COMMIT" && error.code.primary == .constraint, "\(error)")
        }
        #expect(writer.stats.failedBatches == 1)
        #expect(try scratch.open().scalar("SELECT count(*) FROM parent") == 0)
        // The writer goes on with the next batch.
        writer.submit({ try $0.run("INSERT INTO parent VALUES (5)") }, completion: outcomes.completion(5))
        try outcomes.wait(for: 1)
        #expect(throws: Never.self) { try outcomes[5]?.get() }
    }

    @Test func completionRunsOnlyAfterTheCommitIsVisibleToAnotherConnection() throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        let path = scratch.path()
        let seenInsideChange = Outcomes(), seenInCompletion = Outcomes()
        @Sendable func visible(_ id: Int) throws -> Bool {
            let reader = try SQLiteDatabase(.init(path: path, access: .readOnly))
            return try reader.scalar("SELECT count(*) FROM t WHERE id = ?", [SQLiteValue(id)]) == 1
        }
        for id in 0..<20 {
            writer.submit({ database in
                try database.run("INSERT INTO t(id) VALUES (?)", [SQLiteValue(id)])
                // Not committed yet: another connection must not see it.
                seenInsideChange.completion(id)(try visible(id) ? .success(()) : .failure(Refusal()))
            }, completion: { result in
                seenInCompletion.completion(id)(Result { try result.get(); guard try visible(id) else { throw Refusal() } })
            })
        }
        try seenInCompletion.wait(for: 20)
        #expect(seenInCompletion.failures == 0)
        #expect(seenInsideChange.count == 20 && seenInsideChange.failures == 20)
    }

    @Test func asyncSubmitReturnsAfterCommitAndThrowsTheChangesOwnError() async throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        try await writer.submit(Self.insert(7))
        #expect(try rowCount(scratch) == 1)
        await #expect(throws: Refusal.self) { try await writer.submit { _ in throw Refusal() } }
        writer.close()
    }

    @Test func closeCommitsEveryQueuedChangeBeforeReturning() throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        let gate = WriterGate(), outcomes = Outcomes()
        try gate.hold(writer, outcomes)
        for id in 0..<50 { writer.submit(Self.insert(id), completion: outcomes.completion(id)) }
        gate.release()
        writer.close()
        // No waiting: close returned, so every completion has run.
        #expect(outcomes.count == 51)
        #expect(outcomes.failures == 0)
        #expect(try rowCount(scratch) == 50)
    }

    @Test func submitAfterCloseFailsWithClosedError() async throws {
        let scratch = try ScratchDirectory()
        let writer = try makeWriter(scratch)
        writer.close()
        writer.close()   // idempotent
        let outcomes = Outcomes()
        let refused = DispatchSemaphore(value: 0)
        let completion = outcomes.completion(1)
        writer.submit(Self.insert(1)) { result in
            completion(result)
            refused.signal()
        }
        // Refused at once, but never inside the caller's frame (which may hold a lock).
        refused.wait()
        let error = try #require(throws: GroupCommitWriterError.self) { try outcomes[1]?.get() }
        #expect(error.description.contains("closed"))
        await #expect(throws: GroupCommitWriterError.self) { try await writer.submit(Self.insert(2)) }
        #expect(try rowCount(scratch) == 0)
    }
}

@Suite struct WALCheckpointerTests {
    /// Writes about 8 MiB through the WAL; returns the main database file's size once
    /// it reaches 4 MiB, or after `wait`.
    private func mainFileSize(checkpointPages: Int32, wait: Duration) async throws -> Int {
        let scratch = try ScratchDirectory()
        let writer = try GroupCommitWriter(.init(path: scratch.path()), migrations: [
            SQLiteMigration(version: 1, name: "t", sql: "CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)"),
        ], walCheckpointPages: checkpointPages)
        defer { writer.close() }
        // About 8 MiB through the WAL: far past the 1,000-page threshold.
        for batch in 0..<20 {
            try await writer.submit { database in
                for i in 0..<100 {
                    try database.run("INSERT INTO t VALUES (?, ?)", [.integer(Int64(batch * 100 + i)), .blob([UInt8](repeating: 7, count: 4096))])
                }
            }
        }
        #expect(try scratch.open().scalar("SELECT count(*) FROM t").int64 == 2000)
        let deadline = ContinuousClock.now + wait
        var size = 0
        repeat {
            size = (try FileManager.default.attributesOfItem(atPath: scratch.path())[.size] as? Int) ?? 0
            if size >= 4 << 20 { break }
            try await Task.sleep(for: .milliseconds(20))
        } while ContinuousClock.now < deadline
        return size
    }

    @Test func backgroundCheckpointerCopiesTheWALIntoTheDatabaseFile() async throws {
        let size = try await mainFileSize(checkpointPages: WALCheckpointer.defaultThresholdPages, wait: .seconds(30))
        #expect(size >= 4 << 20, "database file is \(size) bytes")
    }

    @Test func commitsNeverCheckpointThemselves() async throws {
        // With the checkpointer's threshold out of reach, nothing else may checkpoint:
        // SQLite's automatic checkpoint (which runs inside a COMMIT) must be off.
        let size = try await mainFileSize(checkpointPages: .max, wait: .milliseconds(200))
        #expect(size < 1 << 20, "database file is \(size) bytes")
    }
}
