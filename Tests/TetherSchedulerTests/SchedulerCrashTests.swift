import Foundation
import Testing
import TetherScheduler
import TetherSchedulerSQLite
import TetherStore
import TetherTestSupport

/// Invariant 1 at the scheduler level: whatever the scheduler acknowledged (a trigger,
/// a grant delivered to an agent, an agent's report) survives `kill -9` at any instant,
/// and the scheduler resumes from what is left.
@Suite struct SchedulerCrashTests {
    @Test func everyAcknowledgedChangeSurvivesSIGKILLAndTheSchedulerResumes() async throws {
        let seed = ProcessInfo.processInfo.environment["TETHER_TORTURE_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        let problems = try await onThreadOfItsOwn { try Self.torture(rounds: 12, seed: seed, budget: .seconds(120)) }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n")); replay with TETHER_TORTURE_SEED=\(seed)" as Comment)
    }

    private static func torture(rounds: Int, seed: UInt64, budget: Duration) throws -> [String] {
        var random = SplitMix64(seed: seed)
        var problems: [String] = []
        let scratch = try ScratchDirectory()
        let path = scratch.path("scheduler.db")
        let deadline = ContinuousClock.now + budget
        var runs = Set<String>(), grants = Set<String>(), reports: [String: UInt64] = [:]
        var roundsRun = 0
        while roundsRun < rounds && ContinuousClock.now < deadline {
            let round = roundsRun
            roundsRun += 1
            let synchronous = round.isMultiple(of: 2) ? "full" : "normal"
            let delay = Duration.microseconds(Int64.random(in: 0...400_000, using: &random))
            let run = try KilledChild.run(Repository.binary("tether-torture"), ["scheduler", "--db", path, "--synchronous", synchronous],
                                          afterLinePrefix: "ack report", delay: delay, stderrPath: scratch.path("stderr-\(round).txt"))
            if let problem = run.problem { problems.append("round \(round): \(problem)") }
            for line in run.lines {
                let words = line.split(separator: " ").map(String.init)
                switch (words.first, words.dropFirst().first) {
                case ("ack", "run"): runs.insert(words[2])
                case ("ack", "grant"): grants.insert(words[2])
                case ("ack", "report"): reports[words[3]] = UInt64(words[2])
                default: break
                }
            }

            let database = try SQLiteDatabase(.init(path: path))
            let integrity = try database.integrityCheck()
            if integrity != ["ok"] { problems.append("round \(round): integrity_check says \(integrity)") }
            var storedRuns = Set<String>(), attempts: [String: String] = [:]
            try database.query("SELECT run_id FROM runs") { storedRuns.insert($0[0].text ?? "") }
            try database.query("SELECT lease_id, outcome FROM task_attempts") { attempts[$0[0].text ?? ""] = $0[1].text }
            let applied = try database.scalar("SELECT coalesce(max(sequence), 0) FROM agent_sequences").int64 ?? 0
            let missingRuns = runs.subtracting(storedRuns)
            let missingGrants = grants.filter { attempts[$0] == nil }
            let unrecorded = reports.filter { attempts[$0.key] != "succeeded" || Int64($0.value) > applied }
            if !missingRuns.isEmpty { problems.append("round \(round): acked runs missing: \(missingRuns.sorted().prefix(5))") }
            if !missingGrants.isEmpty { problems.append("round \(round): acked grants missing: \(missingGrants.sorted().prefix(5))") }
            if !unrecorded.isEmpty { problems.append("round \(round): acked reports not applied: \(unrecorded.keys.sorted().prefix(5))") }
            // The next round restarts on this database: restore must accept whatever the kill left.
            let store = try SQLiteSchedulerStore(path: path)
            _ = try store.loadSnapshot()
            store.close()
        }
        if reports.isEmpty { problems.append("no report was ever acknowledged") }
        if roundsRun < 4 { problems.append("only \(roundsRun) rounds ran within the budget") }
        return problems
    }
}
