#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization

/// An instant on the scheduler's timeline: milliseconds since the Unix epoch, UTC.
///
/// Milliseconds are the unit the store keeps and the wire carries; the scheduler never
/// needs finer grain, and an integer has no rounding surprises in comparisons.
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// This instant moved by `milliseconds` (negative moves back), saturating at the
    /// ends of the timeline rather than trapping.
    public func adding(milliseconds: Int64) -> Instant {
        let (sum, overflow) = millisecondsSinceEpoch.addingReportingOverflow(milliseconds)
        return Instant(millisecondsSinceEpoch: overflow ? (milliseconds > 0 ? .max : .min) : sum)
    }

    public var description: String { "\(millisecondsSinceEpoch)ms" }
}

/// Where the scheduler reads the time. Production uses `SystemClock`; tests drive a
/// `ManualClock` by hand so every timing rule is deterministic.
public protocol SchedulerClock: Sendable {
    /// The current instant. Must not go backwards between calls.
    func now() -> Instant
}

/// Wall-clock time (CLOCK_REALTIME), clamped so it never goes backwards.
public final class SystemClock: SchedulerClock {
    // The last value handed out, so a wall-clock step back is seen as time standing
    // still rather than as time reversing.
    private let last = Mutex<Int64>(0)

    public init() {}

    public func now() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let wall = Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
        return last.withLock { last in
            last = max(last, wall)
            return Instant(millisecondsSinceEpoch: last)
        }
    }
}

/// A clock that moves only when told to. For tests and simulations.
public final class ManualClock: SchedulerClock {
    private let current: Mutex<Instant>

    public init(_ start: Instant = Instant(millisecondsSinceEpoch: 1_767_225_600_000)) {  // 2026-01-01T00:00:00Z
        current = Mutex(start)
    }

    public func now() -> Instant { current.withLock { $0 } }

    /// Moves the clock forward by `milliseconds` (must be >= 0).
    public func advance(milliseconds: Int64) {
        precondition(milliseconds >= 0, "ManualClock cannot go backwards")
        current.withLock { $0 = $0.adding(milliseconds: milliseconds) }
    }

    /// Sets the clock to `instant`, which must not be earlier than now.
    public func set(_ instant: Instant) {
        current.withLock { current in
            precondition(instant >= current, "ManualClock cannot go backwards")
            current = instant
        }
    }
}
