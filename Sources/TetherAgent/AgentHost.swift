import Foundation
import H2
import Synchronization

/// What the agents of one process share: the threads that spawn their tasks and the lease
/// keeper. `tether agent` runs one agent and one host; `tether-torture swarm` runs
/// hundreds of agents on one host, so they cost a few threads and one keeper process in
/// all instead of a set each.
///
/// Sharing is safe because neither part keeps per-agent state. A spawner thread only runs
/// `TaskRunner.start()` for whichever agent hands it a task; the keeper watches process
/// groups, which are unique among this process's live children, each with the deadline
/// its own agent last wrote (lease ids never reach it).
///
/// Every task dies with the thread that spawned it (`PR_SET_PDEATHSIG`), so the spawner
/// threads must live as long as any agent of the host may have a task running: `stop()`
/// only once every agent's `run()` has returned. Thread-safe.
public final class AgentHost: Sendable {
    /// Threads that live as long as the host, one per core, for spawns beside running
    /// tasks (in parallel: a spawn waits for its exec). Never Dispatch's pool, whose
    /// threads come and go.
    private let spawners: [EventLoop]
    private let nextSpawner = Atomic<Int>(0)
    /// Kills a task whose lease deadline passed when its agent could not.
    let keeper: LeaseKeeper

    /// Starts the keeper and the spawner threads. Make the host early, while the process
    /// holds few descriptors: the keeper's clone copies them all until it closes its copies.
    ///
    /// - Throws: `SystemError` if the keeper or a thread cannot start.
    public init() throws {
        keeper = try LeaseKeeper()
        spawners = try (0..<max(2, ProcessInfo.processInfo.activeProcessorCount)).map {
            try EventLoop.start(name: "tether-agent-spawn-\($0)")
        }
    }

    /// The next spawner thread, round robin.
    func spawner() -> EventLoop {
        spawners[nextSpawner.add(1, ordering: .relaxed).oldValue % spawners.count]
    }

    /// Stops the spawner threads. Only once no agent of the host runs (see the type).
    public func stop() {
        for spawner in spawners { spawner.stop() }
    }
}
