public import Foundation

/// A long-running child process started by a test (a server), stopped with
/// SIGTERM (then SIGKILL) when the test is done.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    private let output = Pipe.closingOnExec()
    /// The first line the child printed that starts with `readyPrefix` (after a log
    /// line's timestamp, if it has one).
    public private(set) var readyLine = ""

    /// Starts `executable` and waits (up to `timeout`) for a stdout line starting
    /// with `readyPrefix`, or with a timestamp, a space and `readyPrefix` (a daemon's log line). Throws `ProcessRunError` if `executable` is missing, the error of
    /// `Process.run()` if it cannot start, and `ChildProcessError` with the child's output if
    /// it exits first or stays silent (then it is killed).
    public init(_ executable: URL, _ arguments: [String], readyPrefix: String, timeout: Duration = .seconds(30)) throws {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ProcessRunError.missingExecutable(executable.path)
        }
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try SpawnGuard.run { try process.run() }
        launched = true
        // `availableData` blocks until output or EOF: a child still silent at the deadline is
        // killed, which ends the read with EOF.
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        let (seconds, attoseconds) = timeout.components
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(seconds * 1000 + attoseconds / 1_000_000_000_000_000)),
                                          execute: watchdog)
        defer { watchdog.cancel() }
        let handle = output.fileHandleForReading
        var buffer = Data()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let chunk = handle.availableData   // blocks until output or EOF
            if chunk.isEmpty { break }
            buffer.append(chunk)
            if let text = String(data: buffer, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { Self.line($0, startsWith: readyPrefix) }) {
                readyLine = String(line)
                // What came with the ready line (say, the next log line) belongs to the tail too.
                tail = Data(buffer.suffix(64 << 10))
                drainOutput()
                return
            }
        }
        let status = stop()
        let timedOut = ContinuousClock.now >= deadline
            || process.terminationReason == .uncaughtSignal && status == SIGKILL
        let problem = timedOut
            ? "printed no line starting with '\(readyPrefix)' within \(timeout), so it was killed"
            : "exited (status \(status)) before printing a line starting with '\(readyPrefix)'"
        throw ChildProcessError(executable: executable.lastPathComponent, problem: problem,
                                output: String(decoding: buffer, as: UTF8.self))
    }

    private static func line(_ line: Substring, startsWith prefix: String) -> Bool {
        if line.hasPrefix(prefix) { return true }
        guard let space = line.firstIndex(of: " "), line[..<space].last == "Z" else { return false }
        return line[line.index(after: space)...].hasPrefix(prefix)
    }

    /// Keeps reading the child's output so a chatty child never blocks on a full
    /// pipe; the last 64 KiB are kept for `recentOutput`.
    private func drainOutput() {
        let handle = output.fileHandleForReading
        let thread = Thread { [weak self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                guard let self else { return }
                self.lock.lock()
                self.tail.append(chunk)
                if self.tail.count > 64 << 10 { self.tail.removeFirst(self.tail.count - (64 << 10)) }
                self.lock.unlock()
            }
        }
        thread.start()
    }

    private let lock = NSLock()
    private var tail = Data()
    /// Whether `process.run()` succeeded. `deinit` also runs after a failed `init`, and
    /// Foundation traps on `terminationStatus` of a process that never started.
    private var launched = false

    /// The last output the child printed after it became ready.
    public var recentOutput: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: tail, as: UTF8.self)
    }

    /// The "HOST:PORT" in a "listening on HOST:PORT (…)" ready line.
    public var listeningAddress: String {
        String(readyLine.split(separator: " ").dropFirst(2).first ?? "")
    }

    /// Waits until the child has exited or `limit` has passed; returns whether it exited.
    public func waitForExit(within limit: Duration) -> Bool {
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { usleep(5_000) }
        return !process.isRunning
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns the exit status.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if launched { stop() }
    }
}

/// A child process that never printed its ready line.
public struct ChildProcessError: Error, CustomStringConvertible {
    /// The executable's file name, e.g. "python".
    public let executable: String
    /// What happened instead, e.g. "exited (status 1) before printing a line starting with …".
    public let problem: String
    /// Everything it printed (stdout and stderr).
    public let output: String
    public var description: String { "child process \(executable) \(problem); it printed:\n\(output)" }
}
