extension SQLiteDatabase {
    /// How a top-level transaction takes its locks (`BEGIN DEFERRED|IMMEDIATE|EXCLUSIVE`).
    public enum TransactionKind: String, Sendable {
        /// Locks on first read or write.
        case deferred
        /// Takes the write lock at BEGIN, so it cannot fail with `.busy` half-way.
        case immediate
        case exclusive
    }

    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws
    /// (and rethrows its error). Inside an open transaction it nests as a SAVEPOINT
    /// (`kind` is then ignored): a throw rolls back only the nested part.
    ///
    /// Throws what `body` throws, or the `SQLiteError` of BEGIN, COMMIT or RELEASE; a
    /// failed COMMIT leaves nothing applied. If rolling back fails, its `SQLiteError`
    /// is thrown instead, since the transaction's state is then unknown.
    @discardableResult
    public func transaction<T>(_ kind: TransactionKind = .deferred, _ body: (SQLiteDatabase) throws -> T) throws -> T {
        if isInTransaction { return try savepoint(body) }
        try run("BEGIN \(kind.rawValue.uppercased())")
        let value: T
        do {
            value = try body(self)
        } catch {
            try rollBack("ROLLBACK", after: error)
            throw error
        }
        do {
            try run("COMMIT")
        } catch {
            // COMMIT can fail and leave the transaction open (e.g. `.busy`); end it so
            // nothing of it is applied later by accident.
            try rollBack("ROLLBACK", after: error)
            throw error
        }
        return value
    }

    private func savepoint<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T {
        let name = pushSavepoint()
        defer { popSavepoint() }
        try run("SAVEPOINT \(name)")
        let value: T
        do {
            value = try body(self)
        } catch {
            try rollBack("ROLLBACK TO \(name)", after: error)
            try run("RELEASE \(name)")
            throw error
        }
        try run("RELEASE \(name)")
        return value
    }

    /// Runs `statement` (a ROLLBACK) unless SQLite already ended the transaction
    /// itself, as it does on some errors (`.full`, `.ioError`, `.noMemory`).
    func rollBack(_ statement: String, after error: any Error) throws(SQLiteError) {
        guard isInTransaction else { return }
        do {
            try run(statement)
        } catch let failure {
            throw SQLiteError(code: failure.code, message: "\(failure.message) (rolling back after: \(error))",
                              operation: "rollback", sql: statement)
        }
    }
}
