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
/// Linux. Owns the pipe's write end (closed in `deinit`, which then reaps the keeper).
/// Thread-safe: each record is one atomic pipe write.
final class LeaseKeeper: Sendable {
    let pid: pid_t
    private let pipe: Int32
    /// Whether a record could not be written (the pipe was full: the keeper is not reading).
    private let dropped = Atomic<Bool>(false)

    /// - Throws: `SystemError` from pipe or clone.
    init() throws(SystemError) {
        var fd: Int32 = -1
        let pid = tether_lease_keeper_start(&fd)
        guard pid > 0 else { throw SystemError("start the lease keeper (clone)", errno: errno) }
        self.pid = pid
        pipe = fd
        _ = fcntl(pipe, F_SETFL, O_NONBLOCK)  // a keeper that stops reading must never block the agent
    }

    deinit {
        close(pipe)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Kill process group `processGroup` at `deadline` unless moved or forgotten first.
    func watch(_ processGroup: pid_t, until deadline: ContinuousClock.Instant) {
        send(processGroup, max(1, tether_boottime_ns() &+ ContinuousClock.now.duration(to: deadline).wholeNanoseconds))
    }

    /// Stop watching `processGroup` (its task ended).
    func forget(_ processGroup: pid_t) { send(processGroup, 0) }

    /// Whether a record was lost since the last call; the owner then sends every deadline again.
    func takeDropped() -> Bool { dropped.exchange(false, ordering: .relaxed) }

    private func send(_ processGroup: pid_t, _ deadline: Int64) {
        var record = tether_keeper_record(pgid: processGroup, reserved: 0, deadline_ns: deadline)
        let size = MemoryLayout<tether_keeper_record>.size
        let written = withUnsafeBytes(of: &record) { bytes in
            var result: Int
            repeat { result = write(pipe, bytes.baseAddress, size) } while result < 0 && errno == EINTR
            return result
        }
        if written != size { dropped.store(true, ordering: .relaxed) }
    }
}
