#if canImport(Glibc)
internal import Glibc
internal import CLinux
#endif
import Synchronization

/// Something registered with an `EventLoop` for readiness of one file descriptor.
/// Every method is called on the loop's thread only.
public protocol EventLoopSelectable: AnyObject {
    /// The descriptor is readable (or at EOF).
    func eventLoopReadable()
    /// The descriptor is writable; only delivered while write interest is on.
    func eventLoopWritable()
    /// The peer hung up or the descriptor is in error; the handler should close.
    func eventLoopHangup()
}

/// Something with buffered output that the loop flushes once per iteration,
/// after handling every ready event, so writes batch without waiting.
public protocol EventLoopFlushable: AnyObject {
    /// Called on the loop's thread.
    func eventLoopFlush()
}

/// One thread running an epoll loop: readiness callbacks, timers, work handed
/// over from other threads (through an eventfd, written only when the loop may be
/// asleep), and a once-per-iteration flush.
///
/// The loop is also a Swift `TaskExecutor`: a task started with
/// `Task(executorPreference: loop)` (or code inside
/// `withTaskExecutorPreference(loop)`) runs its nonisolated code on the thread
/// that owns the sockets, with no hop to the global pool.
///
/// Threading: `execute`, `enqueue` and `stop` may be called from any thread; every
/// other method only on the loop's thread (checked with `preconditionInEventLoop`).
///
/// Busy polling: a loop made with a `busyPoll` ceiling polls (non-blocking `epoll_wait`,
/// yielding the CPU between polls) for up to an adaptive window (`BusyPollWindow`) before
/// it sleeps, because waking a sleeping thread (on a VM, a halted vCPU) costs more than a
/// whole loopback round trip. A loop polls only while events keep coming closer together
/// than the ceiling; a few longer idle periods close the window.
public final class EventLoop: @unchecked Sendable {
    public let name: String
    /// Loop thread only.
    private var pollWindow: BusyPollWindow
    private let epollFD: Int32
    private let wakeFD: Int32

    private enum Work {
        case closure(() -> Void)
        case job(UnownedJob)
    }

    private enum SendableWork: Sendable {
        case closure(@Sendable () -> Void)
        case job(UnownedJob)

        var work: Work {
            switch self {
            case .closure(let body): return .closure(body)
            case .job(let job): return .job(job)
            }
        }
    }

    // Shared with other threads.
    private let inbox = Mutex<[SendableWork]>([])
    private let waker = LoopWaker()
    private let stopRequested = Atomic<Bool>(false)
    private let loopThread = Atomic<UInt>(0)

    // Loop-thread state.

    /// Scratch space for one read at a time, shared by every connection on the loop
    /// so an idle connection holds no read buffer of its own. Loop thread only.
    public let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    /// Scratch space where a connection gathers frames into one write. Loop thread only.
    public let writeBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    private var registrations: [Registration?] = []
    private var freeSlots: [Int] = []
    private var timers = TimerHeap()
    private var flushQueue: [any EventLoopFlushable] = []
    private var flushQueued = Set<ObjectIdentifier>()
    private var running: [Work] = []
    /// `running`'s previous storage, emptied and kept for reuse.
    private var spareRunning: [Work] = []

    private struct Registration {
        let fd: Int32
        let generation: UInt32
        unowned(unsafe) let handler: any EventLoopSelectable
        var readInterest = true
        var writeInterest: Bool
    }
    private var generation: UInt32 = 0
    private static let wakeToken: UInt64 = .max

    /// Creates a loop; call `run()` on the thread that will own it, or use `start(name:busyPoll:)`.
    /// - Parameter busyPoll: the most the loop polls before it sleeps (see above); zero
    ///   sleeps at once.
    public init(name: String, busyPoll: Duration = .zero) throws(SystemError) {
        self.name = name
        pollWindow = BusyPollWindow(ceiling: busyPoll.nanoseconds)
        epollFD = try syscallChecked("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        let wake = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wake >= 0 else {
            let error = SystemError("eventfd", errno: Glibc.errno)
            close(epollFD)
            throw error
        }
        wakeFD = wake
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: Self.wakeToken))
        _ = try? syscallChecked("epoll_ctl(eventfd)") { epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) }
    }

    deinit {
        readBuffer.deallocate()
        writeBuffer.deallocate()
        close(wakeFD)
        close(epollFD)
    }

    /// Starts a loop on a new thread and returns once it is running.
    public static func start(name: String, busyPoll: Duration = .zero) throws(SystemError) -> EventLoop {
        let loop = try EventLoop(name: name, busyPoll: busyPoll)
        let box = Unmanaged.passRetained(loop).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { box in
            let loop = Unmanaged<EventLoop>.fromOpaque(box!).takeRetainedValue()
            loop.run()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<EventLoop>.fromOpaque(box).release()
            throw SystemError("pthread_create", errno: result)
        }
        pthread_detach(thread)
        while loop.loopThread.load(ordering: .acquiring) == 0 { sched_yield() }
        return loop
    }

    /// Whether the caller is on this loop's thread.
    public var inEventLoop: Bool {
        loopThread.load(ordering: .relaxed) == UInt(pthread_self())
    }

    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "not on event loop \(name)", file: file, line: line)
    }

    /// Runs `work` on the loop's thread soon. From the loop itself it runs after
    /// the current callback; from another thread it wakes the loop if needed.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        submit(.closure(work))
    }

    /// Swift concurrency's entry point (TaskExecutor).
    public func enqueue(_ job: consuming ExecutorJob) {
        submit(.job(UnownedJob(job)))
    }

    /// Runs `work` on the loop's thread; for callers already on it, non-Sendable.
    public func executeSoon(_ work: @escaping () -> Void) {
        preconditionInEventLoop()
        running.append(.closure(work))
    }

    private func submit(_ work: SendableWork) {
        if inEventLoop {
            running.append(work.work)
            return
        }
        inbox.withLock { $0.append(work) }
        if waker.shouldWake() {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    /// The busy-poll window now, in nanoseconds (loop thread only).
    var busyPollWindow: Int64 {
        preconditionInEventLoop()
        return pollWindow.current
    }

    /// Whether `stop()` was called. Work sent to a stopped loop may never run.
    public var isStopped: Bool { stopRequested.load(ordering: .acquiring) }

    /// Asks the loop to return from `run()` after its current iteration.
    public func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        execute {}
    }

    // MARK: Registration (loop thread only)

    /// A handle for one registered descriptor.
    public struct RegistrationID: Hashable, Sendable {
        fileprivate let slot: Int
        fileprivate let generation: UInt32
    }

    /// Watches `fd` for readability (and writability when `write` is true).
    /// `exclusive` (EPOLLEXCLUSIVE) is for one listening socket watched by several
    /// loops: a new connection wakes one loop, not all of them.
    /// The loop does not retain `handler`: the handler must `unregister` before it dies.
    public func register(_ fd: Int32, handler: any EventLoopSelectable, write: Bool = false,
                         exclusive: Bool = false) throws(SystemError) -> RegistrationID {
        preconditionInEventLoop()
        generation &+= 1
        let slot: Int
        if let free = freeSlots.popLast() { slot = free } else {
            slot = registrations.count
            registrations.append(nil)
        }
        registrations[slot] = Registration(fd: fd, generation: generation, handler: handler, writeInterest: write)
        // EPOLLEXCLUSIVE allows only EPOLLIN/EPOLLOUT beside it (else EINVAL).
        let events = exclusive ? EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue : Self.mask(write: write)
        var event = epoll_event(events: events, data: epoll_data_t(u64: Self.token(slot, generation)))
        do {
            _ = try syscallChecked("epoll_ctl(ADD)") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
        } catch {
            registrations[slot] = nil
            freeSlots.append(slot)
            throw error
        }
        return RegistrationID(slot: slot, generation: generation)
    }

    /// Sets which readiness the loop reports: pausing reads (`read: false`) is how a
    /// connection applies backpressure without spinning on a level-triggered fd.
    public func setInterest(_ id: RegistrationID, read: Bool, write: Bool) {
        preconditionInEventLoop()
        guard var registration = registrations[id.slot], registration.generation == id.generation,
              registration.writeInterest != write || registration.readInterest != read else { return }
        registration.writeInterest = write
        registration.readInterest = read
        registrations[id.slot] = registration
        var event = epoll_event(events: Self.mask(read: read, write: write),
                                data: epoll_data_t(u64: Self.token(id.slot, id.generation)))
        _ = epoll_ctl(epollFD, EPOLL_CTL_MOD, registration.fd, &event)
    }

    /// Stops watching; events already fetched for it are dropped. Call before closing the fd.
    public func unregister(_ id: RegistrationID) {
        preconditionInEventLoop()
        guard let registration = registrations[id.slot], registration.generation == id.generation else { return }
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, registration.fd, nil)
        registrations[id.slot] = nil
        freeSlots.append(id.slot)
    }

    private static func mask(read: Bool = true, write: Bool) -> UInt32 {
        (read ? EPOLLIN.rawValue | EPOLLRDHUP.rawValue : 0) | (write ? EPOLLOUT.rawValue : 0)
    }

    private static func token(_ slot: Int, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(slot)
    }

    // MARK: Flush and timers (loop thread only)

    /// Queues `target.eventLoopFlush()` for the end of this iteration (once).
    public func scheduleFlush(_ target: any EventLoopFlushable) {
        preconditionInEventLoop()
        if flushQueued.insert(ObjectIdentifier(target)).inserted {
            flushQueue.append(target)
        }
    }

    /// A scheduled timer; cancel it with `cancelTimer`.
    public struct TimerID: Hashable, Sendable {
        let value: UInt64
    }

    /// Runs `work` on the loop after `delay`.
    @discardableResult
    public func schedule(after delay: Duration, _ work: @escaping () -> Void) -> TimerID {
        preconditionInEventLoop()
        return TimerID(value: timers.add(deadline: MonotonicClock.nanoseconds() &+ delay.nanoseconds, work))
    }

    public func cancelTimer(_ id: TimerID) {
        preconditionInEventLoop()
        timers.cancel(id.value)
    }

    // MARK: Running

    /// Runs the loop on the calling thread until `stop()`.
    public func run() {
        loopThread.store(UInt(pthread_self()), ordering: .releasing)
        tether_name_thread(name)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !stopRequested.load(ordering: .relaxed) {
            runWork()
            // One clock read per iteration (it shows in profiles): the sleep computed from it
            // below may come out longer by this iteration's work, microseconds against the
            // poll's millisecond resolution.
            let now = MonotonicClock.nanoseconds()
            for timer in timers.popDue(now: now) { timer() }
            runWork()
            flush()

            var deadline = timers.nextDeadline ?? .max
            if !running.isEmpty || stopRequested.load(ordering: .relaxed) { deadline = now }
            let count = deadline <= now || pollWindow.ceiling == 0
                ? waitForEvents(&events, timeout: Self.milliseconds(until: deadline, from: now))
                : pollThenWait(&events, deadline: deadline)
            guard count > 0 else { continue }
            for i in 0..<Int(count) {
                dispatch(events[i])
            }
        }
        runWork()
        loopThread.store(0, ordering: .releasing)
    }

    /// Waits for events until `deadline` (the next timer; `.max`: none), polling first for
    /// the current busy-poll window, and adapts the window to how long the loop was idle.
    private func pollThenWait(_ events: inout [epoll_event], deadline: Int64) -> Int32 {
        let start = MonotonicClock.nanoseconds()
        var now = start
        if pollWindow.current > 0 {
            let end = min(start &+ pollWindow.current, deadline)
            repeat {
                let count = epollWait(&events, timeout: 0)
                // Work from other threads lands in the inbox without a wake-up while we poll.
                if count != 0 || !inbox.withLock({ $0.isEmpty }) || stopRequested.load(ordering: .relaxed) {
                    return count
                }
                sched_yield()
                now = MonotonicClock.nanoseconds()
            } while now < end
        }
        let count = waitForEvents(&events, timeout: Self.milliseconds(until: deadline, from: now))
        let timedOut = count == 0 && inbox.withLock { $0.isEmpty }
        pollWindow.slept(idle: MonotonicClock.nanoseconds() - start, timedOut: timedOut)
        return count
    }

    /// Waits up to `timeout` ms (-1: no limit) for events, marked asleep so that work
    /// handed over from other threads wakes the loop.
    private func waitForEvents(_ events: inout [epoll_event], timeout: Int32) -> Int32 {
        waker.sleeping.store(true, ordering: .sequentiallyConsistent)
        var timeout = timeout
        if !inbox.withLock({ $0.isEmpty }) || stopRequested.load(ordering: .relaxed) { timeout = 0 }
        let count = epollWait(&events, timeout: timeout)
        waker.sleeping.store(false, ordering: .sequentiallyConsistent)
        return count
    }

    private func epollWait(_ events: inout [epoll_event], timeout: Int32) -> Int32 {
        events.withUnsafeMutableBufferPointer { buffer in
            epoll_wait(epollFD, buffer.baseAddress, Int32(buffer.count), timeout)
        }
    }

    /// `epoll_wait`'s timeout for `deadline`: whole milliseconds, rounded up; -1 for `.max`.
    static func milliseconds(until deadline: Int64, from now: Int64) -> Int32 {
        if deadline == .max { return -1 }
        let left = deadline - now
        return left <= 0 ? 0 : Int32(clamping: left / 1_000_000 + (left % 1_000_000 == 0 ? 0 : 1))
    }

    private func dispatch(_ event: epoll_event) {
        let token = event.data.u64
        if token == Self.wakeToken {
            var value: UInt64 = 0
            _ = Glibc.read(wakeFD, &value, 8)
            waker.woke()
            return
        }
        let slot = Int(token & 0xFFFF_FFFF)
        let generation = UInt32(token >> 32)
        let flags = event.events
        // Re-check before each callback: an earlier callback may have unregistered it.
        func live() -> (any EventLoopSelectable)? {
            guard slot < registrations.count, let r = registrations[slot], r.generation == generation else { return nil }
            return r.handler
        }
        if flags & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0, let handler = live() {
            handler.eventLoopReadable()
        }
        if flags & EPOLLOUT.rawValue != 0, let handler = live() {
            handler.eventLoopWritable()
        }
        if flags & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0, let handler = live() {
            handler.eventLoopHangup()
        }
    }

    /// Runs queued work; work queued meanwhile runs in later rounds, at most 16
    /// rounds per iteration so a self-rescheduling job cannot starve I/O.
    private func runWork() {
        for _ in 0..<16 {
            // Take `running`, leaving it the spare's (empty) storage: no allocation per round.
            var batch: [Work] = []
            swap(&batch, &spareRunning)
            swap(&batch, &running)
            let handedOver = inbox.withLock { inbox -> [SendableWork] in
                guard !inbox.isEmpty else { return [] }
                defer { inbox = [] }
                return inbox
            }
            batch.append(contentsOf: handedOver.lazy.map(\.work))
            if batch.isEmpty {
                spareRunning = batch
                return
            }
            for work in batch {
                switch work {
                case .closure(let body):
                    body()
                case .job(let job):
                    job.runSynchronously(on: asUnownedTaskExecutor())
                }
            }
            batch.removeAll(keepingCapacity: true)
            spareRunning = batch
        }
    }

    private func flush() {
        while !flushQueue.isEmpty {
            let queue = flushQueue
            flushQueue.removeAll(keepingCapacity: true)
            flushQueued.removeAll(keepingCapacity: true)
            for target in queue { target.eventLoopFlush() }
        }
    }
}

// MARK: - Swift concurrency

extension EventLoop: TaskExecutor {
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}

// MARK: - Waking

/// When a hand-over must write the loop's eventfd: only while the loop may be asleep, and
/// only once until the loop has read it. A burst of hand-overs to a sleeping loop (a commit
/// resuming a dozen streams' handlers) then costs one write and one wake-up, not one each
/// before the loop gets a CPU to mark itself awake.
///
/// No wake-up is lost: the loop sets `sleeping` and then checks its inbox before it waits,
/// and a hand-over appends to the inbox before `shouldWake` reads `sleeping`
/// (sequentially consistent, so one of the two sees the other). `pending` is cleared only
/// when the loop reads the eventfd, which holds the write of whoever set it.
final class LoopWaker: Sendable {
    let sleeping = Atomic<Bool>(false)
    private let pending = Atomic<Bool>(false)

    /// Whether the caller, having queued work, must write the eventfd.
    func shouldWake() -> Bool {
        sleeping.load(ordering: .sequentiallyConsistent)
            && !pending.exchange(true, ordering: .sequentiallyConsistent)
    }

    /// The loop read the eventfd: the next hand-over to a sleeping loop writes it again.
    func woke() {
        pending.store(false, ordering: .sequentiallyConsistent)
    }
}

// MARK: - Busy polling

/// How long an idle loop polls before it sleeps. Adapted as KVM adapts its halt-polling
/// window, from the whole idle period (poll and sleep): a period that ended in a sleep
/// within the ceiling grows the window (x2, starting from a quarter of the ceiling); one
/// that outlasted the ceiling, or that only a timer ended, halves it, and below a quarter of
/// the ceiling it closes. A period that polling ended leaves it alone. So periodic timers
/// alone never keep a loop polling.
struct BusyPollWindow {
    /// The most the window may grow to, in nanoseconds; 0 never polls.
    let ceiling: Int64
    /// The window now, in nanoseconds.
    private(set) var current: Int64 = 0

    init(ceiling: Int64) {
        self.ceiling = max(0, ceiling)
    }

    /// Adapts to an idle period of `idle` nanoseconds (polling and sleep) that ended in a
    /// sleep; `timedOut` when no event or handed-over work ended it.
    mutating func slept(idle: Int64, timedOut: Bool) {
        if idle > ceiling || timedOut {
            current /= 2
            if current < ceiling / 4 { current = 0 }
        } else if idle > current {
            current = min(ceiling, max(current * 2, ceiling / 4))
        }
    }
}

// MARK: - Time

/// CLOCK_MONOTONIC, for measuring durations in one process: the one helper for it.
public enum MonotonicClock {
    /// CLOCK_MONOTONIC in nanoseconds.
    public static func nanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return ns &+ attoseconds / 1_000_000_000
    }
}

/// A binary min-heap of timers keyed by deadline; cancelled timers are dropped lazily.
struct TimerHeap {
    private var heap: [(deadline: Int64, id: UInt64)] = []
    private var work: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 0

    var nextDeadline: Int64? {
        mutating get {
            while let top = heap.first, work[top.id] == nil { pop() }
            return heap.first?.deadline
        }
    }

    mutating func add(deadline: Int64, _ body: @escaping () -> Void) -> UInt64 {
        nextID += 1
        work[nextID] = body
        heap.append((deadline, nextID))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i].deadline < heap[parent].deadline else { break }
            heap.swapAt(i, parent)
            i = parent
        }
        return nextID
    }

    mutating func cancel(_ id: UInt64) {
        work[id] = nil
    }

    /// Removes and returns the timers due at `now`, in deadline order. The caller
    /// runs them after this returns, so a timer may schedule another.
    mutating func popDue(now: Int64) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = heap.first, top.deadline <= now {
            pop()
            if let body = work.removeValue(forKey: top.id) { due.append(body) }
        }
        return due
    }

    private mutating func pop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count, heap[l].deadline < heap[smallest].deadline { smallest = l }
            if r < heap.count, heap[r].deadline < heap[smallest].deadline { smallest = r }
            if smallest == i { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }
}
