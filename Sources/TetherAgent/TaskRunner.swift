public import TetherWire
import Dispatch
import H2
import TetherSyntax
import Foundation
import CLinux
import Glibc
import Synchronization

/// Runs one lease attempt as a local process and reports how it went.
///
/// The command comes from the agent's own entrypoints only (the lease names one); the
/// process leads a process group of its own, reads the lease's params as a JSON object
/// on stdin, and writes stdout and stderr to the attempt's log under `log_dir` and
/// nowhere else. Its environment is described at `environment(for:entrypoint:inherited:)`.
///
/// Stopping: at its timeout (the entrypoint's or the lease's, whichever is smaller) or on
/// `cancel()`, the group gets SIGTERM, then SIGKILL after the kill grace. When the leader
/// exits, whatever it left running in its group is killed, so nothing outlives its lease.
///
/// Events: `onEvent` receives `.started` at most once, then `.finished` exactly once
/// (`.finished` alone when nothing was spawned). `.started` is delivered on the thread that
/// calls `start()`, before `start()` returns; `.finished` on the reaper's loop thread
/// (or on the thread of `start()`/`cancel()` when nothing was spawned). Keep handlers
/// short; they may block briefly (e.g. a durable outbox append), holding up the reports
/// of other tasks' exits meanwhile.
///
/// Thread-safe: `start`, `cancel` and `result` may be called from any thread. Waiting for
/// the exit never blocks Swift's cooperative pool.
public final class TaskRunner: Sendable {
    /// The process has started.
    public struct Start: Sendable, Equatable {
        /// The leader's pid, which is also the process group id.
        public var processID: Int32
        /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat`), which
        /// tells it apart from a later process with the same pid; nil if unreadable.
        public var processStartTicks: UInt64?
        /// By the agent's wall clock.
        public var startedAtUnixUs: Int64
        /// The attempt's log file.
        public var logPath: String
    }

    /// How an attempt ended; each maps to a `TaskEventKind`.
    public enum Outcome: Sendable, Equatable {
        /// Exited with code 0.
        case succeeded
        /// Exited non-zero or was killed by a signal the agent did not send.
        case failed
        /// The agent stopped it at its timeout.
        case timedOut
        /// The agent stopped it on `cancel()`.
        case cancelled
        /// Nothing ran: unknown entrypoint, bad ids, a missing program, a spawn error.
        case rejected
        /// The agent stopped it because the server had not confirmed its lease in time.
        case lost

    }

    /// How the process ended.
    public enum Exit: Sendable, Equatable {
        case code(Int32)
        case signal(Int32)
    }

    /// What the process (and the descendants it waited for) used.
    public struct Usage: Sendable, Equatable {
        public var wallMilliseconds: UInt64 = 0
        public var userCPUMilliseconds: UInt64 = 0
        public var systemCPUMilliseconds: UInt64 = 0
        /// Peak resident set size.
        public var maxRSSKiB: UInt64 = 0
    }

    /// The end of an attempt.
    public struct Result: Sendable, Equatable {
        public var outcome: Outcome
        /// Exit code or signal; nil when nothing ran or the status could not be read.
        public var exit: Exit?
        /// Nil when nothing ran.
        public var usage: Usage?
        /// 0 when nothing ran.
        public var startedAtUnixUs: Int64
        public var finishedAtUnixUs: Int64
        /// A short reason for operators; never task output.
        public var message: String
    }

    /// What `onEvent` receives.
    public enum Event: Sendable, Equatable {
        case started(Start)
        case finished(Result)
    }

    /// What a `cancel()` call did.
    public enum CancelDisposition: Sendable, Equatable {
        /// SIGTERM sent (or SIGKILL, with no grace); the outcome will be `.cancelled`.
        case stopping
        /// Already being stopped (by an earlier cancel or the timeout); nothing sent.
        case alreadyStopping
        /// The attempt had already ended; nothing sent.
        case alreadyFinished
        /// `start()` had not been called: the attempt ends `.cancelled` and will never run.
        case cancelledBeforeStart
    }

    /// Variables passed through from the agent's own environment, when set there:
    /// enough for programs to be found and behave normally, nothing that could leak the
    /// agent's own secrets or settings.
    public static let inheritedVariables = ["PATH", "HOME", "LANG"]
    /// `PATH` for tasks when neither the agent nor the entrypoint sets one.
    public static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

    /// The lease this runner runs.
    public let lease: Lease
    private let entrypoints: [String: AgentConfiguration.Entrypoint]
    private let logDirectory: LogDirectory
    private let killGraceMilliseconds: Int64
    private let inheritedEnvironment: [String: String]
    private let onEvent: @Sendable (Event) -> Void
    private let reaper: ChildReaper
    /// SIGKILL for the task when the thread that called `start()` ends; 0 for none.
    private let parentDeathSignal: Int32
    private let shared = Mutex(Shared())

    /// - Parameters:
    ///   - lease: the lease to run.
    ///   - entrypoints: the agent's entrypoints; the lease's must be among them.
    ///   - logDirectory: where the attempt's log goes.
    ///   - killGraceMilliseconds: SIGTERM to SIGKILL; 0 sends SIGKILL at once.
    ///   - inheritedEnvironment: the agent's environment (nil: this process's), of which
    ///     only `inheritedVariables` reach the task.
    ///   - diesWithStartingThread: the task gets SIGKILL when the thread that calls
    ///     `start()` ends, and so when the agent dies, however it dies. Start such a runner
    ///     only on a thread that lives as long as the agent.
    ///   - onEvent: see the type's contract.
    public init(lease: Lease, entrypoints: [String: AgentConfiguration.Entrypoint],
                logDirectory: LogDirectory, killGraceMilliseconds: Int64,
                inheritedEnvironment: [String: String]? = nil, reaper: ChildReaper = .shared,
                diesWithStartingThread: Bool = false, onEvent: @escaping @Sendable (Event) -> Void) {
        self.lease = lease
        self.reaper = reaper
        self.parentDeathSignal = diesWithStartingThread ? SIGKILL : 0
        self.entrypoints = entrypoints
        self.logDirectory = logDirectory
        self.killGraceMilliseconds = max(0, killGraceMilliseconds)
        // `environment(for:entrypoint:inherited:)` keeps only `inheritedVariables` of it.
        self.inheritedEnvironment = inheritedEnvironment ?? ProcessInfo.processInfo.environment
        self.onEvent = onEvent
    }

    /// A runner with `configuration`'s entrypoints, log directory and kill grace.
    public convenience init(lease: Lease, configuration: AgentConfiguration,
                            inheritedEnvironment: [String: String]? = nil, reaper: ChildReaper = .shared,
                            diesWithStartingThread: Bool = false, onEvent: @escaping @Sendable (Event) -> Void) {
        self.init(lease: lease, entrypoints: configuration.entrypoints,
                  logDirectory: LogDirectory(root: configuration.logDirectory),
                  killGraceMilliseconds: configuration.killGraceMilliseconds,
                  inheritedEnvironment: inheritedEnvironment, reaper: reaper,
                  diesWithStartingThread: diesWithStartingThread, onEvent: onEvent)
    }

    // MARK: - State

    /// The attempt's lifecycle. Signals are sent only while `running` or `stopping`, under
    /// the lock; `awaitExit` moves to `exited` under the lock while the leader is an
    /// unreaped zombie, so its pid and group id cannot have been reused by then.
    private enum Phase {
        case idle
        /// Spawning; `pendingStop` is set when a stop was asked for meanwhile.
        case launching(pendingStop: Stop?)
        case running(Running)
        case stopping(Running, Stop)
        /// The leader has exited; being reaped.
        case exited
        case finished(Result)
    }

    private struct Running {
        var pid: pid_t
        var startedAtUnixUs: Int64
        var startedAtMonotonic: Int64
    }

    private enum StopReason {
        case timeout(milliseconds: Int64)
        case cancel(String)
        case leaseLost(String)
    }

    private struct Stop {
        var reason: StopReason
        /// SIGTERM to SIGKILL; 0 sends SIGKILL at once.
        var graceMilliseconds: Int64
        var sentKill = false
    }

    private struct Shared {
        var phase = Phase.idle
        var waiters: [CheckedContinuation<Result, Never>] = []
    }

    // MARK: - Starting

    /// Spawns the task: resolves the entrypoint, opens the log, spawns, delivers
    /// `.started`, and has the `ChildReaper` watch for its exit. On any failure before the process runs,
    /// delivers `.finished` with outcome `.rejected` instead. A no-op after
    /// `cancel()` ended the attempt before it started.
    ///
    /// Blocks briefly (directory creation, `posix_spawn`). Calling it twice is a
    /// programming error and traps.
    public func start() {
        let proceed = shared.withLock { shared -> Bool in
            switch shared.phase {
            case .idle:
                shared.phase = .launching(pendingStop: nil)
                return true
            case .finished:
                return false  // cancelled before start
            default:
                preconditionFailure("TaskRunner.start() called twice for lease \(lease.id)")
            }
        }
        guard proceed else { return }
        let launched: (pid: pid_t, logPath: String)
        do throws(Rejection) {
            launched = try launch()
        } catch {
            finish(Result(outcome: .rejected, exit: nil, usage: nil, startedAtUnixUs: 0,
                          finishedAtUnixUs: unixMicrosecondsNow(), message: error.message))
            return
        }
        let running = Running(pid: launched.pid, startedAtUnixUs: unixMicrosecondsNow(),
                              startedAtMonotonic: MonotonicClock.nanoseconds())
        let start = Start(processID: launched.pid, processStartTicks: ProcessIdentity.startTicks(of: launched.pid),
                          startedAtUnixUs: running.startedAtUnixUs, logPath: launched.logPath)
        shared.withLock { shared in
            guard case .launching(let pendingStop) = shared.phase else {
                preconditionFailure("TaskRunner phase changed during launch")
            }
            shared.phase = .running(running)
            if let pendingStop { beginStopping(&shared, pendingStop) }
        }
        if let timeout = effectiveTimeoutMilliseconds {
            DispatchQueue.global().asyncAfter(deadline: Self.deadline(afterMilliseconds: timeout)) { [weak self] in
                self?.timeoutElapsed(timeout)
            }
        }
        onEvent(.started(start))
        let pid = launched.pid
        reaper.whenExited(pid) { [self] in awaitExit(of: pid) }
    }

    /// Why nothing was spawned; the message goes to operators.
    private struct Rejection: Error {
        var message: String
    }

    /// Everything between the lease and a running process.
    private func launch() throws(Rejection) -> (pid: pid_t, logPath: String) {
        guard let entrypoint = entrypoints[lease.entrypoint] else {
            throw Rejection(message: "entrypoint '\(lease.entrypoint)' not configured on this agent")
        }
        let environment = Self.environment(for: lease, entrypoint: entrypoint, inherited: inheritedEnvironment)
        let program = entrypoint.argv[0]
        guard let executable = TaskProcess.resolveProgram(program, searchPath: environment["PATH"] ?? Self.defaultSearchPath) else {
            throw Rejection(message: "entrypoint '\(lease.entrypoint)': program '\(program)' not found in PATH")
        }
        do {
            let files = try logDirectory.openAttempt(dagID: lease.dagID, runID: lease.runID, taskID: lease.taskID,
                                                     attempt: lease.attempt)
            let input = try Self.standardInput(json: Self.standardInputJSON(for: lease))
            let launch = TaskProcess.Launch(executablePath: executable, arguments: entrypoint.argv,
                                            environment: environment, workingDirectory: entrypoint.workingDirectory)
            let pid = try TaskProcess.spawn(launch, standardInput: input, output: files.log, parentDeathSignal: parentDeathSignal)
            return (pid, files.logPath)
        } catch let error as LogDirectoryError {
            throw Rejection(message: "entrypoint '\(lease.entrypoint)': \(error)")
        } catch {
            throw Rejection(message: "entrypoint '\(lease.entrypoint)': \(error)")
        }
    }

    /// Why `entrypoint` cannot start a task on this machine now (its program is no
    /// executable file in the task's PATH, or its working_dir is no directory), or nil. The
    /// agent offers only entrypoints that pass, so it is never sent a task it would reject.
    public static func unusable(_ entrypoint: AgentConfiguration.Entrypoint, inherited: [String: String]) -> String? {
        // The PATH the task would get: `environment(for:entrypoint:inherited:)` decides it.
        let searchPath = environment(for: Lease(), entrypoint: entrypoint, inherited: inherited)["PATH"] ?? defaultSearchPath
        guard let program = entrypoint.argv.first else { return "argv is empty" }
        guard let executable = TaskProcess.resolveProgram(program, searchPath: searchPath) else {
            return "program '\(program)' not found in PATH (\(searchPath))"
        }
        var info = stat()
        guard stat(executable, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(executable, X_OK) == 0 else {
            return "program '\(executable)' is not an executable file"
        }
        if let directory = entrypoint.workingDirectory {
            guard stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return "working_dir '\(directory)' is not a directory" }
        }
        return nil
    }

    /// The smaller of the entrypoint's and the lease's timeouts; nil when neither sets one.
    var effectiveTimeoutMilliseconds: Int64? {
        let limits = [entrypoints[lease.entrypoint]?.timeoutMilliseconds,
                      lease.timeoutMilliseconds == 0 ? nil : Int64(clamping: lease.timeoutMilliseconds)]
        return limits.compactMap { $0 }.filter { $0 > 0 }.min()
    }

    // MARK: - Stopping

    /// Stops the attempt: SIGTERM to its process group, then SIGKILL after the kill grace
    /// (at once with no grace). The outcome becomes `.cancelled` with `reason` in its
    /// message, unless the timeout already began stopping it (then it stays `.timedOut`).
    /// Before `start()`, ends the attempt as `.cancelled` without running anything
    /// (delivering `.finished` on this thread). Never blocks; any thread.
    @discardableResult
    public func cancel(reason: String = "cancelled") -> CancelDisposition {
        stop(Stop(reason: .cancel(reason), graceMilliseconds: killGraceMilliseconds))
    }

    /// Stops the attempt because the server has not confirmed its lease for too long: it
    /// must be dead before the lease can expire, since the server may then give the task
    /// to another agent. As `cancel`, but the outcome is `.lost` and SIGKILL follows
    /// SIGTERM after `graceMilliseconds` or the kill grace, whichever is shorter.
    @discardableResult
    public func stopLeaseLost(reason: String, graceMilliseconds: Int64) -> CancelDisposition {
        stop(Stop(reason: .leaseLost(reason), graceMilliseconds: min(killGraceMilliseconds, max(0, graceMilliseconds))))
    }

    private func stop(_ request: Stop) -> CancelDisposition {
        enum Next { case none, finishUnstarted }
        let (disposition, next) = shared.withLock { shared -> (CancelDisposition, Next) in
            switch shared.phase {
            case .idle:
                return (.cancelledBeforeStart, .finishUnstarted)
            case .launching(let earlier):
                shared.phase = .launching(pendingStop: earlier ?? request)
                return (earlier == nil ? .stopping : .alreadyStopping, .none)
            case .running:
                beginStopping(&shared, request)
                return (.stopping, .none)
            case .stopping:
                return (.alreadyStopping, .none)
            case .exited, .finished:
                return (.alreadyFinished, .none)
            }
        }
        if case .finishUnstarted = next {
            let (outcome, reason): (Outcome, String) = switch request.reason {
            case .leaseLost(let reason): (.lost, reason)
            case .cancel(let reason): (.cancelled, reason)
            case .timeout: (.timedOut, "timed out")
            }
            finish(Result(outcome: outcome, exit: nil, usage: nil, startedAtUnixUs: 0, finishedAtUnixUs: unixMicrosecondsNow(),
                          message: "\(reason) before the task started"))
        }
        return disposition
    }

    private func timeoutElapsed(_ milliseconds: Int64) {
        shared.withLock { shared in
            guard case .running = shared.phase else { return }
            beginStopping(&shared, Stop(reason: .timeout(milliseconds: milliseconds), graceMilliseconds: killGraceMilliseconds))
        }
    }

    /// With the lock held and `phase` running: signals the group and arms the SIGKILL.
    private func beginStopping(_ shared: inout Shared, _ request: Stop) {
        guard case .running(let running) = shared.phase else { return }
        var stop = request
        if stop.graceMilliseconds == 0 {
            signal(running.pid, SIGKILL)
            stop.sentKill = true
        } else {
            signal(running.pid, SIGTERM)
            DispatchQueue.global().asyncAfter(deadline: Self.deadline(afterMilliseconds: stop.graceMilliseconds)) {
                [weak self] in self?.graceElapsed()
            }
        }
        shared.phase = .stopping(running, stop)
    }

    /// Now plus `milliseconds`, capped at about 34 years: Dispatch traps when a
    /// millisecond interval overflows nanoseconds, and durations in config have no cap.
    private static func deadline(afterMilliseconds milliseconds: Int64) -> DispatchTime {
        .now() + .milliseconds(Int(min(max(0, milliseconds), 1 << 40)))
    }

    private func graceElapsed() {
        shared.withLock { shared in
            guard case .stopping(let running, var stop) = shared.phase, !stop.sentKill else { return }
            signal(running.pid, SIGKILL)
            stop.sentKill = true
            shared.phase = .stopping(running, stop)
        }
    }

    /// Signals the group; a failure other than "no such group" is unexpected and only
    /// worth a line on stderr, since `awaitExit` still reports the outcome.
    private func signal(_ processGroup: pid_t, _ signal: Int32) {
        do {
            try TaskProcess.signalGroup(processGroup, signal)
        } catch {
            FileHandle.standardError.write(Data("tether agent: lease \(lease.id): \(error)\n".utf8))
        }
    }

    // MARK: - Finishing

    /// Once the leader has exited (on the reaper's thread): ends the stopping machinery,
    /// kills what the leader left in its group, reaps it and reports.
    private func awaitExit(of pid: pid_t) {
        var waitError: (any Error)?
        do {
            try TaskProcess.waitForExit(pid)
        } catch {
            waitError = error
        }
        let (running, stop) = shared.withLock { shared -> (Running?, Stop?) in
            defer { shared.phase = .exited }
            switch shared.phase {
            case .running(let running): return (running, nil)
            case .stopping(let running, let stop): return (running, stop)
            default: return (nil, nil)
            }
        }
        // The zombie leader still holds the group id, so this reaches only its group.
        _ = try? TaskProcess.signalGroup(pid, SIGKILL)
        let finishedAt = unixMicrosecondsNow()
        let wallMilliseconds = running.map { UInt64(MonotonicClock.nanoseconds() - $0.startedAtMonotonic) / 1_000_000 } ?? 0
        var result = Result(outcome: .failed, exit: nil, usage: nil, startedAtUnixUs: running?.startedAtUnixUs ?? 0,
                            finishedAtUnixUs: finishedAt, message: "")
        do {
            if let waitError { throw waitError }
            let (termination, usage) = try TaskProcess.reap(pid)
            result.usage = Usage(wallMilliseconds: wallMilliseconds, usage)
            let ending: String
            switch termination {
            case .exited(let code):
                result.exit = .code(code)
                result.outcome = code == 0 ? .succeeded : .failed
                ending = "exited with code \(code)"
            case .signalled(let signal):
                result.exit = .signal(signal)
                result.outcome = .failed
                ending = "killed by signal \(signal) (\(TaskProcess.signalName(signal)))"
            }
            result.message = ending
            if let stop { (result.outcome, result.message) = stopped(stop, ending: ending) }
        } catch {
            result.usage = Usage(wallMilliseconds: wallMilliseconds)
            result.message = "could not collect the task's exit status: \(error)"
            if let stop { (result.outcome, result.message) = stopped(stop, ending: result.message) }
        }
        finish(result)
    }

    private func stopped(_ stop: Stop, ending: String) -> (Outcome, String) {
        let signals = stop.graceMilliseconds == 0
            ? "SIGKILL sent"
            : stop.sentKill ? "SIGTERM sent, SIGKILL after \(DurationText.format(milliseconds: stop.graceMilliseconds)) grace" : "SIGTERM sent"
        switch stop.reason {
        case .timeout(let milliseconds):
            return (.timedOut, "timed out after \(DurationText.format(milliseconds: milliseconds)); \(signals); \(ending)")
        case .cancel(let reason):
            return (.cancelled, "\(reason); \(signals); \(ending)")
        case .leaseLost(let reason):
            return (.lost, "\(reason); \(signals); \(ending)")
        }
    }

    /// Records `result` and delivers it to `onEvent`, then to `result()` callers.
    private func finish(_ result: Result) {
        let waiters = shared.withLock { shared in
            shared.phase = .finished(result)
            defer { shared.waiters = [] }
            return shared.waiters
        }
        onEvent(.finished(result))
        for waiter in waiters { waiter.resume(returning: result) }
    }

    /// The attempt's result, once it has finished (after `onEvent` saw `.finished`).
    /// Waits without blocking a thread; does not start the attempt.
    public func result() async -> Result {
        await withCheckedContinuation { continuation in
            let ready = shared.withLock { shared -> Result? in
                if case .finished(let result) = shared.phase { return result }
                shared.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

// MARK: - Environment and input

extension TaskRunner {
    /// The task's complete environment, each layer overriding the one before:
    /// 1. `inheritedVariables` (PATH, HOME, LANG) from `inherited`, when set there; PATH
    ///    defaults to `defaultSearchPath`;
    /// 2. the entrypoint's `env`;
    /// 3. `TETHER_PARAM_<NAME>` for each param (`TaskEnvironment.variableName`; when two
    ///    names map to one variable, the later name in sorted order wins — stdin has both);
    /// 4. `TETHER_DAG_ID`, `TETHER_DAG_VERSION`, `TETHER_RUN_ID`, `TETHER_TASK_ID`,
    ///    `TETHER_ATTEMPT`, `TETHER_LEASE_ID`, and the run's `TETHER_LOGICAL_DATE`,
    ///    `TETHER_DATA_INTERVAL_START` and `TETHER_DATA_INTERVAL_END` (RFC 3339, UTC).
    /// Nothing else of the agent's environment reaches a task.
    public static func environment(for lease: Lease, entrypoint: AgentConfiguration.Entrypoint,
                                   inherited: [String: String]) -> [String: String] {
        var environment = inherited.filter { inheritedVariables.contains($0.key) }
        if environment["PATH"] == nil { environment["PATH"] = defaultSearchPath }
        environment.merge(entrypoint.environment) { _, own in own }
        for name in lease.params.keys.sorted() {
            environment[TaskEnvironment.variableName(forParam: name)] = lease.params[name]
        }
        environment["TETHER_DAG_ID"] = lease.dagID
        environment["TETHER_DAG_VERSION"] = String(lease.dagVersion)
        environment["TETHER_RUN_ID"] = lease.runID
        environment["TETHER_TASK_ID"] = lease.taskID
        environment["TETHER_ATTEMPT"] = String(lease.attempt)
        environment["TETHER_LEASE_ID"] = lease.id
        environment["TETHER_LOGICAL_DATE"] = UTCTimestamp.format(unixMicroseconds: lease.logicalDateUnixMicroseconds)
        environment["TETHER_DATA_INTERVAL_START"] = UTCTimestamp.format(unixMicroseconds: lease.dataIntervalStartUnixMicroseconds)
        environment["TETHER_DATA_INTERVAL_END"] = UTCTimestamp.format(unixMicroseconds: lease.dataIntervalEndUnixMicroseconds)
        // A NUL cannot travel in an environment string; such a value would cut the string short.
        return environment.filter { !$0.key.utf8.contains(0) && !$0.value.utf8.contains(0) }
    }

    /// What a task reads on stdin: one JSON object with the run's context and, under
    /// `params`, its parameters (keys sorted, values strings), e.g.
    /// `{"dag_id":"etl","dag_version":3,"run_id":"etl-7","task_id":"load","attempt":1,
    /// "logical_date":"2026-12-07T00:00:00Z","data_interval_start":"2026-12-06T00:00:00Z",
    /// "data_interval_end":"2026-12-07T00:00:00Z","params":{"day":"1"}}`.
    public static func standardInputJSON(for lease: Lease) -> String {
        JSONText.object(members: [
            ("dag_id", .string(lease.dagID)), ("dag_version", .integer(Int64(lease.dagVersion))),
            ("run_id", .string(lease.runID)), ("task_id", .string(lease.taskID)), ("attempt", .integer(Int64(lease.attempt))),
            ("logical_date", .string(UTCTimestamp.format(unixMicroseconds: lease.logicalDateUnixMicroseconds))),
            ("data_interval_start", .string(UTCTimestamp.format(unixMicroseconds: lease.dataIntervalStartUnixMicroseconds))),
            ("data_interval_end", .string(UTCTimestamp.format(unixMicroseconds: lease.dataIntervalEndUnixMicroseconds))),
            ("params", .strings(lease.params)),
        ])
    }

    /// An anonymous in-memory file (memfd) holding `json`, positioned at its start: stdin
    /// that never blocks the agent (unlike a pipe the task might not read), touches no
    /// file system and leaves nothing behind.
    static func standardInput(json: String) throws(SystemError) -> FileDescriptor {
        let file = FileDescriptor(owning: try systemCall("memfd_create task stdin") {
            memfd_create("tether-task-stdin", TETHER_MFD_CLOEXEC)
        })
        let bytes = Array(json.utf8)
        var offset = 0
        while offset < bytes.count {
            offset += try systemCall("write task stdin") {
                bytes.withUnsafeBytes { buffer in write(file.raw, buffer.baseAddress! + offset, buffer.count - offset) }
            }
        }
        try systemCall("seek task stdin") { lseek(file.raw, 0, SEEK_SET) }
        return file
    }
}

extension TaskRunner.Usage {
    init(wallMilliseconds: UInt64) { self.wallMilliseconds = wallMilliseconds }

    /// From `wait4`'s rusage: CPU times in ms, `ru_maxrss` (KiB on Linux).
    init(wallMilliseconds: UInt64, _ usage: rusage) {
        func milliseconds(_ time: timeval) -> UInt64 { UInt64(max(0, time.tv_sec)) * 1_000 + UInt64(max(0, time.tv_usec)) / 1_000 }
        self.wallMilliseconds = wallMilliseconds
        userCPUMilliseconds = milliseconds(usage.ru_utime)
        systemCPUMilliseconds = milliseconds(usage.ru_stime)
        maxRSSKiB = UInt64(max(0, usage.ru_maxrss))
    }
}
