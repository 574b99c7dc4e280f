import Synchronization

/// Whether `condition` holds within `limit`, checked every 10 ms: for state that another
/// thread updates right after the event a test waited for.
public func eventually(within limit: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return true
}

/// A value set once from any thread, awaited with a deadline.
public final class Signal<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func fire(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value?, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value, or nil if it was not fired within `limit`.
    public func wait(within limit: Duration) async -> Value? {
        await withCheckedContinuation { continuation in
            let (fired, id) = state.withLock { state -> (Value?, Int) in
                if let value = state.value { return (value, -1) }
                state.nextID += 1
                state.waiters[state.nextID] = continuation
                return (nil, state.nextID)
            }
            if let fired { return continuation.resume(returning: fired) }
            Task {
                try? await Task.sleep(for: limit)
                state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
            }
        }
    }
}
