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

    @Test func aGroupIsKilledAtItsDeadlineAndAMovedOneIsNot() async throws {
        let keeper = try LeaseKeeper()
        let (moved, forgotten, due) = (try sleeper(), try sleeper(), try sleeper())
        let now = ContinuousClock.now
        keeper.watch([(moved, now + .milliseconds(100)), (forgotten, now + .milliseconds(100)), (due, now + .milliseconds(300))])
        keeper.watch([(moved, now + .seconds(3600)), (forgotten, now + .seconds(3600))])
        #expect(await waitUntil { processHasEnded(due) })
        #expect(reap(due) == .signalled(SIGKILL))
        // Both were due 200 ms before `due`: only the move kept them alive.
        #expect(!processHasEnded(moved) && !processHasEnded(forgotten))
        for pid in [moved, forgotten] {
            kill(pid, SIGKILL)
            _ = reap(pid)
        }
        #expect(keeper.dropCount == 0)
    }

    @Test func whenItsAgentGoesAwayTheKeeperKillsWhatItWatchesAndExits() async throws {
        var keeper: LeaseKeeper? = try LeaseKeeper()
        let task = try sleeper()
        keeper!.watch([(task, .now + .seconds(3600))])
        let keeperPID = keeper!.pid
        keeper = nil  // the pipe closes as it would when the agent dies; deinit reaps the keeper
        #expect(await waitUntil { processHasEnded(task) })
        #expect(reap(task) == .signalled(SIGKILL))
        #expect(kill(keeperPID, 0) != 0)
    }

    /// A record the full pipe of a keeper that is not reading refuses is lost; it is counted,
    /// so the agent sends its deadlines again (`AgentDaemon`), and the repeat takes effect.
    @Test func aRecordLostToAFullPipeIsCountedAndTakesEffectWhenSentAgain() async throws {
        let keeper = try LeaseKeeper()
        let (filler, task, marker) = (try sleeper(), try sleeper(), try sleeper())
        kill(keeper.pid, SIGSTOP)
        let far = ContinuousClock.now + .seconds(3600)
        for _ in 0..<1_000 where keeper.dropCount == 0 { keeper.watch(Array(repeating: (filler, far), count: 256)) }
        #expect(keeper.dropCount > 0, "the pipe never filled")
        let drops = keeper.dropCount
        keeper.watch([(task, .now + .milliseconds(100))])  // refused: the pipe is still full
        #expect(keeper.dropCount == drops + 1)
        kill(keeper.pid, SIGCONT)
        // The marker is due after the task would have been: once it is killed, the task's
        // lost deadline has passed unseen. It goes through once the keeper has read the backlog.
        var sent = false
        for _ in 0..<500 where !sent {
            let before = keeper.dropCount
            keeper.watch([(marker, .now + .milliseconds(300))])
            sent = keeper.dropCount == before
            if !sent { usleep(10_000) }
        }
        #expect(sent)
        #expect(await waitUntil { processHasEnded(marker) })
        #expect(!processHasEnded(task), "a lost record was acted on")
        keeper.watch([(task, .now + .milliseconds(100))])  // sent again
        #expect(await waitUntil { processHasEnded(task) })
        #expect(reap(task) == .signalled(SIGKILL))
        #expect(reap(marker) == .signalled(SIGKILL))
        kill(filler, SIGKILL)
        _ = reap(filler)
    }

    @Test func theKeeperIsNotStoppedWithItsAgentsProcessGroup() throws {
        let keeper = try LeaseKeeper()
        #expect(getpgid(keeper.pid) == keeper.pid)
    }
}

extension LeaseKeeperTests {
    /// A task that ended needs no `forget`: the keeper sees the exit (pidfd) and never kills
    /// its group, even once the pid is a new process's.
    @Test func anEndedTaskIsDroppedWithoutAForgetAndItsGroupIsNeverKilled() async throws {
        let keeper = try LeaseKeeper()
        let ended = try sleeper()
        let now = ContinuousClock.now
        keeper.watch([(ended, now + .milliseconds(300))])
        kill(ended, SIGKILL)
        _ = reap(ended)
        // A later task in the keeper's sight tells when the first deadline has passed.
        let later = try sleeper()
        keeper.watch([(later, now + .milliseconds(600))])
        #expect(await waitUntil { processHasEnded(later) })
        #expect(reap(later) == .signalled(SIGKILL))
        #expect(keeper.dropCount == 0)
    }

    @Test func manyDeadlinesGoInAtomicWritesAndEveryOneHolds() async throws {
        let keeper = try LeaseKeeper()
        let tasks = try (0..<3).map { _ in try sleeper() }
        // 600 records: three writes of at most PIPE_BUF bytes; the last word on each task wins.
        var records: [(processGroup: pid_t, deadline: ContinuousClock.Instant)] = []
        for round in 0..<200 {
            for task in tasks { records.append((task, .now + (round == 199 ? .milliseconds(200) : .seconds(3600)))) }
        }
        keeper.watch(records)
        #expect(await waitUntil { tasks.allSatisfy(processHasEnded) })
        for task in tasks { #expect(reap(task) == .signalled(SIGKILL)) }
    }
}
