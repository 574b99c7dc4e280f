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

/// The server's clock: the wall clock (CLOCK_REALTIME) read once, when the clock is made,
/// then advanced by CLOCK_BOOTTIME, which never jumps and keeps counting while the machine
/// sleeps. Lease TTLs, retry backoff, timeouts and cron all run on it, so a step of the
/// wall clock while the server runs (an operator's `date -s`, an NTP step) neither expires
/// every lease at once nor freezes them, and fires no burst of cron runs. NTP's gradual
/// corrections are followed (they slew both clocks); a step is followed at the next start,
/// and `wallClockOffset` says how far the wall clock has moved away meanwhile.
public final class SystemClock: SchedulerClock {
    private let wallAtStart: Int64
    private let bootAtStart: Int64
    private let readWall: @Sendable () -> Int64
    private let readBoot: @Sendable () -> Int64

    /// - Parameters: (for tests) where the wall clock (ms since the epoch) and the boot
    ///   clock (ns) are read.
    public init(wallMilliseconds: @escaping @Sendable () -> Int64 = SystemClock.realtimeMilliseconds,
                bootNanoseconds: @escaping @Sendable () -> Int64 = SystemClock.boottimeNanoseconds) {
        readWall = wallMilliseconds
        readBoot = bootNanoseconds
        wallAtStart = wallMilliseconds()
        bootAtStart = bootNanoseconds()
    }

    public func now() -> Instant {
        Instant(millisecondsSinceEpoch: wallAtStart + (readBoot() - bootAtStart) / 1_000_000)
    }

    /// The wall clock minus this clock, in milliseconds: how far the wall clock was
    /// stepped since this clock was made (positive: it is ahead).
    public var wallClockOffsetMilliseconds: Int64 { readWall() - now().millisecondsSinceEpoch }

    public static let realtimeMilliseconds: @Sendable () -> Int64 = {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    public static let boottimeNanoseconds: @Sendable () -> Int64 = {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
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
