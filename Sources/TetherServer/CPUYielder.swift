internal import Glibc

/// Lets background work give way to the threads that dispatch. The work calls
/// `checkpoint()` between small steps; once `quantum` has passed since the last yield,
/// the thread yields its CPU (sched_yield).
///
/// Why: on a busy machine Linux's scheduler (EEVDF) lets a running thread finish a
/// protected slice of about a millisecond before a thread woken on the same CPU runs. A
/// burst of background work (the commit feed encoding a batch for its subscribers) would
/// make a loop with a lease to send, or the commit thread, wait out that slice: measured,
/// dispatch p99 went from about 1 ms to 2.3 ms with 10 event subscribers (BENCHMARKS.md).
/// Yielding every `quantum` bounds that wait to about `quantum`; with nothing else
/// runnable the yield returns at once. Costs one clock read per checkpoint.
struct CPUYielder {
    var quantum: Duration
    private var since: ContinuousClock.Instant

    init(quantum: Duration = .microseconds(50)) {
        self.quantum = quantum
        since = .now
    }

    mutating func checkpoint() {
        let now = ContinuousClock.now
        guard now - since >= quantum else { return }
        sched_yield()
        since = .now
    }
}
