import CLinux
import H2
import Glibc
import Synchronization

/// The agent's lease keeper: a small child process (`tether_lease_keeper_start`) that
/// SIGKILLs a task's process group when the task's lease deadline passes. The agent stops
/// its own tasks in time (`LeaseDeadlines`); the keeper is the backstop for when the agent
/// cannot: stopped by SIGSTOP, starved, or hung on a disk. When the agent exits, however
/// it exits, the keeper kills whatever it still watches and exits too.
///
/// Deadlines travel as CLOCK_BOOTTIME nanoseconds, the clock `ContinuousClock` reads on
/// Linux. Each `watch` is one pipe write, and so one wake-up of the keeper: the cost per
/// task. Where the kernel has pidfds the keeper notices exits itself and `forget` writes
/// nothing. Owns the pipe's write end (closed in `deinit`, which then reaps the keeper).
/// Thread-safe: each write is atomic (at most `PIPE_BUF` bytes).
final class LeaseKeeper: Sendable {
    let pid: pid_t
    private let pipe: Int32
    /// The keeper watches each task's pidfd: an ended task needs no `forget`.
    private let seesExits: Bool
    /// Writes that failed (the pipe was full: the keeper is not reading), ever.
    private let drops = Atomic<Int>(0)

    /// - Throws: `SystemError` from pipe or clone.
    init() throws(SystemError) {
        var fd: Int32 = -1
        let pid = tether_lease_keeper_start(&fd)
        guard pid > 0 else { throw SystemError("start the lease keeper (clone)", errno: errno) }
        self.pid = pid
        pipe = fd
        _ = fcntl(pipe, F_SETFL, O_NONBLOCK)  // a keeper that stops reading must never block the agent
        let probe = tether_pidfd_open(getpid())
        seesExits = probe >= 0
        if probe >= 0 { close(probe) }
    }

    deinit {
        close(pipe)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Kill each process group at its deadline unless moved or forgotten first.
    func watch(_ deadlines: some Sequence<(processGroup: pid_t, deadline: ContinuousClock.Instant)>) {
        let now = ContinuousClock.now, boot = tether_boottime_ns()
        send(deadlines.map { tether_keeper_record(pgid: $0.processGroup, reserved: 0,
                                                  deadline_ns: max(1, boot &+ now.duration(to: $0.deadline).wholeNanoseconds)) })
    }

    /// Stop watching `processGroup` (its task ended).
    func forget(_ processGroup: pid_t) {
        guard !seesExits else { return }
        send([tether_keeper_record(pgid: processGroup, reserved: 0, deadline_ns: 0)])
    }

    /// How many writes have failed so far. An owner that sees the count change sends every
    /// deadline it holds again (a record only sets a group's deadline, so a repeat is
    /// harmless); a count, not a flag, so each of several owners sharing a keeper notices.
    var dropCount: Int { drops.load(ordering: .relaxed) }

    /// Writes `records`, at most `PIPE_BUF` bytes a write so that each is atomic.
    private func send(_ records: [tether_keeper_record]) {
        let perWrite = Int(PIPE_BUF) / MemoryLayout<tether_keeper_record>.stride
        var start = 0
        while start < records.count {
            let chunk = records[start..<min(records.count, start + perWrite)]
            let written = chunk.withUnsafeBytes { bytes in
                var result: Int
                repeat { result = write(pipe, bytes.baseAddress, bytes.count) } while result < 0 && errno == EINTR
                return result == bytes.count
            }
            if !written { drops.add(1, ordering: .relaxed) }
            start += perWrite
        }
    }
}
