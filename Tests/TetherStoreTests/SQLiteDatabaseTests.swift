import Foundation
import Testing
import TetherStore
import TetherTestSupport

@Suite struct SQLiteDatabaseTests {
    @Test func badStatementThrowsErrorCarryingTheSQLAndCode() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        let sql = "SELEC 1 FROM nowhere"
        let error = try #require(throws: SQLiteError.self) { try database.run(sql) }
        #expect(error.code == .error)
        #expect(error.sql == sql)
        #expect(error.operation == "prepare")
        #expect(error.message.contains("syntax error"))
        #expect(error.description.contains(sql) && error.description.contains("SQLITE_ERROR"))
    }

    @Test func constraintViolationThrowsConstraintCodeWithSQLAndArguments() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        let insert = "INSERT INTO t(name) VALUES (?)"
        try database.run(insert, ["alpha"])
        let error = try #require(throws: SQLiteError.self) { try database.run(insert, ["alpha"]) }
        #expect(error.code.primary == .constraint)
        #expect(error.code != .constraint, "extended code expected, got \(error.code)")   // SQLITE_CONSTRAINT_UNIQUE
        let matchesPrimary = if case .constraint = error.code { true } else { false }
        #expect(matchesPrimary)
        #expect(error.sql == insert)
        #expect(error.arguments == ["alpha"])
        #expect(error.message.contains("UNIQUE constraint failed: t.name"))
        #expect(error.description.contains("with ['alpha']"), "\(error)")
    }

    @Test func failingStatementInAScriptIsNamedInTheError() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        let error = try #require(throws: SQLiteError.self) {
            try database.execute("CREATE TABLE a(x); INSERT INTO missing VALUES (1); CREATE TABLE b(x)")
        }
        #expect(error.sql?.contains("INSERT INTO missing") == true)
        #expect(try database.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'a'") == 1)
        #expect(try database.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'b'") == 0)
    }

    @Test func everyValueKindRoundTripsThroughBindingAndColumns() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE v(x)")
        let values: [SQLiteValue] = [
            nil, 42, .integer(.min), 2.5, "", "héllo\u{0}wörld", .blob([]), .blob([0, 1, 255]), true,
        ]
        for value in values { try database.run("INSERT INTO v(x) VALUES (?)", [value]) }
        var read: [SQLiteValue] = []
        try database.query("SELECT x FROM v ORDER BY rowid") { row in read.append(row[0]) }
        #expect(read == values.map { $0 == true ? 1 : $0 })
    }

    @Test func runReportsChangesAndLastInsertRowID() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER)")
        let first = try database.run("INSERT INTO t(n) VALUES (1), (2), (3)")
        #expect(first.count == 3 && first.lastInsertRowID == 3)
        let update = try database.run("UPDATE t SET n = n + 1 WHERE n >= ?", [2])
        #expect(update.count == 2)
    }

    @Test func walJournalModeSynchronousAndForeignKeysAreInEffect() throws {
        let scratch = try ScratchDirectory()
        let full = try scratch.open("full.db", synchronous: .full)
        #expect(try full.scalar("PRAGMA journal_mode") == "wal")
        #expect(try full.scalar("PRAGMA synchronous") == 2)   // FULL
        #expect(try full.scalar("PRAGMA foreign_keys") == 1)
        #expect(try full.scalar("PRAGMA busy_timeout") == 5000)
        let normal = try scratch.open("normal.db", synchronous: .normal)
        #expect(try normal.scalar("PRAGMA synchronous") == 1)  // NORMAL
    }

    @Test func readOnlyConnectionRefusesWritesWithReadOnlyCode() throws {
        let scratch = try ScratchDirectory()
        try scratch.open().execute("CREATE TABLE t(x)")
        let reader = try SQLiteDatabase(.init(path: scratch.path(), access: .readOnly))
        let error = try #require(throws: SQLiteError.self) { try reader.run("INSERT INTO t VALUES (1)") }
        #expect(error.code.primary == .readOnly)
    }

    @Test func openingAMissingFileReadOnlyThrowsCantOpenNamingThePath() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("absent.db")
        let error = try #require(throws: SQLiteError.self) { try SQLiteDatabase(.init(path: path, access: .readOnly)) }
        #expect(error.code.primary == .cantOpen)
        #expect(error.operation.contains(path))
    }

    @Test func cachedStatementIsCompiledOnceAndReused() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(x)")
        let before = database.compiledStatementCount
        for value in 0..<100 { try database.run("INSERT INTO t(x) VALUES (?)", [SQLiteValue(value)]) }
        #expect(database.compiledStatementCount == before + 1)
        #expect(try database.scalar("SELECT count(*) FROM t") == 100)
    }

    @Test func statementRunInsideItsOwnRowCallbackGetsAFreshCompile() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)")
        let sql = "SELECT x FROM t ORDER BY x"
        var pairs: [[Int64]] = []
        try database.query(sql) { outer in
            let x = outer[0].int64 ?? 0
            try database.query(sql) { inner in pairs.append([x, inner[0].int64 ?? 0]) }
        }
        #expect(pairs == [[1, 1], [1, 2], [2, 1], [2, 2]])
    }

    @Test func wrongArgumentCountIsARangeError() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        let error = try #require(throws: SQLiteError.self) { try database.scalar("SELECT ?, ?", [1]) }
        #expect(error.code == .range)
        // The statement was reset: it runs again with the right arguments.
        #expect(try database.scalar("SELECT ?, ?", [1, 2]) == 1)
    }

    @Test func firstRowAndScalarReturnNothingForAnEmptyResult() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(x, y)")
        #expect(try database.scalar("SELECT x FROM t") == .null)
        #expect(try database.firstRow("SELECT x, y FROM t") { $0.count } == nil)
        try database.run("INSERT INTO t VALUES (?, ?)", ["a", 2.0])
        #expect(try database.firstRow("SELECT x, y FROM t") { [$0.columnName(1), $0[0].text] } == ["y", "a"])
    }

    @Test func integrityCheckOfASoundDatabaseIsOK() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1), (2)")
        #expect(try database.integrityCheck() == ["ok"])
    }

    @Test func integrityCheckReportsADamagedIndex() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path()
        do {
            let database = try scratch.open()
            try database.execute("""
                PRAGMA journal_mode = DELETE;
                CREATE TABLE t(x TEXT); CREATE INDEX t_x ON t(x);
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                INSERT INTO t SELECT printf('row-%06d', i) FROM n;
                """)
        }
        // Rewrite one stored value behind SQLite's back, so table and index disagree.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let range = try #require(bytes.firstRange(of: Data("row-001000".utf8)))
        bytes.replaceSubrange(range, with: Data("row-00100X".utf8))
        try bytes.write(to: URL(fileURLWithPath: path))
        let database = try scratch.open()
        let lines = try database.integrityCheck()
        #expect(lines != ["ok"])
    }
}
