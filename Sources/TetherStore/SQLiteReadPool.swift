import Dispatch
internal import Synchronization

/// Read-only connections to one database for callers that must never block: each
/// connection is owned by a serial queue of its own, and the only way to one is `read`,
/// which is async and runs its body on that queue. A read therefore cannot run on the
/// caller's thread (an event loop, say), whatever the caller does.
///
/// Connections open on first use and stay open (their compiled statements with them);
/// one that failed to open is tried again by the next read. Reads go to the lanes in
/// turn; under WAL each sees the last commit before it started and never blocks the writer.
public final class SQLiteReadPool: Sendable {
    /// One connection and the queue that owns it.
    private final class Lane: @unchecked Sendable {
        // Safety: `database` is touched only on `queue`.
        let queue: DispatchQueue
        var database: SQLiteDatabase?

        init(label: String) { queue = DispatchQueue(label: label) }
    }

    public let options: SQLiteDatabase.Options
    private let lanes: [Lane]
    private let next = Atomic<Int>(0)

    /// - Parameter connections: how many reads may run at once.
    public init(path: String, connections: Int = 2) {
        options = SQLiteDatabase.Options(path: path, access: .readOnly)
        lanes = (0..<max(1, connections)).map { Lane(label: "tether-sqlite-read-\($0)") }
    }

    /// Runs `body` on a read-only connection, off the calling thread.
    /// - Throws: `SQLiteError` opening the connection, or what `body` throws.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteDatabase) throws -> T) async throws -> T {
        let lane = lanes[next.wrappingAdd(1, ordering: .relaxed).oldValue % lanes.count]
        let options = options
        return try await withCheckedThrowingContinuation { continuation in
            lane.queue.async {
                continuation.resume(with: Result {
                    let database = try lane.database ?? SQLiteDatabase(options)
                    lane.database = database
                    return try body(database)
                })
            }
        }
    }
}
