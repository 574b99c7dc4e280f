import Foundation
import Testing
@testable import TetherAgent
import TetherTestSupport

@Suite struct LogDirectoryTests {
    private static let day: TimeInterval = 86_400

    @Test func anAttemptsLogAndTheDirectoriesMadeForItAreOwnerOnly() throws {
        let scratch = try ScratchDirectory()
        let logs = LogDirectory(root: scratch.path("logs"))
        let files = try logs.openAttempt(dagID: "dag", runID: "run", taskID: "task", attempt: 1)
        for directory in ["logs", "logs/dag", "logs/dag/run"] {
            #expect(fileMode(scratch.path(directory)) == 0o700, "\(directory)")
        }
        #expect(fileMode(files.logPath) == 0o600)
    }

    private func makeFile(_ path: String, ageDays: Double) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data("log\n".utf8).write(to: URL(fileURLWithPath: path))
        try age(path, days: ageDays)
    }

    private func age(_ path: String, days: Double) throws {
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -days * Self.day)], ofItemAtPath: path)
    }

    private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    @Test func attemptLogPathsAreBuiltFromValidatedIds() throws {
        let logs = LogDirectory(root: "/var/lib/tether-agent/logs/")
        #expect(try logs.attemptLogPath(dagID: "etl", runID: "etl-12", taskID: "load.v2", attempt: 3)
            == "/var/lib/tether-agent/logs/etl/etl-12/load.v2.attempt-3.log")
        // A task id leaves room for ".attempt-4294967295.log" in one 255-byte file name.
        #expect(try logs.attemptLogPath(dagID: "d", runID: "r", taskID: String(repeating: "t", count: 232), attempt: .max)
            .hasSuffix("/d/r/" + String(repeating: "t", count: 232) + ".attempt-4294967295.log"))
        for (dag, run, task) in [("..", "r", "t"), ("d", "a/../../etc", "t"), ("d", "r", "."), ("d", "", "t"), ("d", "r", "t\u{0}"),
                                 ("d", "r", String(repeating: "t", count: 233))] {
            #expect(throws: LogDirectoryError.self) { try logs.attemptLogPath(dagID: dag, runID: run, taskID: task, attempt: 1) }
        }
    }

    @Test func pruneDeletesOldLogsAndTheDirectoriesTheyLeaveEmptyAndKeepsNewOnes() throws {
        let scratch = try ScratchDirectory()
        let root = scratch.path("logs")
        let old = root + "/etl/run-1/load.attempt-1.log"
        let oldSibling = root + "/etl/run-2/load.attempt-1.log"
        let new = root + "/etl/run-2/load.attempt-2.log"
        let notOurs = ["notes.txt", ".attempt-1.log", "load.attempt-x.log", "load.attempt-.log", "load-1.log"].map { root + "/etl/run-3/" + $0 }
        try makeFile(old, ageDays: 10)
        try makeFile(oldSibling, ageDays: 10)
        try makeFile(new, ageDays: 1)
        for file in notOurs { try makeFile(file, ageDays: 10) }
        for directory in ["/etl/run-1", "/etl/run-2", "/etl/run-3", "/etl"] {
            try age(root + directory, days: 10)
        }

        let report = try LogDirectory(root: root).prune(retentionMilliseconds: 7 * 86_400_000)
        #expect(!exists(old) && !exists(root + "/etl/run-1"))
        #expect(!exists(oldSibling))
        #expect(exists(new))
        #expect(notOurs.allSatisfy(exists))
        #expect(exists(root))
        #expect(report.removedFiles == 2)
        #expect(report.removedDirectories == 1)  // run-1
        #expect(report.failures == 0)
    }

    @Test func pruneAlsoClearsTheLayoutBeforeOneFilePerAttemptInTheRunsDirectory() throws {
        let scratch = try ScratchDirectory()
        let root = scratch.path("logs")
        // <run>/<task>/attempt-<n>.log, and a stdin file a crash left beside it.
        try makeFile(root + "/etl/run-1/load/attempt-1.log", ageDays: 10)
        try makeFile(root + "/etl/run-1/load/.stdin-abc", ageDays: 10)
        try makeFile(root + "/etl/run-1/load/notes.log", ageDays: 10)
        try makeFile(root + "/etl/run-2/load/attempt-2.log", ageDays: 10)
        for directory in ["/etl/run-1/load", "/etl/run-1", "/etl/run-2/load", "/etl/run-2", "/etl"] {
            try age(root + directory, days: 10)
        }
        let report = try LogDirectory(root: root).prune(retentionMilliseconds: 7 * 86_400_000)
        #expect(!exists(root + "/etl/run-1/load/attempt-1.log") && !exists(root + "/etl/run-1/load/.stdin-abc"))
        #expect(exists(root + "/etl/run-1/load/notes.log"))
        #expect(!exists(root + "/etl/run-2"))
        #expect(report.removedFiles == 3)
        #expect(report.removedDirectories == 2)  // run-2/load and run-2
        #expect(report.failures == 0)
    }

    @Test func pruneNeverFollowsOrDeletesSymlinksOutOfTheRoot() throws {
        let scratch = try ScratchDirectory()
        let root = scratch.path("logs")
        let outside = scratch.path("outside")
        let victim = outside + "/run/load.attempt-1.log"
        try makeFile(victim, ageDays: 30)
        try makeFile(root + "/etl/run-1/load.attempt-1.log", ageDays: 30)
        try FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: root + "/etl/run-1/load.attempt-9.log", withDestinationPath: victim)

        let report = try LogDirectory(root: root).prune(retentionMilliseconds: 86_400_000)
        #expect(exists(victim))
        #expect(report.skippedSymlinks == 2)
        #expect(report.removedFiles == 1)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/escape")) == outside)
    }

    @Test func zeroRetentionKeepsEverything() throws {
        let scratch = try ScratchDirectory()
        let root = scratch.path("logs")
        try makeFile(root + "/etl/run-1/load.attempt-1.log", ageDays: 400)
        #expect(try LogDirectory(root: root).prune(retentionMilliseconds: 0) == LogPruneReport())
        #expect(exists(root + "/etl/run-1/load.attempt-1.log"))
    }
}
