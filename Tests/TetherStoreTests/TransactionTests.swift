import Testing
import TetherStore
import TetherTestSupport

@Suite struct TransactionTests {
    struct Refusal: Error {}

    private func table() throws -> (ScratchDirectory, SQLiteDatabase) {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(x INTEGER)")
        return (scratch, database)
    }

    @Test func transactionCommitsWhenItsBodyReturns() throws {
        let (_, database) = try table()
        let value = try database.transaction(.immediate) { database in
            try database.run("INSERT INTO t VALUES (1)")
            #expect(database.isInTransaction)
            return "done"
        }
        #expect(value == "done")
        #expect(!database.isInTransaction)
        #expect(try database.scalar("SELECT count(*) FROM t") == 1)
    }

    @Test func transactionRollsBackAndRethrowsWhenItsBodyThrows() throws {
        let (_, database) = try table()
        #expect(throws: Refusal.self) {
            try database.transaction { database in
                try database.run("INSERT INTO t VALUES (1)")
                throw Refusal()
            }
        }
        #expect(!database.isInTransaction)
        #expect(try database.scalar("SELECT count(*) FROM t") == 0)
    }

    @Test func nestedTransactionRollsBackOnlyItsOwnSavepoint() throws {
        let (_, database) = try table()
        try database.transaction { database in
            try database.run("INSERT INTO t VALUES (1)")
            #expect(throws: Refusal.self) {
                try database.transaction { database in
                    try database.run("INSERT INTO t VALUES (2)")
                    throw Refusal()
                }
            }
            try database.transaction { database in
                try database.run("INSERT INTO t VALUES (3)")
                try database.transaction { database in try database.run("INSERT INTO t VALUES (4)") }
            }
        }
        var rows: [Int64] = []
        try database.query("SELECT x FROM t ORDER BY x") { rows.append($0[0].int64 ?? -1) }
        #expect(rows == [1, 3, 4])
    }

    @Test func failedCommitThrowsAndLeavesNothingApplied() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("""
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE child(parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
            """)
        // A deferred foreign key is checked only at COMMIT.
        let error = try #require(throws: SQLiteError.self) {
            try database.transaction { database in
                try database.run("INSERT INTO parent VALUES (1)")
                try database.run("INSERT INTO child VALUES (2)")
            }
        }
        #expect(error.code.primary == .constraint)
        #expect(error.sql == "COMMIT")
        #expect(!database.isInTransaction)
        #expect(try database.scalar("SELECT count(*) FROM parent") == 0)
    }
}
