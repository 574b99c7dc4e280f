import Foundation
import Glibc
import H2
import Testing
@testable import TetherAgent

/// The lease keeper against real process groups (`sleep` in groups of their own).
@Suite(.timeLimit(.minutes(1))) struct LeaseKeeperTests {
    /// `sleep 3600` leading a process group of its own.
    private func sleeper() throws -> pid_t {
        let null = FileDescriptor(owning: open("/dev/null", O_RDWR | O_CLOEXEC))
        let launch = TaskProcess.Launch(executablePath: "/bin/sleep", arguments: ["sleep", "3600"], environment: [:], workingDirectory: nil)
        return try TaskProcess.spawn(launch, standardInput: null, output: null)
    }

    private func reap(_ pid: pid_t) -> TaskProcess.Termination? {
        try? TaskProcess.reap(pid).termination
    }

    @Test func aGroupIsKilledAtItsDeadlineAndAMovedOrForgottenOneIsNot() async throws {
        let keeper = try LeaseKeeper()
        let (moved, forgotten, due) = (try sleeper(), try sleeper(), try sleeper())
        let now = ContinuousClock.now
        keeper.watch(moved, until: now + .milliseconds(100))
        keeper.watch(forgotten, until: now + .milliseconds(100))
        keeper.watch(due, until: now + .milliseconds(300))
        keeper.watch(moved, until: now + .seconds(3600))
        keeper.forget(forgotten)
        #expect(await waitUntil { processHasEnded(due) })
        #expect(reap(due) == .signalled(SIGKILL))
        // Both were due 200 ms before `due`: only the move and the forget kept them alive.
        #expect(!processHasEnded(moved) && !processHasEnded(forgotten))
        for pid in [moved, forgotten] {
            kill(pid, SIGKILL)
            _ = reap(pid)
        }
        #expect(!keeper.takeDropped())
    }

    @Test func whenItsAgentGoesAwayTheKeeperKillsWhatItWatchesAndExits() async throws {
        var keeper: LeaseKeeper? = try LeaseKeeper()
        let task = try sleeper()
        keeper!.watch(task, until: .now + .seconds(3600))
        let keeperPID = keeper!.pid
        keeper = nil  // the pipe closes as it would when the agent dies; deinit reaps the keeper
        #expect(await waitUntil { processHasEnded(task) })
        #expect(reap(task) == .signalled(SIGKILL))
        #expect(kill(keeperPID, 0) != 0)
    }

    @Test func theKeeperIsNotStoppedWithItsAgentsProcessGroup() throws {
        let keeper = try LeaseKeeper()
        #expect(getpgid(keeper.pid) == keeper.pid)
    }
}
