public import Foundation

/// One run of a child process killed with SIGKILL: for crash tests, where what matters
/// is what the child had acknowledged on stdout before it died.
public struct KilledChild: Sendable {
    /// Complete stdout lines written before the kill (a line cut by the kill is dropped).
    public var lines: [String]
    /// What went wrong with the run itself (the child exited on its own, or never
    /// printed the line it was meant to be killed after); nil when it died by the kill.
    public var problem: String?

    /// Starts `executable` with `arguments`, waits until a stdout line starts with
    /// `afterLinePrefix` (if given), sleeps `delay`, and kills it with SIGKILL. A
    /// watchdog kills it after `watchdog` seconds whatever happens. Blocks: call it from
    /// `onThreadOfItsOwn`. stderr goes to `stderrPath`, for the problem report.
    public static func run(_ executable: URL, _ arguments: [String], afterLinePrefix: String?, delay: Duration,
                           stderrPath: String, watchdog: Double = 60) throws -> KilledChild {
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let stderr = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        defer { try? stderr.close() }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let stdout = Pipe.closingOnExec()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try SpawnGuard.run { try process.run() }
        let pid = process.processIdentifier
        // A child that never prints cannot hang the test: the kill ends the read with EOF.
        let guardKill = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + watchdog, execute: guardKill)
        defer { guardKill.cancel() }

        var output = Data()
        if let prefix = afterLinePrefix {
            let reader = stdout.fileHandleForReading
            let marker = Data("\n\(prefix)".utf8)
            while !output.contains(marker) && !output.starts(with: Data(prefix.utf8)) {
                let chunk = reader.availableData  // blocks until output or EOF
                if chunk.isEmpty { break }
                output.append(chunk)
            }
        }
        let micros = delay.components.seconds * 1_000_000 + delay.components.attoseconds / 1_000_000_000_000
        usleep(UInt32(clamping: micros))
        kill(pid, SIGKILL)
        output.append(stdout.fileHandleForReading.readDataToEndOfFile())
        process.waitUntilExit()

        let text = String(decoding: output, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        var problem: String?
        if process.terminationReason != .uncaughtSignal || process.terminationStatus != SIGKILL {
            let errors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            problem = "\(executable.lastPathComponent) exited on its own (status \(process.terminationStatus)): \(errors)"
        } else if let prefix = afterLinePrefix, !lines.contains(where: { $0.hasPrefix(prefix) }) {
            problem = "no '\(prefix)' line before the kill"
        }
        return KilledChild(lines: lines, problem: problem)
    }
}
