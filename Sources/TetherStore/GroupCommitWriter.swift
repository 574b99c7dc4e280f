import Dispatch
import Glibc
internal import CLinux

/// The one writer of a database, with group commit.
///
/// WAL checkpoints run on a thread of their own (`WALCheckpointer`), never inside a commit.
///
/// It owns a write connection on one dedicated thread. Changes submitted from any
/// thread are queued; the writer takes everything queued (up to `maxBatchSize`), runs
/// each change in a SAVEPOINT of one IMMEDIATE transaction, and COMMITs once. Batches
/// grow only because changes arrive while the previous commit is in progress; the
/// writer never waits for more.
///
/// Outcomes: a change that throws is rolled back alone and gets its own error while
/// its batch-mates commit. Success is reported only after the COMMIT that includes the
/// change has returned (with `synchronous = full`, after the WAL fsync); a failed BEGIN
/// or COMMIT fails every change of the batch. Completions run on the writer thread, in
/// submission order, after the commit: keep them short, they delay the next batch.
///
/// Readers open their own `SQLiteDatabase` (read-only) beside the writer; WAL lets them
/// read the last committed state while a batch is being written.
///
/// The queue is unbounded: submitters that produce faster than the disk commits should
/// wait for their completions.
public final class GroupCommitWriter: Sendable {
    /// A change to run on the write connection, inside the batch's transaction.
    public typealias Change = @Sendable (SQLiteDatabase) throws -> Void
    /// Called once per change, on the writer thread, with the change's outcome.
    public typealias Completion = @Sendable (Result<Void, any Error>) -> Void

    private let core: WriterCore

    /// Opens the write connection (`options` must be read-write), applies `migrations`,
    /// and starts the writer thread, which owns the connection from then on and closes
    /// it when the writer stops. Throws the `SQLiteError` of the open, what `migrate`
    /// throws, or `GroupCommitWriterError.threadStartFailed`.
    /// `walCheckpointPages`: the WAL size at which the background checkpointer runs.
    public init(_ options: SQLiteDatabase.Options, migrations: [SQLiteMigration] = [], maxBatchSize: Int = 1024,
                walCheckpointPages: Int32 = WALCheckpointer.defaultThresholdPages) throws {
        precondition(maxBatchSize > 0, "maxBatchSize must be positive")
        precondition(options.access == .readWriteCreate, "the writer needs a read-write connection")
        let database = try SQLiteDatabase(options)
        try database.migrate(migrations)
        let checkpointer = try WALCheckpointer(options: options, thresholdPages: walCheckpointPages)
        checkpointer.attach(to: database)
        core = WriterCore(database: database, maxBatchSize: maxBatchSize, checkpointer: checkpointer)
        let context = Unmanaged.passRetained(core).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<WriterCore>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<WriterCore>.fromOpaque(context).release()
            throw GroupCommitWriterError.threadStartFailed(errno: result)
        }
        pthread_detach(thread)
    }

    /// Stops the writer once its queue is drained (see `close`).
    deinit { core.close() }

    /// Queues `change`; `completion` runs on the writer thread after the COMMIT that
    /// includes it (`.success`), or with the change's own error, or with the batch's
    /// BEGIN/COMMIT error. After `close`, `completion` runs at once on the calling thread
    /// with `GroupCommitWriterError.closed`. Any thread.
    public func submit(_ change: @escaping Change, completion: @escaping Completion) {
        core.submit(WriterCore.Pending(change: change, completion: completion))
    }

    /// Queues `change` and returns after the COMMIT that includes it. Throws the
    /// change's own error, the batch's `SQLiteError`, or `GroupCommitWriterError.closed`.
    /// Not cancellable: once queued, the change runs.
    public func submit(_ change: @escaping Change) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            submit(change) { continuation.resume(with: $0) }
        }
    }

    /// Refuses new changes, runs and commits every change already queued, then stops the
    /// writer thread and closes its connection; returns when all that is done. Idempotent.
    /// Called from a completion (on the writer thread) it only refuses new changes; the
    /// thread stops after the batches still queued.
    public func close() { core.close() }

    /// A snapshot of the writer's counters. Any thread.
    public var stats: GroupCommitStats { core.lock.withLock { core.stats } }

    /// Told of every batch from now on, on the writer thread, right after its COMMIT (or
    /// failure) and before its completions: keep it short, it delays them. One observer;
    /// a second call replaces the first. Any thread.
    public func observeBatches(_ observer: @escaping @Sendable (GroupCommitBatch) -> Void) {
        core.lock.withLock { core.observer = observer }
    }
}

/// Why the writer refused or failed a change, apart from SQLite's own errors.
public enum GroupCommitWriterError: Error, CustomStringConvertible {
    /// The writer was closed before the change was submitted.
    case closed
    /// The batch's transaction ended early (a change ended it, or SQLite rolled it back
    /// after `cause`), so this change, though it ran or was about to, is not committed.
    case batchAborted(cause: any Error)
    case threadStartFailed(errno: Int32)

    public var description: String {
        switch self {
        case .closed: "the group-commit writer is closed; the change was not applied"
        case .batchAborted(let cause): "the change's batch was rolled back, so it is not committed: \(cause)"
        case .threadStartFailed(let errno): "could not start the writer thread: pthread_create returned \(errno)"
        }
    }
}

/// The writer's state, shared by submitters (under `lock`) and the writer thread.
private final class WriterCore: @unchecked Sendable {
    struct Pending {
        let change: GroupCommitWriter.Change
        let completion: GroupCommitWriter.Completion
    }

    /// Guards `queue`, `closing`, `finished`, `writerThread` and `stats`. Its one
    /// condition serves two waiters that are never waiting at the same time: the writer
    /// waits for work only while not closing, closers wait for `finished` only after
    /// closing (when submits no longer signal).
    let lock = ConditionLock()
    private var queue: [Pending] = []
    private var closing = false
    private var finished = false
    private var writerThread: pthread_t?
    var stats = GroupCommitStats()
    var observer: (@Sendable (GroupCommitBatch) -> Void)?

    /// Writer thread only (handed over by `init`, before the thread starts).
    private var database: SQLiteDatabase?
    private let maxBatchSize: Int
    /// Checkpoints the WAL off the commit path; stopped when the writer stops.
    private let checkpointer: WALCheckpointer

    init(database: sending SQLiteDatabase, maxBatchSize: Int, checkpointer: WALCheckpointer) {
        self.database = database
        self.maxBatchSize = maxBatchSize
        self.checkpointer = checkpointer
    }

    func submit(_ pending: Pending) {
        lock.lock()
        guard !closing else {
            lock.unlock()
            // Never inside the caller's frame: it may hold a lock the completion needs.
            DispatchQueue.global().async { pending.completion(.failure(GroupCommitWriterError.closed)) }
            return
        }
        queue.append(pending)
        lock.signal()
        lock.unlock()
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        if !closing {
            closing = true
            lock.broadcast()
        }
        if let writerThread, pthread_equal(writerThread, pthread_self()) != 0 { return }
        while !finished { lock.wait() }
    }

    /// The writer thread's loop.
    func run() {
        tether_name_thread("tether-commit")
        var batch: [Pending] = []
        lock.lock()
        writerThread = pthread_self()
        while true {
            while queue.isEmpty && !closing { lock.wait() }
            if queue.isEmpty { break }
            if queue.count <= maxBatchSize {
                swap(&batch, &queue)
            } else {
                batch.append(contentsOf: queue.prefix(maxBatchSize))
                queue.removeFirst(maxBatchSize)
            }
            lock.unlock()

            let started = ContinuousClock.now
            let (results, committed) = commit(batch)
            let report = GroupCommitBatch(size: batch.count, duration: .now - started, committed: committed)
            let observer = lock.withLock {
                stats.record(batchSize: batch.count, committed: committed)
                return self.observer
            }
            observer?(report)
            for (pending, result) in zip(batch, results) { pending.completion(result) }
            batch.removeAll(keepingCapacity: true)

            lock.lock()
        }
        lock.unlock()
        if let database { checkpointer.detach(from: database) }
        checkpointer.stop()
        database = nil   // closes the write connection on its own thread
        lock.withLock {
            finished = true
            lock.broadcast()
        }
    }

    /// Runs `batch` in one transaction; returns each change's outcome and whether the
    /// COMMIT succeeded.
    private func commit(_ batch: [Pending]) -> (results: [Result<Void, any Error>], committed: Bool) {
        guard let database else { preconditionFailure("writer connection used after close") }
        // A previous batch whose COMMIT and ROLLBACK both failed (its changes were all
        // failed) would otherwise make every later BEGIN fail.
        if database.isInTransaction { _ = try? database.run("ROLLBACK") }
        do {
            try database.run("BEGIN IMMEDIATE")
        } catch {
            return (Array(repeating: .failure(error), count: batch.count), false)
        }
        var results: [Result<Void, any Error>] = []
        results.reserveCapacity(batch.count)
        for pending in batch {
            do {
                try database.run("SAVEPOINT tether_change")
                do {
                    try pending.change(database)
                    try database.run("RELEASE tether_change")
                    results.append(.success(()))
                } catch {
                    results.append(.failure(error))
                    try database.rollBack("ROLLBACK TO tether_change", after: error)
                    if database.isInTransaction { try database.run("RELEASE tether_change") }
                }
                guard database.isInTransaction else {
                    throw SQLiteError(code: .misuse, message: "the batch's transaction ended inside a change",
                                      operation: "group commit")
                }
            } catch {
                return (abort(batch, results, cause: error, database), false)
            }
        }
        do {
            try database.run("COMMIT")
        } catch {
            try? database.rollBack("ROLLBACK", after: error)
            return (results.map { $0.flatMap { .failure(error) } }, false)
        }
        return (results, true)
    }

    /// Ends a batch whose transaction broke: every change not already failed with its
    /// own error fails with `batchAborted`.
    private func abort(_ batch: [Pending], _ results: [Result<Void, any Error>], cause: any Error,
                       _ database: SQLiteDatabase) -> [Result<Void, any Error>] {
        try? database.rollBack("ROLLBACK", after: cause)
        let aborted = Result<Void, any Error>.failure(GroupCommitWriterError.batchAborted(cause: cause))
        return results.map { $0.flatMap { aborted } }
            + Array(repeating: aborted, count: batch.count - results.count)
    }
}
