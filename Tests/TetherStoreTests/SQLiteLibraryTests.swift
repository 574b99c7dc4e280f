import Testing
import TetherStore

@Suite struct SQLiteLibraryTests {
    @Test func linkedSQLiteIsNewEnoughForWALAndUpsert() throws {
        let parts = SQLiteLibrary.version.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count >= 2)
        // 3.35 brought RETURNING; Debian 12 ships 3.40.
        #expect(parts[0] == 3 && parts[1] >= 35, "SQLite \(SQLiteLibrary.version)")
    }
}
