import Foundation
import Synchronization
import Testing
import TetherStore
import TetherTestSupport

@Suite struct SQLiteReadPoolTests {
    @Test func aReadRunsOffTheCallersTaskAndSeesWhatWasCommitted() async throws {
        let scratch = try ScratchDirectory()
        let writer = try scratch.open()
        try writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)")
        try writer.run("INSERT INTO t(name) VALUES (?)", ["first"])
        let pool = SQLiteReadPool(path: scratch.path(), connections: 2)
        #expect(withUnsafeCurrentTask { $0 != nil })
        for _ in 0..<4 {  // every lane, twice
            // The body runs on the pool's own queue, outside any Swift task: not on the
            // caller's executor (an event loop, for a gRPC handler).
            let (name, inATask) = try await pool.read { db in
                (try db.scalar("SELECT name FROM t WHERE id = 1").text, withUnsafeCurrentTask { $0 != nil })
            }
            #expect(name == "first")
            #expect(!inATask)
        }
        try writer.run("UPDATE t SET name = ? WHERE id = 1", ["second"])
        #expect(try await pool.read { try $0.scalar("SELECT name FROM t WHERE id = 1").text } == "second")
    }

    @Test func connectionsAreKeptAndAreReadOnly() async throws {
        let scratch = try ScratchDirectory()
        let writer = try scratch.open()
        try writer.execute("CREATE TABLE t(x)")
        let pool = SQLiteReadPool(path: scratch.path(), connections: 1)
        let first = try await pool.read { ObjectIdentifier($0) }
        let second = try await pool.read { ObjectIdentifier($0) }
        #expect(first == second)
        await #expect(throws: SQLiteError.self) { try await pool.read { try $0.run("INSERT INTO t VALUES (1)") } }
    }

    @Test func aConnectionThatCouldNotOpenIsTriedAgainByTheNextRead() async throws {
        let scratch = try ScratchDirectory()
        let pool = SQLiteReadPool(path: scratch.path(), connections: 1)
        await #expect(throws: SQLiteError.self) { try await pool.read { _ in 0 } }  // no database yet
        let writer = try scratch.open()
        try writer.execute("CREATE TABLE t(x); INSERT INTO t VALUES (7)")
        #expect(try await pool.read { try $0.scalar("SELECT x FROM t").int64 } == 7)
    }

    @Test func readsRunAtOnceUpToTheConnectionCount() async throws {
        let scratch = try ScratchDirectory()
        let writer = try scratch.open()
        try writer.execute("CREATE TABLE t(x)")
        let pool = SQLiteReadPool(path: scratch.path(), connections: 2)
        // Two reads that each wait for the other: they finish only if both run at once.
        final class Counter: Sendable { let value = Atomic<Int>(0) }
        let arrived = Counter()
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    try await pool.read { _ in
                        arrived.value.add(1, ordering: .relaxed)
                        let deadline = ContinuousClock.now + .seconds(10)
                        while arrived.value.load(ordering: .relaxed) < 2 && ContinuousClock.now < deadline { usleep(1_000) }
                        return arrived.value.load(ordering: .relaxed) == 2
                    }
                }
            }
            for try await met in group { #expect(met) }
        }
    }
}
