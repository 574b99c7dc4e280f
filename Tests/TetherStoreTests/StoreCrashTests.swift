import Foundation
import Testing
import TetherStore
import TetherTestSupport

/// Invariant 1 at the store level: a change acknowledged by the group-commit writer
/// survives `kill -9` at any instant.
@Suite struct StoreCrashTests {
    /// What the rounds of kill -9 found.
    struct Report: Sendable {
        var seed: UInt64
        var rounds = 0
        var acked = 0
        /// Problems found, each naming its round; empty when the store held up.
        var problems: [String] = []
    }

    @Test func everyAckedInsertSurvivesSIGKILLAtRandomInstants() async throws {
        let seed = ProcessInfo.processInfo.environment["TETHER_TORTURE_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        let report = try await Self.onThreadOfItsOwn { try Self.torture(rounds: 20, seed: seed, budget: .seconds(120)) }
        let replay = "replay with TETHER_TORTURE_SEED=\(seed)"
        #expect(report.problems.isEmpty, "\(report.problems.joined(separator: "\n")); \(replay)" as Comment)
        #expect(report.rounds >= 5, "only \(report.rounds) rounds ran within the time budget; \(replay)")
        #expect(report.acked > 0, "no insert was ever acked; \(replay)")
    }

    /// Runs `tether-torture store` on one database `rounds` times (or until `budget`
    /// is spent), SIGKILLs it at a random instant each time, and checks the database
    /// after each kill. Blocks.
    private static func torture(rounds: Int, seed: UInt64, budget: Duration) throws -> Report {
        var random = SplitMix64(seed: seed)
        var report = Report(seed: seed)
        let scratch = try ScratchDirectory()
        let path = scratch.path("torture.db")
        let deadline = ContinuousClock.now + budget
        var acked = Set<Int64>()
        while report.rounds < rounds && ContinuousClock.now < deadline {
            let round = report.rounds
            report.rounds += 1
            // Both settings must survive a process crash (only power loss tells them apart).
            let synchronous = round.isMultiple(of: 2) ? "full" : "normal"
            // Every fourth round dies a few milliseconds after starting: while opening,
            // recovering the WAL or migrating. The others die while inserting.
            let duringStartup = round % 4 == 3
            let delay = Duration.microseconds(Int64.random(in: duringStartup ? 0...20_000 : 0...300_000, using: &random))
            let run = try killedRun(path: path, synchronous: synchronous, delay: delay, afterFirstAck: !duringStartup,
                                    stderr: scratch.path("stderr-\(round).txt"))
            if let problem = run.problem { report.problems.append("round \(round): \(problem)") }
            acked.formUnion(run.acked)

            let database = try SQLiteDatabase(.init(path: path))
            let integrity = try database.integrityCheck()
            if integrity != ["ok"] { report.problems.append("round \(round): integrity_check says \(integrity)") }
            guard !acked.isEmpty else { continue }
            var present = Set<Int64>()
            try database.query("SELECT id FROM acked") { present.insert($0[0].int64 ?? -1) }
            let missing = acked.subtracting(present)
            if !missing.isEmpty {
                report.problems.append("round \(round) (\(synchronous), killed \(delay) in): "
                                       + "\(missing.count) acked ids missing, e.g. \(missing.sorted().prefix(10))")
            }
        }
        report.acked = acked.count
        return report
    }

    /// One run of `tether-torture store`, killed with SIGKILL `delay` after it started
    /// (or after its first ack): the ids it acked, and what went wrong if anything.
    private static func killedRun(path: String, synchronous: String, delay: Duration, afterFirstAck: Bool,
                                  stderr stderrPath: String) throws -> (acked: [Int64], problem: String?) {
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let stderr = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        defer { try? stderr.close() }
        let process = Process()
        process.executableURL = Repository.binary("tether-torture")
        process.arguments = ["store", "--db", path, "--synchronous", synchronous]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let pid = process.processIdentifier
        // A watchdog, so a child that never acks cannot hang the test: killing it ends
        // the read below with EOF.
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        defer { watchdog.cancel() }

        var output = Data()
        if afterFirstAck {
            let reader = stdout.fileHandleForReading
            while !output.contains(Data("\nack ".utf8)) {
                let chunk = reader.availableData   // blocks until output or EOF
                if chunk.isEmpty { break }
                output.append(chunk)
            }
        }
        usleep(UInt32(delay.components.seconds * 1_000_000 + delay.components.attoseconds / 1_000_000_000_000))
        kill(pid, SIGKILL)
        output.append(stdout.fileHandleForReading.readDataToEndOfFile())
        process.waitUntilExit()

        // Only complete lines count: the child may die in the middle of writing one.
        let text = String(decoding: output, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let acked = lines.compactMap { $0.hasPrefix("ack ") ? Int64($0.dropFirst(4)) : nil }
        var problem: String?
        if process.terminationReason != .uncaughtSignal || process.terminationStatus != SIGKILL {
            let errors = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            problem = "tether-torture exited on its own (status \(process.terminationStatus)): \(errors)"
        } else if afterFirstAck && acked.isEmpty {
            problem = "no ack before the kill"
        }
        return (acked, problem)
    }

    /// Runs blocking work (child processes and waits for them) on a thread of its own
    /// rather than on one of the few cooperative-pool threads other suites need.
    private static func onThreadOfItsOwn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}
