import Testing
@testable import H2

/// Busy polling: the adaptive window (pure), and a polling loop that still takes work
/// handed over from other threads and fires its timers without waiting out the window.
@Suite struct EventLoopTests {
    static let ms: Int64 = 1_000_000

    @Test func theWindowGrowsWhileIdlePeriodsEndWithinTheCeiling() {
        var window = BusyPollWindow(ceiling: 200_000)
        #expect(window.current == 0)
        window.slept(idle: 5_000, timedOut: false)
        #expect(window.current == 50_000) // a quarter of the ceiling to start
        window.slept(idle: 60_000, timedOut: false)
        #expect(window.current == 100_000)
        window.slept(idle: 150_000, timedOut: false)
        #expect(window.current == 200_000)
        window.slept(idle: 190_000, timedOut: false)
        #expect(window.current == 200_000) // never past the ceiling
    }

    @Test func aSleepShorterThanTheWindowLeavesItAlone() {
        var window = BusyPollWindow(ceiling: 200_000)
        window.slept(idle: 1_000, timedOut: false)
        window.slept(idle: 10_000, timedOut: false)
        #expect(window.current == 50_000)
    }

    @Test func idlePeriodsLongerThanTheCeilingCloseTheWindow() {
        var window = BusyPollWindow(ceiling: 200_000)
        for idle: Int64 in [5_000, 60_000, 150_000] { window.slept(idle: idle, timedOut: false) }
        #expect(window.current == 200_000)
        window.slept(idle: 5 * Self.ms, timedOut: false)
        #expect(window.current == 100_000)
        window.slept(idle: 5 * Self.ms, timedOut: false)
        #expect(window.current == 50_000) // a quarter of the ceiling still polls
        window.slept(idle: 5 * Self.ms, timedOut: false)
        #expect(window.current == 0)
    }

    @Test func periodicTimersAloneCloseTheWindow() {
        // A timer every 1 ms under a 4 ms ceiling: each idle period is within the
        // ceiling, but only the timer ended it.
        var window = BusyPollWindow(ceiling: 4 * Self.ms)
        for idle in [Self.ms / 2, 2 * Self.ms, 3 * Self.ms] { window.slept(idle: idle, timedOut: false) }
        #expect(window.current == 4 * Self.ms)
        for _ in 0..<3 { window.slept(idle: Self.ms, timedOut: true) }
        #expect(window.current == 0)
    }

    @Test func aZeroCeilingNeverPolls() {
        var window = BusyPollWindow(ceiling: 0)
        window.slept(idle: 0, timedOut: false)
        window.slept(idle: 1_000, timedOut: false)
        #expect(window.current == 0)
        #expect(BusyPollWindow(ceiling: -5).ceiling == 0)
    }

    @Test func theSleepIsRoundedUpToWholeMillisecondsOnce() {
        #expect(EventLoop.milliseconds(until: .max, from: 0) == -1)
        #expect(EventLoop.milliseconds(until: 5, from: 10) == 0)
        #expect(EventLoop.milliseconds(until: 10, from: 10) == 0)
        #expect(EventLoop.milliseconds(until: 10 + 1, from: 10) == 1)
        #expect(EventLoop.milliseconds(until: 10 + 2 * Self.ms, from: 10) == 2)
        #expect(EventLoop.milliseconds(until: 10 + 2 * Self.ms + 1, from: 10) == 3)
        #expect(EventLoop.milliseconds(until: .max - 1, from: 0) == .max)
    }

    // Without the pending flag every hand-over that lands before the woken loop runs
    // writes the eventfd again: a commit resuming ten streams' handlers cost ten writes.
    @Test func aBurstOfHandOversToASleepingLoopWakesItOnce() {
        let waker = LoopWaker()
        #expect(!waker.shouldWake(), "an awake loop needs no wake-up")
        waker.sleeping.store(true, ordering: .sequentiallyConsistent)
        #expect((0..<10).filter { _ in waker.shouldWake() }.count == 1)
        waker.woke()   // the loop read the eventfd, and went back to sleep
        #expect(waker.shouldWake(), "the next hand-over must wake it again")
        #expect(!waker.shouldWake())
    }

    /// A loop polling for half a second (a quarter of its two-second ceiling) before it sleeps.
    static func pollingLoop() async throws -> EventLoop {
        let loop = try EventLoop.start(name: "busy-poll-test", busyPoll: .seconds(2))
        for _ in 0..<4 { await run(on: loop) {} }
        let window = await run(on: loop) { loop.busyPollWindow }
        try #require(window >= 500 * Self.ms, "the window did not grow: \(window) ns")
        return loop
    }

    /// Runs `body` on `loop`, handed over from this (other) thread, and returns its result.
    static func run<T: Sendable>(on loop: EventLoop, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            loop.execute { continuation.resume(returning: body()) }
        }
    }

    // Without the inbox check while polling, each hand-over waits out the window
    // (0.5 s or more): 20 of them take 10 s.
    @Test func workHandedOverWhileThePollRunsIsRunAtOnce() async throws {
        let loop = try await Self.pollingLoop()
        defer { loop.stop() }
        let clock = ContinuousClock()
        let started = clock.now
        for i in 0..<20 {
            #expect(await Self.run(on: loop) { i } == i)
        }
        let elapsed = clock.now - started
        #expect(elapsed < .seconds(5), "20 hand-overs took \(elapsed)")
        #expect(await Self.run(on: loop) { loop.busyPollWindow } >= 500 * Self.ms) // still polling
    }

    // Without the timer cutting the poll short, a 1 ms timer waits out the window (0.5 s).
    @Test func aTimerDueDuringThePollFiresOnTime() async throws {
        let loop = try await Self.pollingLoop()
        defer { loop.stop() }
        let clock = ContinuousClock()
        let elapsed = await withCheckedContinuation { (continuation: CheckedContinuation<Duration, Never>) in
            loop.execute {
                let scheduled = clock.now
                loop.schedule(after: .milliseconds(1)) { continuation.resume(returning: clock.now - scheduled) }
            }
        }
        #expect(elapsed < .milliseconds(250), "a 1 ms timer fired after \(elapsed)")
    }

    // Hand-overs spaced around a 50 µs window, so that many land while the loop moves from
    // polling to sleeping. A lost wake-up (work queued, loop asleep with no timer) hangs
    // the test until its time limit.
    @Test(.timeLimit(.minutes(1)))
    func handOversAroundThePollToSleepStepAreNeverLost() async throws {
        let loop = try EventLoop.start(name: "busy-poll-race", busyPoll: .microseconds(50))
        defer { loop.stop() }
        let clock = ContinuousClock()
        var generator = SystemRandomNumberGenerator()
        for i in 0..<20_000 {
            #expect(await Self.run(on: loop) { i } == i)
            let until = clock.now + .nanoseconds(Int.random(in: 0...120_000, using: &generator))
            while clock.now < until {}
        }
    }

    // Four tasks (on the pool's threads) handing work to a loop that sleeps between
    // hand-overs, so that one's wake-up is often still pending when another's work arrives.
    // A lost wake-up hangs the test until its time limit.
    @Test(.timeLimit(.minutes(1)))
    func concurrentHandOversToASleepingLoopAreNeverLost() async throws {
        let loop = try EventLoop.start(name: "wake-race")
        defer { loop.stop() }
        let total = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var sum = 0
                    for i in 0..<5_000 {
                        sum += await Self.run(on: loop) { i }
                        let until = ContinuousClock.now + .nanoseconds(Int.random(in: 0...50_000, using: &generator))
                        while ContinuousClock.now < until {}
                    }
                    return sum
                }
            }
            return await group.reduce(0, +)
        }
        #expect(total == 4 * (0..<5_000).reduce(0, +))
    }
}
