internal import Synchronization

/// Serializes access to a `Scheduler` and makes its decisions durable before anyone
/// learns of them.
///
/// Each `perform` runs its body on the scheduler under a lock, then submits the
/// recorded changes to the store in the same order the bodies ran. When the store has
/// committed them, the effects go to `deliver` (grants and revokes for agents) and then
/// the caller's completion runs: a caller is told "done" only once its change would
/// survive a crash. The scheduler's memory may run ahead of the disk by the batches in
/// flight; that is what lets many changes share one commit.
///
/// A failed commit stops the service: memory and disk no longer agree, so every later
/// call fails with `SchedulerServiceError.storeFailed` until the process restarts and
/// reloads from the store.
///
/// Thread-safe. Completions and `deliver` run on the store's commit thread: keep them short.
public final class SchedulerService: Sendable {
    private struct State: ~Copyable {
        var scheduler: Scheduler
        var failure: String?
    }

    private let state: Mutex<State>
    private let store: any SchedulerStore
    /// The clock the scheduler reads.
    public let clock: any SchedulerClock
    private let deliver: @Sendable ([SchedulerEffect]) -> Void

    /// Loads the store's snapshot and resumes from it.
    /// - Throws: what `store.loadSnapshot()` throws.
    public init(store: any SchedulerStore, clock: any SchedulerClock, configuration: SchedulerConfiguration = SchedulerConfiguration(),
                deliver: @escaping @Sendable ([SchedulerEffect]) -> Void) throws {
        self.store = store
        self.clock = clock
        self.deliver = deliver
        let snapshot = try store.loadSnapshot()
        state = Mutex(State(scheduler: Scheduler(clock: clock, configuration: configuration, snapshot: snapshot)))
        // What the restore decided (e.g. runs started) is committed before anything else.
        perform({ _ in }, completion: { _ in })
    }

    /// Runs `body` on the scheduler; `completion` gets its result after the changes it
    /// made are durable (or the error it threw, or the store's failure).
    public func perform<T: Sendable>(
        _ body: (Scheduler) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        // Set only when the call is answered at once (the service had already failed).
        let refused: Result<T, any Error>? = state.withLock { state in
            if let failure = state.failure { return .failure(SchedulerServiceError.storeFailed(failure)) }
            let result: Result<T, any Error>
            do {
                result = .success(try body(state.scheduler))
            } catch {
                result = .failure(error)
            }
            let output = state.scheduler.takeOutput()
            // Submitted under the lock so commits keep the order the bodies ran in. Even a
            // call that changed nothing goes through the store: its answer (say, a Welcome
            // saying which events are applied) must not overtake earlier commits.
            store.commit(output.changes) { [self] committed in
                // After a failed commit, later batches may still commit, but memory and disk
                // disagree: nobody may act on them.
                let failure = self.state.withLock { $0.failure }
                switch committed {
                case .success where failure == nil:
                    if !output.effects.isEmpty { deliver(output.effects) }
                    completion(result)
                case .success:
                    completion(.failure(SchedulerServiceError.storeFailed(failure!)))
                case .failure(let error):
                    self.state.withLock { $0.failure = $0.failure ?? "\(error)" }
                    completion(.failure(SchedulerServiceError.storeFailed("\(error)")))
                }
            }
            return nil
        }
        if let refused { completion(refused) }
    }

    /// `perform`, awaiting durability.
    public func perform<T: Sendable>(_ body: (Scheduler) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            perform(body) { continuation.resume(with: $0) }
        }
    }

    /// Reads the scheduler under the lock without changing it (nothing to commit).
    public func read<T: Sendable>(_ body: (Scheduler) -> T) -> T {
        state.withLock { body($0.scheduler) }
    }

    /// Fires due timers; the host calls it at `nextDeadline()`.
    public func tick() { perform({ $0.tick() }, completion: { _ in }) }

    /// When `tick()` next has work.
    public var nextDeadline: Instant? { read { $0.nextDeadline() } }

    /// Whether a commit failed and the service refuses work.
    public var hasFailed: Bool { state.withLock { $0.failure != nil } }
}

public enum SchedulerServiceError: Error, CustomStringConvertible {
    /// A commit failed earlier; the service refuses work until restarted.
    case storeFailed(String)

    public var description: String {
        switch self {
        case .storeFailed(let why): return "scheduler store failed (\(why)); restart the server to reload its state"
        }
    }
}
