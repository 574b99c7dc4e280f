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
/// Store outages. A failed commit (a full disk, an I/O error) starts an outage: memory
/// and disk no longer agree, so from then on every call fails with
/// `SchedulerServiceError.storeFailed`, never with a result, and the store fences every
/// commit after the failed one (see `SchedulerStore`), so nothing built on a lost change
/// is written. The host calls `recover()` while `hasFailed`: once a probe write commits,
/// the scheduler is rebuilt from the store's snapshot, exactly as at a restart (leases
/// get a full TTL, runs resume), and the service serves again. What was acknowledged is
/// in that snapshot; what failed is not, and its caller got an error. `onEvent` hears of
/// each outage once as it starts and once as it ends.
///
/// Thread-safe. Completions and `deliver` run on the store's commit thread: keep them short.
public final class SchedulerService: Sendable {
    private struct State: ~Copyable {
        var scheduler: Scheduler
        var outage: Outage?
    }

    /// From the first failed commit until the scheduler is rebuilt.
    private struct Outage {
        /// The first failed commit's error, in words.
        let reason: String
        let since: ContinuousClock.Instant
        /// A `recover()` is under way.
        var recovering = false
    }

    private let state: Mutex<State>
    private let store: any SchedulerStore
    /// The clock the scheduler reads.
    public let clock: any SchedulerClock
    private let deliver: @Sendable ([SchedulerEffect]) -> Void
    private let onEvent: @Sendable (SchedulerServiceEvent) -> Void
    /// The outage `onEvent` was last told of, nil for serving. Held while `onEvent` runs,
    /// so events are told one at a time and in the order they happened.
    private let told = Mutex<(reason: String, since: ContinuousClock.Instant)?>(nil)

    /// Loads the store's snapshot and resumes from it.
    /// - Parameters:
    ///   - onEvent: told when an outage starts and when it ends, one event at a time, on
    ///     the commit thread or `recover()`'s caller. It must not call the service.
    /// - Throws: what `store.loadSnapshot()` throws.
    public init(store: any SchedulerStore, clock: any SchedulerClock, configuration: SchedulerConfiguration = SchedulerConfiguration(),
                onEvent: @escaping @Sendable (SchedulerServiceEvent) -> Void = { _ in },
                deliver: @escaping @Sendable ([SchedulerEffect]) -> Void) throws {
        self.store = store
        self.clock = clock
        self.deliver = deliver
        self.onEvent = onEvent
        let snapshot = try store.loadSnapshot()
        state = Mutex(State(scheduler: Scheduler(clock: clock, configuration: configuration, snapshot: snapshot)))
        // What the restore decided (e.g. runs started) is committed before anything else.
        perform({ _ in }, completion: { _ in })
    }

    /// Runs `body` on the scheduler; `completion` gets its result after the changes it
    /// made are durable (or the error it threw, or `storeFailed`).
    public func perform<T: Sendable>(
        _ body: (Scheduler) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        // Set only when the call is answered at once (the store is failing).
        let refused: Result<T, any Error>? = state.withLock { state in
            if let outage = state.outage { return .failure(SchedulerServiceError.storeFailed(outage.reason)) }
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
                // The store fences every commit after a failed one, so a success comes only
                // from a commit made before the outage began; should a store not fence,
                // nobody may act on a later batch all the same.
                let outage = self.state.withLock { $0.outage?.reason }
                switch committed {
                case .success where outage == nil:
                    if !output.effects.isEmpty { deliver(output.effects) }
                    completion(result)
                case .success:
                    completion(.failure(SchedulerServiceError.storeFailed(outage!)))
                case .failure(let error):
                    let reason = self.state.withLock { state in
                        if state.outage == nil { state.outage = Outage(reason: "\(error)", since: .now) }
                        return state.outage!.reason
                    }
                    completion(.failure(SchedulerServiceError.storeFailed(reason)))
                    tellCondition()
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

    /// Reads the scheduler under the lock without changing it (nothing to commit). During
    /// an outage it may show changes whose commit failed; they are gone after `recover()`.
    public func read<T: Sendable>(_ body: (Scheduler) -> T) -> T {
        state.withLock { body($0.scheduler) }
    }

    /// Fires due timers; the host calls it at `nextDeadline()`.
    public func tick() { perform({ $0.tick() }, completion: { _ in }) }

    /// When `tick()` next has work.
    public var nextDeadline: Instant? { read { $0.nextDeadline() } }

    /// Whether a commit failed and the service refuses work until `recover()` succeeds.
    public var hasFailed: Bool { state.withLock { $0.outage != nil } }

    /// During an outage: probes the store with a write of its own, behind every commit
    /// in flight; if it commits, reloads the store's snapshot into a new scheduler (as a
    /// restart does: runs resume, leases get a full TTL for their agents to resume them,
    /// and no agent counts as connected), serves again and tells `onEvent`
    /// `.recovered`. The host then ends the agent sessions it has, so their agents
    /// reconnect and resume their leases against the reloaded state.
    ///
    /// Returns whether the service serves (true at once when there is no outage; false
    /// while the probe or the reload fails, or while another `recover()` is under way).
    /// Call it from a task, not a completion: it waits for the store.
    public func recover() async -> Bool {
        let started = state.withLock { state -> Bool? in
            guard state.outage != nil else { return nil }
            guard !state.outage!.recovering else { return false }
            state.outage!.recovering = true
            return true
        }
        guard let started else { return true }
        guard started else { return false }
        let snapshot: SchedulerSnapshot?
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                store.probe { continuation.resume(with: $0) }
            }
            // Nothing is written until the swap: the service still refuses every call.
            snapshot = try store.loadSnapshot()
        } catch {
            snapshot = nil
        }
        let recovered = state.withLock { state -> Bool in
            state.outage!.recovering = false
            guard let snapshot else { return false }
            state.scheduler = Scheduler(clock: clock, configuration: state.scheduler.configuration, snapshot: snapshot)
            state.outage = nil
            return true
        }
        guard recovered else { return false }
        // What the restore decided (leases extended, queued runs started) goes first.
        perform({ _ in }, completion: { _ in })
        tellCondition()
        return true
    }

    /// Tells `onEvent` where the service stands now, if that differs from what it was
    /// told last. Reading the state again under `told` keeps the events in order even
    /// when a failure and a recovery race to tell theirs.
    private func tellCondition() {
        told.withLock { told in
            let outage = state.withLock { $0.outage.map { (reason: $0.reason, since: $0.since) } }
            switch (told, outage) {
            case (nil, let outage?):
                onEvent(.storeFailed(reason: outage.reason))
            case (let previous?, nil):
                onEvent(.recovered(outage: .now - previous.since))
            default:
                break
            }
            told = outage
        }
    }
}

/// A change in whether the service can serve, for its host to act on.
public enum SchedulerServiceEvent: Sendable, Equatable {
    /// A commit failed: every call fails with `storeFailed` until `recover()` succeeds.
    /// Told once per outage, with the first failure's reason.
    case storeFailed(reason: String)
    /// A probe write committed and the scheduler was rebuilt from the store. The rebuilt
    /// scheduler counts no agent as connected: the host should end every agent session
    /// (UNAVAILABLE) so the agents reconnect and resume their leases. `outage`: how long
    /// since the first failed commit.
    case recovered(outage: Duration)
}

public enum SchedulerServiceError: Error, CustomStringConvertible {
    /// The store could not write: this call's change, or one before it, was not saved,
    /// and the service refuses work until a probe write commits (`recover()`).
    case storeFailed(String)

    public var description: String {
        switch self {
        case .storeFailed(let why):
            return "the server could not save its state, so this call was not applied: \(why). "
                + "It retries by itself and serves again, without a restart, once writes succeed"
        }
    }
}
