import Testing
import TetherScheduler

@Suite struct SchedulerClockTests {
    @Test func manualClockMovesOnlyWhenAdvanced() {
        let clock = ManualClock(Instant(millisecondsSinceEpoch: 1_000))
        #expect(clock.now() == Instant(millisecondsSinceEpoch: 1_000))
        clock.advance(milliseconds: 250)
        #expect(clock.now() == Instant(millisecondsSinceEpoch: 1_250))
        clock.set(Instant(millisecondsSinceEpoch: 5_000))
        #expect(clock.now().millisecondsSinceEpoch == 5_000)
    }

    @Test func systemClockNeverGoesBackwards() {
        let clock = SystemClock()
        var previous = clock.now()
        for _ in 0..<1_000 {
            let next = clock.now()
            #expect(next >= previous)
            previous = next
        }
        #expect(previous.millisecondsSinceEpoch > 1_700_000_000_000)
    }
}
