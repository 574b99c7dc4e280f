/// One numbered schema change. Versions are positive and strictly increasing in the
/// list given to `SQLiteDatabase.migrate`.
public struct SQLiteMigration: Sendable {
    public let version: Int
    public let name: String
    let apply: @Sendable (SQLiteDatabase) throws -> Void

    /// A migration made of a SQL script.
    public init(version: Int, name: String, sql: String) {
        self.init(version: version, name: name) { database in try database.execute(sql) }
    }

    /// A migration made of code; it runs inside the migration's transaction.
    public init(version: Int, name: String, apply: @escaping @Sendable (SQLiteDatabase) throws -> Void) {
        self.version = version
        self.name = name
        self.apply = apply
    }
}

/// Why `migrate` refused to run.
public enum SQLiteMigrationError: Error, CustomStringConvertible {
    /// The database was migrated by newer code than this: running on would mean
    /// writing a schema this code does not know.
    case databaseNewerThanCode(path: String, databaseVersion: Int, newestKnownVersion: Int)
    /// The migrations given are not positive, strictly increasing versions.
    case versionsOutOfOrder([Int])

    public var description: String {
        switch self {
        case .databaseNewerThanCode(let path, let databaseVersion, let newestKnownVersion):
            "database \(path) is at schema version \(databaseVersion), newer than this build knows "
                + "(\(newestKnownVersion)); use a newer tether or restore an older database"
        case .versionsOutOfOrder(let versions):
            "migration versions must be positive and strictly increasing, got \(versions)"
        }
    }
}

extension SQLiteDatabase {
    /// Applies, in order, each migration not yet recorded in `schema_migrations`,
    /// each in its own IMMEDIATE transaction together with its record; a failing
    /// migration rolls back alone and stops the run (earlier ones stay applied).
    /// Running it again is a no-op. Returns the versions applied by this call.
    ///
    /// Throws `SQLiteMigrationError` when the database is newer than `migrations`
    /// or the list is out of order (before applying anything), otherwise what a
    /// migration throws or a `SQLiteError`.
    @discardableResult
    public func migrate(_ migrations: [SQLiteMigration]) throws -> [Int] {
        let versions = migrations.map(\.version)
        guard versions.first.map({ $0 > 0 }) ?? true, zip(versions, versions.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw SQLiteMigrationError.versionsOutOfOrder(versions)
        }
        try execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations(
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)
            """)
        let newestKnown = versions.last ?? 0
        let current = try schemaVersion()
        guard current <= newestKnown else {
            throw SQLiteMigrationError.databaseNewerThanCode(
                path: options.path, databaseVersion: current, newestKnownVersion: newestKnown)
        }
        var applied: [Int] = []
        for migration in migrations {
            try transaction(.immediate) { database in
                // Checked inside the write lock, so two processes migrating at once
                // cannot both apply the same version.
                let recorded = try database.scalar("SELECT 1 FROM schema_migrations WHERE version = ?",
                                                   [SQLiteValue(migration.version)])
                guard recorded.isNull else { return }
                try migration.apply(database)
                try database.run("""
                    INSERT INTO schema_migrations(version, name, applied_at_ms)
                    VALUES (?, ?, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
                    """, [SQLiteValue(migration.version), .text(migration.name)])
                applied.append(migration.version)
            }
        }
        return applied
    }

    /// The highest migration version recorded, 0 for none. Throws `SQLiteError`
    /// (also when `schema_migrations` does not exist).
    public func schemaVersion() throws(SQLiteError) -> Int {
        Int(try scalar("SELECT coalesce(max(version), 0) FROM schema_migrations").int64 ?? 0)
    }
}
