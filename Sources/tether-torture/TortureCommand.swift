public import ArgumentParser
import Foundation
import Synchronization
public import TetherStore
import GRPC
import H2
import TetherScheduler

/// `tether-torture`: crash and throughput harnesses for Tether's store, scheduler and agents.
@main
struct TortureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-torture",
        abstract: "Crash tests, benchmarks and swarms of agents for Tether.",
        subcommands: [StoreTorture.self, StoreBench.self, SchedulerTorture.self, SchedulerBench.self, E2EAgent.self, E2ESpawn.self,
                      E2ERun.self, Swarm.self, FakeAgents.self, WatchLoad.self]
    )
}

extension SQLiteDatabase.Options.Synchronous: ExpressibleByArgument {}

/// The table both subcommands write.
enum AckedTable {
    static let migrations = [
        SQLiteMigration(version: 1, name: "acked", sql: "CREATE TABLE acked(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)"),
    ]

    /// Inserts row `id` with a payload of `bytes` bytes derived from the id.
    static func insert(_ id: Int64, bytes: Int) -> GroupCommitWriter.Change {
        { database in
            let payload = (0..<bytes).map { UInt8(truncatingIfNeeded: id &+ Int64($0)) }
            try database.run("INSERT INTO acked(id, payload) VALUES (?, ?)", [.integer(id), .blob(payload)])
        }
    }
}

/// Hands out row ids, shared by the submitter threads.
final class IDSource: Sendable {
    private let next: Atomic<Int64>
    private let limit: Int64

    /// Ids `first...limit`.
    init(first: Int64, limit: Int64 = .max) {
        next = Atomic(first)
        self.limit = limit
    }

    func take() -> Int64? {
        let id = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return id <= limit ? id : nil
    }
}

/// Starts `count` submitter threads; each keeps up to `window` inserts in flight, for
/// the ids `ids` hands out. `done` runs on the writer thread after each commit (or failure).
func startSubmitters(
    count: Int, window: Int, payloadBytes: Int, writer: GroupCommitWriter, ids: IDSource,
    done: @escaping @Sendable (Int64, Result<Void, any Error>) -> Void
) {
    for index in 0..<count {
        let thread = Thread {
            // Created empty and then filled: libdispatch traps if a semaphore is freed
            // below its initial value, as it is when completions are still out.
            let slots = DispatchSemaphore(value: 0)
            for _ in 0..<window { slots.signal() }
            while true {
                slots.wait()
                guard let id = ids.take() else { return }
                writer.submit(AckedTable.insert(id, bytes: payloadBytes)) { result in
                    done(id, result)
                    slots.signal()
                }
            }
        }
        thread.name = "submitter-\(index)"
        thread.start()
    }
}

/// Writes `line` to stdout at once, unbuffered: a line printed is a line a parent reads,
/// even if this process is killed right after.
func writeLine(_ line: String, to handle: FileHandle = .standardOutput) {
    handle.write(Data((line + "\n").utf8))
}

/// Runs `body` on the service and waits until its changes are committed. Never call it
/// from a commit completion (that thread is the one it waits for).
func perform<T: Sendable>(_ service: SchedulerService, _ body: @escaping (Scheduler) throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    service.perform(body) { outcome in
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

/// Runs `body` as a task preferring `client`'s event loop (no thread hop on its I/O),
/// closes the client, and blocks this thread until both are done.
func onClientLoop<T: Sendable>(_ client: GRPCClient, _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task(executorPreference: client.eventLoop) {
        let result: Result<T, any Error>
        do {
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        await client.close()
        outcome.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    return try outcome.withLock { $0! }.get()
}

/// `count` h2c clients of `target`, without busy polling (load generators share the
/// machine's cores with the server they load).
func plaintextClients(_ target: SocketAddress, count: Int) throws -> [GRPCClient] {
    try (0..<count).map { _ in
        var configuration = GRPCClient.Configuration(target: target, tls: nil)
        configuration.busyPoll = .zero
        return try GRPCClient(configuration: configuration)
    }
}

/// `count` workers, worker `i` on the loop of `clients[i % clients.count]`, each running
/// `body(i, client)` until cancelled. One that throws other than by cancellation is told to
/// `failed` as "`what` i: error".
func workersOnClientLoops(_ count: Int, _ clients: [GRPCClient], what: String,
                          failed: @escaping @Sendable (String) -> Void,
                          _ body: @escaping @Sendable (Int, GRPCClient) async throws -> Void) -> Task<Void, Never> {
    Task {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                let client = clients[index % clients.count]
                group.addTask(executorPreference: client.eventLoop) {
                    do {
                        try await body(index, client)
                    } catch where !Task.isCancelled {
                        failed("\(what) \(index): \(error)")
                    } catch {}
                }
            }
        }
    }
}

/// A load generator's workers' failures: the first is kept, and each one is an element of
/// `failed`.
final class WorkerFailures: Sendable {
    let failed: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let firstFailure = Mutex<String?>(nil)

    init() { (failed, continuation) = AsyncStream.makeStream(of: Void.self) }

    func record(_ failure: String) {
        firstFailure.withLock { $0 = $0 ?? failure }
        continuation.yield()
    }

    var first: String? { firstFailure.withLock { $0 } }
}

/// Returns at the first termination signal or the first element of `failed`, whichever
/// comes first (a load generator's stream that ended on its own).
func untilSignalOrFailure(_ signals: AsyncStream<Int32>, _ failed: AsyncStream<Void>) async {
    await withTaskGroup(of: Void.self) { group in
        group.addTask { for await _ in signals { return } }
        group.addTask { for await _ in failed { return } }
        await group.next()
        group.cancelAll()
    }
}
