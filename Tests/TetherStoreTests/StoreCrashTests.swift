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
        let report = try await onThreadOfItsOwn { try Self.torture(rounds: 20, seed: seed, budget: .seconds(120)) }
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
        let run = try KilledChild.run(Repository.binary("tether-torture"), ["store", "--db", path, "--synchronous", synchronous],
                                      afterLinePrefix: afterFirstAck ? "ack " : nil, delay: delay, stderrPath: stderrPath)
        return (run.lines.compactMap { $0.hasPrefix("ack ") ? Int64($0.dropFirst(4)) : nil }, run.problem)
    }
}
