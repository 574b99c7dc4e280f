import Testing
@testable import TetherAgent

/// The agent's lease arithmetic, on hand-made instants: TTL 10 s, kill grace 5 s, so a
/// lease-loss stop gets 2.5 s of grace, the check runs every 250 ms and a lease may run
/// 10 - 1 - 2.5 - 0.25 = 6.25 s past its last confirmation.
@Suite struct LeaseDeadlinesTests {
    let t0 = ContinuousClock.now

    private func welcomed() -> LeaseDeadlines {
        var deadlines = LeaseDeadlines(killGrace: .seconds(5))
        deadlines.helloSent(at: t0)
        deadlines.welcomed(ttl: .seconds(10), confirmedLeaseIDs: [])
        return deadlines
    }

    @Test func budgetLeavesTheMarginTheLossGraceAndOneCheckPeriod() {
        let deadlines = welcomed()
        #expect(deadlines.lossGrace == .milliseconds(2_500))
        #expect(deadlines.checkPeriod == .milliseconds(250))
        #expect(deadlines.budget == .milliseconds(6_250))
        // The task is dead by TTL - margin after its confirmation: the server keeps it a full TTL.
        #expect(deadlines.budget! + deadlines.checkPeriod + deadlines.lossGrace == .seconds(9))
    }

    @Test func aGrantStandsFromTheLastConfirmationAndIsRefusedOnceThatIsTooOld() {
        var deadlines = welcomed()
        #expect(deadlines.granted("a", at: t0 + .seconds(6)) == nil)
        #expect(deadlines.overdue(at: t0 + .milliseconds(6_249)).isEmpty)
        #expect(deadlines.overdue(at: t0 + .milliseconds(6_250)).map(\.leaseID) == ["a"])
        let refusal = deadlines.granted("b", at: t0 + .milliseconds(6_250))
        #expect(refusal?.contains("arrived 6.25 s after the server last confirmed") == true, "\(String(describing: refusal))")
        #expect(!deadlines.overdue(at: t0 + .seconds(60)).map(\.leaseID).contains("b"))
    }

    @Test func anAcknowledgedHeartbeatRenewsOnlyTheLeasesItNamedFromWhenItWasSent() {
        var deadlines = welcomed()
        _ = deadlines.granted("a", at: t0 + .seconds(1))
        _ = deadlines.granted("b", at: t0 + .seconds(1))
        let first = deadlines.heartbeatSent(naming: ["a"], at: t0 + .seconds(2))
        let second = deadlines.heartbeatSent(naming: ["a", "b"], at: t0 + .seconds(3))
        deadlines.acknowledged(heartbeat: first)
        // a: confirmed at 2 s; b: still at the Welcome (0 s).
        #expect(deadlines.overdue(at: t0 + .milliseconds(6_250)).map(\.leaseID) == ["b"])
        #expect(deadlines.overdue(at: t0 + .milliseconds(8_250)).map(\.leaseID) == ["a", "b"])
        deadlines.acknowledged(heartbeat: second)
        #expect(deadlines.overdue(at: t0 + .milliseconds(9_249)).isEmpty)
        // An ack for an unknown id (or one already handled) changes nothing.
        deadlines.acknowledged(heartbeat: first)
        deadlines.acknowledged(heartbeat: 99)
        #expect(deadlines.overdue(at: t0 + .milliseconds(9_250)).map(\.leaseID) == ["a", "b"])
        // Grants take the newest confirmation: the second heartbeat's send time.
        #expect(deadlines.granted("c", at: t0 + .seconds(9)) == nil)
        deadlines.ended("a")
        deadlines.ended("b")
        #expect(deadlines.overdue(at: t0 + .milliseconds(9_250)).map(\.leaseID) == ["c"])
    }

    @Test func aNewStreamRestartsHeartbeatIDsAndConfirmsTheResumedLeasesAtItsHello() {
        var deadlines = welcomed()
        _ = deadlines.granted("a", at: t0)
        let old = deadlines.heartbeatSent(naming: ["a"], at: t0 + .seconds(1))
        deadlines.helloSent(at: t0 + .seconds(5))
        deadlines.acknowledged(heartbeat: old)  // from the old stream: ignored
        #expect(deadlines.overdue(at: t0 + .milliseconds(6_250)).map(\.leaseID) == ["a"])
        deadlines.welcomed(ttl: .seconds(10), confirmedLeaseIDs: ["a"])
        #expect(deadlines.overdue(at: t0 + .milliseconds(11_249)).isEmpty)
        #expect(deadlines.heartbeatSent(naming: [], at: t0 + .seconds(6)) == 1)
    }

    @Test func aServerThatAnnouncesNoTTLLeavesTasksAlone() {
        var deadlines = LeaseDeadlines(killGrace: .seconds(5))
        deadlines.helloSent(at: t0)
        deadlines.welcomed(ttl: .zero, confirmedLeaseIDs: [])
        #expect(deadlines.budget == nil)
        #expect(deadlines.granted("a", at: t0 + .seconds(3600)) == nil)
        #expect(deadlines.overdue(at: t0 + .seconds(7200)).isEmpty)
    }
}
