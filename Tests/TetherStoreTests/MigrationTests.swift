import Testing
import TetherStore
import TetherTestSupport

@Suite struct MigrationTests {
    static let migrations = [
        SQLiteMigration(version: 1, name: "create runs", sql: "CREATE TABLE runs(id INTEGER PRIMARY KEY)"),
        SQLiteMigration(version: 2, name: "add state", sql: "ALTER TABLE runs ADD COLUMN state TEXT"),
    ]

    @Test func migrationsAreAppliedOnceInOrderAndRecorded() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        #expect(try database.migrate(Self.migrations) == [1, 2])
        var recorded: [[SQLiteValue]] = []
        try database.query("SELECT version, name, applied_at_ms > 1600000000000 FROM schema_migrations ORDER BY version") {
            recorded.append([$0[0], $0[1], $0[2]])
        }
        #expect(recorded == [[1, "create runs", 1], [2, "add state", 1]])
        try database.run("INSERT INTO runs(state) VALUES ('queued')")   // both applied
        #expect(try database.schemaVersion() == 2)
    }

    @Test func rerunningMigrationsIsANoOp() throws {
        let scratch = try ScratchDirectory()
        try scratch.open().migrate(Self.migrations)
        let database = try scratch.open()
        #expect(try database.migrate(Self.migrations) == [])
        #expect(try database.scalar("SELECT count(*) FROM schema_migrations") == 2)
    }

    @Test func laterMigrationsApplyToADatabaseOnAnEarlierVersion() throws {
        let scratch = try ScratchDirectory()
        try scratch.open().migrate(Array(Self.migrations.prefix(1)))
        #expect(try scratch.open().migrate(Self.migrations) == [2])
    }

    @Test func databaseNewerThanTheCodeIsRefusedBeforeAnythingRuns() throws {
        let scratch = try ScratchDirectory()
        try scratch.open().migrate(Self.migrations)
        let database = try scratch.open()
        let older = [Self.migrations[0]]
        let error = try #require(throws: SQLiteMigrationError.self) { try database.migrate(older) }
        guard case .databaseNewerThanCode(_, let databaseVersion, let newestKnown) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(databaseVersion == 2 && newestKnown == 1)
        #expect(error.description.contains("schema version 2"))
    }

    @Test func failingMigrationRollsBackAloneAndIsNotRecorded() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        let broken = Self.migrations + [
            SQLiteMigration(version: 3, name: "broken", sql: "CREATE TABLE half(x); ALTER TABLE nowhere ADD y"),
        ]
        #expect(throws: SQLiteError.self) { try database.migrate(broken) }
        #expect(try database.schemaVersion() == 2)
        #expect(try database.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'half'") == 0)
    }

    @Test func migrationsOutOfOrderAreRefused() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        #expect(throws: SQLiteMigrationError.self) { try database.migrate(Self.migrations.reversed()) }
    }
}
