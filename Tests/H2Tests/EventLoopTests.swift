import Testing
@testable import H2

/// Busy polling: the adaptive window (pure), and a polling loop that still takes work
/// handed over from other threads and fires its timers without waiting out the window.
@Suite struct EventLoopTests {
    static let ms: Int64 = 1_000_000

    @Test func theWindowGrowsWhileIdlePeriodsEndWithinTheCeiling() {
        var window = BusyPollWindow(ceiling: 200_000)
        #expect(window.current == 0)
        window.slept(idle: 5_000)
        #expect(window.current == 50_000) // a quarter of the ceiling to start
        window.slept(idle: 60_000)
        #expect(window.current == 100_000)
        window.slept(idle: 150_000)
        #expect(window.current == 200_000)
        window.slept(idle: 190_000)
        #expect(window.current == 200_000) // never past the ceiling
    }

    @Test func aSleepShorterThanTheWindowLeavesItAlone() {
        // A due timer cut the poll short: nothing was learned about the next event.
        var window = BusyPollWindow(ceiling: 200_000)
        window.slept(idle: 1_000)
        window.slept(idle: 10_000)
        #expect(window.current == 50_000)
    }

    @Test func idlePeriodsLongerThanTheCeilingShrinkTheWindowToZero() {
        var window = BusyPollWindow(ceiling: 200_000)
        for idle: Int64 in [5_000, 60_000, 150_000] { window.slept(idle: idle) }
        #expect(window.current == 200_000)
        window.slept(idle: 5 * Self.ms)
        #expect(window.current == 100_000)
        window.slept(idle: 5 * Self.ms)
        #expect(window.current == 50_000)
        window.slept(idle: 5 * Self.ms)
        #expect(window.current == 25_000) // an eighth of the ceiling still polls
        window.slept(idle: 5 * Self.ms)
        #expect(window.current == 0)
    }

    @Test func aZeroCeilingNeverPolls() {
        var window = BusyPollWindow(ceiling: 0)
        window.slept(idle: 0)
        window.slept(idle: 1_000)
        #expect(window.current == 0)
        #expect(BusyPollWindow(ceiling: -5).ceiling == 0)
    }

    @Test func aDueTimerCutsThePollShort() {
        var window = BusyPollWindow(ceiling: 4 * Self.ms)
        window.slept(idle: 1_000)
        #expect(window.current == Self.ms)
        #expect(window.pollEnd(start: 1_000, timeout: -1) == 1_000 + Self.ms)   // no timer
        #expect(window.pollEnd(start: 1_000, timeout: 5) == 1_000 + Self.ms)    // timer after the window
        window.slept(idle: 2 * Self.ms)
        window.slept(idle: 3 * Self.ms)
        #expect(window.current == 4 * Self.ms)
        #expect(window.pollEnd(start: 1_000, timeout: 2) == 1_000 + 2 * Self.ms) // timer inside it
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
    // (0.5 s or more): 200 of them exceed the time limit.
    @Test(.timeLimit(.minutes(1)))
    func workHandedOverWhileThePollRunsIsRunAtOnce() async throws {
        let loop = try await Self.pollingLoop()
        defer { loop.stop() }
        for i in 0..<200 {
            #expect(await Self.run(on: loop) { i } == i)
        }
        #expect(await Self.run(on: loop) { loop.busyPollWindow } >= 500 * Self.ms) // still polling
    }

    // Without the timer cutting the poll short, each 1 ms timer waits out the window
    // (0.5 s or more): 150 of them exceed the time limit.
    @Test(.timeLimit(.minutes(1)))
    func aTimerDueDuringThePollFiresOnTime() async throws {
        let loop = try await Self.pollingLoop()
        defer { loop.stop() }
        for _ in 0..<150 {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                loop.execute {
                    loop.schedule(after: .milliseconds(1)) { continuation.resume() }
                }
            }
        }
    }
}
