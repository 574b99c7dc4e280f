internal import CSQLite
import Glibc
internal import CLinux

/// Runs WAL checkpoints on a thread and connection of its own, so no commit waits for
/// one. SQLite's automatic checkpoint runs inside the COMMIT that crosses the WAL size
/// threshold — one batch in a few hundred pays for copying the WAL into the database
/// and an extra fsync, which is the tail of commit latency. Here the writer connection's
/// WAL hook (which also turns the automatic checkpoint off) only nudges this thread once
/// the WAL holds `thresholdPages`; the thread then runs a PASSIVE checkpoint, which
/// never blocks the writer.
public final class WALCheckpointer: @unchecked Sendable {
    /// SQLite's own autocheckpoint default.
    public static let defaultThresholdPages: Int32 = 1000

    let thresholdPages: Int32
    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var nudged = false
    private var stopping = false
    private var stopped = false
    private var connection: SQLiteDatabase?

    /// Opens the checkpoint connection and starts the thread.
    /// - Throws: `SQLiteError` from opening, `GroupCommitWriterError.threadStartFailed`.
    init(options: SQLiteDatabase.Options, thresholdPages: Int32 = defaultThresholdPages) throws {
        self.thresholdPages = thresholdPages
        connection = try SQLiteDatabase(options)
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<WALCheckpointer>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<WALCheckpointer>.fromOpaque(context).release()
            throw GroupCommitWriterError.threadStartFailed(errno: result)
        }
        pthread_detach(thread)
    }

    /// Installs the hook on `database` (the writer's connection). Call on the thread that
    /// uses `database`; `self` must outlive the hook (remove it with `detach`).
    func attach(to database: SQLiteDatabase) {
        sqlite3_wal_hook(database.handle, walHook, Unmanaged.passUnretained(self).toOpaque())
    }

    func detach(from database: SQLiteDatabase) {
        sqlite3_wal_hook(database.handle, nil, nil)
    }

    /// From the WAL hook, on the writer thread, after a commit.
    fileprivate func committed(walPages: Int32) {
        guard walPages >= thresholdPages else { return }
        lock.withLock {
            nudged = true
            lock.signal()
        }
    }

    /// Stops the thread and waits for it.
    func stop() {
        lock.withLock {
            stopping = true
            lock.broadcast()
            while !stopped { lock.wait() }
        }
    }

    private func run() {
        tether_name_thread("tether-wal")
        lock.lock()
        while true {
            while !nudged && !stopping { lock.wait() }
            if stopping { break }
            nudged = false
            lock.unlock()
            // Best effort: a checkpoint that cannot finish now (readers) is retried at the
            // next nudge; SQLite keeps the WAL consistent either way.
            _ = try? connection?.execute("PRAGMA wal_checkpoint(PASSIVE)")
            lock.lock()
        }
        connection = nil
        stopped = true
        lock.broadcast()
        lock.unlock()
    }
}

/// SQLite's WAL hook: recovers the checkpointer and hands it the WAL size.
private func walHook(_ context: UnsafeMutableRawPointer?, _ database: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                     _ pages: Int32) -> Int32 {
    guard let context else { return SQLITE_OK }
    Unmanaged<WALCheckpointer>.fromOpaque(context).takeUnretainedValue().committed(walPages: pages)
    return SQLITE_OK
}
