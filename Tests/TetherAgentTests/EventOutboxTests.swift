import Foundation
import Glibc
import Testing
import TetherStore
import TetherTestSupport
import TetherWire
@testable import TetherAgent

@Suite struct EventOutboxTests {
    private func event(_ leaseID: String, _ kind: AgentV1.TaskEventKind, message: String = "") -> AgentV1.TaskEvent {
        var event = AgentV1.TaskEvent()
        event.leaseID = leaseID
        event.epoch = 4
        event.kind = kind
        event.occurredAtUnixUs = 1_700_000_000_000_000
        event.message = message
        return event
    }

    @Test func theOutboxDirectoryAndItsDatabaseFilesAreOwnerOnly() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state/agent")
        let outbox = try EventOutbox(directory: directory)
        try outbox.append(event("lease-1", .started))
        #expect(fileMode(scratch.path("state")) == 0o700)
        #expect(fileMode(directory) == 0o700)
        for file in ["outbox.db", "outbox.db-wal", "outbox.db-shm", "outbox.db.lock"] {
            #expect(fileMode("\(directory)/\(file)") == 0o600, "\(file)")
        }
    }

    @Test func sequencesStartAtOneAndContinueAfterReopen() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        do {
            let outbox = try EventOutbox(directory: directory)
            #expect(outbox.lastSequence() == 0)
            #expect(try outbox.append(event("l1", .started)) == 1)
            #expect(try outbox.append(event("l1", .succeeded)) == 2)
        }
        let reopened = try EventOutbox(directory: directory)
        #expect(try reopened.append(event("l2", .started)) == 3)
        #expect(reopened.pending().map(\.sequence) == [1, 2, 3])
    }

    @Test func sequencesAreNeverReusedAfterAcknowledgementAndReopen() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        do {
            let outbox = try EventOutbox(directory: directory)
            for _ in 0..<3 { try outbox.append(event("l1", .started)) }
            try outbox.acknowledge(upTo: 3)
            #expect(outbox.pending().isEmpty)
        }
        let reopened = try EventOutbox(directory: directory)
        #expect(try reopened.append(event("l2", .started)) == 4)
    }

    @Test func acknowledgedRowsGoWithTheNextWriteOrSyncNotInATransactionOfTheirOwn() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        do {
            let outbox = try EventOutbox(directory: directory)
            for _ in 0..<3 { try outbox.append(event("l1", .started)) }
            let reader = try SQLiteDatabase(.init(path: directory + "/" + EventOutbox.fileName, access: .readOnly))
            func storedSequences() throws -> [Int64] {
                var sequences: [Int64] = []
                try reader.query("SELECT sequence FROM events ORDER BY sequence") { sequences.append($0[0].int64 ?? -1) }
                return sequences
            }
            try outbox.acknowledge(upTo: 2)
            #expect(outbox.pending().map(\.sequence) == [3])
            #expect(try storedSequences() == [1, 2, 3])
            try outbox.append(event("l1", .succeeded))
            #expect(try storedSequences() == [3, 4])
            try outbox.acknowledge(upTo: 4)
            try outbox.sync()
            #expect(try storedSequences() == [])
        }
        // The numbering outlives the rows.
        #expect(try EventOutbox(directory: directory).append(event("l2", .started)) == 5)
    }

    @Test func aDamagedStoredEventStopsTheOutboxFromOpeningWithItsSequence() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        do {
            let outbox = try EventOutbox(directory: directory)
            try outbox.append(event("l1", .started))
            try outbox.append(event("l1", .succeeded))
        }
        let database = try SQLiteDatabase(.init(path: directory + "/" + EventOutbox.fileName))
        try database.run("UPDATE events SET payload = x'ffffffff' WHERE sequence = 2")
        #expect {
            _ = try EventOutbox(directory: directory)
        } throws: { error in
            guard case .undecodableEvent(let sequence, _)? = error as? EventOutboxError else { return false }
            return sequence == 2
        }
    }

    @Test func aSecondOutboxOnTheSameFileIsRefusedWhileTheFirstIsOpen() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        do {
            let first = try EventOutbox(directory: directory)
            try first.append(event("l1", .started))
            #expect {
                _ = try EventOutbox(directory: directory)
            } throws: { error in
                guard case .inUse(let path)? = error as? EventOutboxError else { return false }
                return path.hasSuffix("/state/outbox.db") && "\(error)".contains("give each agent a state_dir of its own")
            }
        }
        // Closed, the lock is free again: once any child another test of this process forks
        // meanwhile has exec'd (until then it shares the lock file's description and so the
        // flock; O_CLOEXEC closes it only at exec).
        let deadline = ContinuousClock.now + .seconds(10)
        var reopened: EventOutbox?
        while reopened == nil {
            do {
                reopened = try EventOutbox(directory: directory)
            } catch {
                guard case .inUse = error, ContinuousClock.now < deadline else { throw error }
                sched_yield()
            }
        }
        #expect(try reopened?.pending().map(\.sequence) == [1])
    }

    @Test func pendingEventsSurviveReopenInOrderWithTheirContents() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        var written: [AgentV1.TaskEvent] = []
        do {
            let outbox = try EventOutbox(directory: directory)
            for index in 0..<5 {
                var stored = event("lease-\(index)", index % 2 == 0 ? .started : .failed, message: "event \(index)")
                stored.exitStatus = index % 2 == 0 ? nil : AgentV1.ExitStatus(.exitCode(Int32(index)))
                stored.sequence = try outbox.append(stored)
                written.append(stored)
            }
            try outbox.acknowledge(upTo: 2)
        }
        let pending = try EventOutbox(directory: directory).pending()
        #expect(pending.map(\.sequence) == [3, 4, 5])
        #expect(pending.map(\.event) == Array(written[2...]))
        #expect(try EventOutbox(directory: directory).pending(limit: 2).map(\.sequence) == [3, 4])
        #expect(try EventOutbox(directory: directory).pending(after: 3).map(\.sequence) == [4, 5])
        #expect(try EventOutbox(directory: directory).pending(after: 4, limit: 5).map(\.sequence) == [5])
    }

    @Test func syncPutsEveryWriteInTheDatabaseFileItselfNotOnlyInTheLog() throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        let outbox = try EventOutbox(directory: directory)
        try outbox.sync()
        try outbox.append(event("r/t/1", .succeeded))
        // What a power loss would leave if the WAL never reached the disk: the main file.
        func mainFileAlone() throws -> [UInt64] {
            let copy = scratch.path("copy-\(UUID().uuidString)")
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: directory + "/" + EventOutbox.fileName, toPath: copy + "/" + EventOutbox.fileName)
            return try EventOutbox(directory: copy).pending().map(\.sequence)
        }
        #expect(try mainFileAlone() == [])
        try outbox.sync()
        #expect(try mainFileAlone() == [1])

        // A reader holding an older snapshot stops the checkpoint short: that sync does
        // not count, and the next one, once the reader is gone, copies the rest.
        let reader = try SQLiteDatabase(.init(path: directory + "/" + EventOutbox.fileName, access: .readOnly))
        try reader.execute("BEGIN")
        _ = try reader.scalar("SELECT count(*) FROM events")
        try outbox.append(event("r/t/2", .succeeded))
        try outbox.sync()
        #expect(try mainFileAlone() == [1])
        try reader.execute("COMMIT")
        try outbox.sync()
        #expect(try mainFileAlone() == [1, 2])
    }

    @Test func acknowledgementBeyondTheLastSequenceRenumbersPendingEventsPastIt() throws {
        let scratch = try ScratchDirectory()
        let outbox = try EventOutbox(directory: scratch.path("state"))
        try outbox.append(event("l1", .started))
        try outbox.append(event("l2", .started))
        try outbox.append(event("l1", .succeeded))
        try outbox.acknowledge(upTo: 1)
        // The server remembers 41 events of an outbox that was lost: the two pending here
        // are new to it, so they move past 41 in order instead of being forgotten.
        try outbox.acknowledge(upTo: 41)
        #expect(outbox.pending().map(\.sequence) == [42, 43])
        #expect(outbox.pending().map(\.event.leaseID) == ["l2", "l1"])
        #expect(try outbox.append(event("l2", .succeeded)) == 44)
        // With nothing pending, numbering just moves past the server's.
        try outbox.acknowledge(upTo: 44)
        try outbox.acknowledge(upTo: 60)
        #expect(outbox.pending().isEmpty)
        #expect(try outbox.append(event("l3", .started)) == 61)
    }

    @Test func finalEventForgetsTheRunningLease() throws {
        let scratch = try ScratchDirectory()
        let outbox = try EventOutbox(directory: scratch.path("state"))
        let lease = RunningLease(leaseID: "l1", epoch: 4, dagID: "etl", runID: "r1", taskID: "load", attempt: 1,
                                 processGroup: 999_999, processStartTicks: 1, startedAtUnixUs: 5)
        #expect(try outbox.recordStart(of: lease, event: event("l1", .started)) == 1)
        #expect(try outbox.runningLeases() == [lease])
        try outbox.append(event("l1", .succeeded))
        #expect(try outbox.runningLeases().isEmpty)
    }

    @Test func reapOrphansKillsTheProcessGroupAPreviousAgentLeftAndReportsItLost() async throws {
        let scratch = try ScratchDirectory()
        let directory = scratch.path("state")
        // The "previous agent": a task leader with a child of its own, in its own group.
        let nullIn = FileDescriptor(owning: open("/dev/null", O_RDONLY | O_CLOEXEC))
        let nullOut = FileDescriptor(owning: open("/dev/null", O_WRONLY | O_CLOEXEC))
        let pidFile = scratch.path("child.pid")
        let launch = TaskProcess.Launch(executablePath: "/bin/sh",
                                        arguments: ["sh", "-c", "sleep 1000 & echo $! > \(pidFile); wait"],
                                        environment: ["PATH": "/usr/bin:/bin"], workingDirectory: nil)
        let leader = try TaskProcess.spawn(launch, standardInput: nullIn, output: nullOut)
        #expect(await waitUntil { (try? String(contentsOfFile: pidFile, encoding: .utf8))?.contains("\n") == true })
        let child = try #require(Int32((try String(contentsOfFile: pidFile, encoding: .utf8)).filter(\.isNumber)))
        do {
            let outbox = try EventOutbox(directory: directory)
            let lease = RunningLease(leaseID: "r1/load/4", epoch: 4, dagID: "etl", runID: "r1", taskID: "load", attempt: 2,
                                     processGroup: leader, processStartTicks: ProcessIdentity.startTicks(of: leader),
                                     startedAtUnixUs: 7)
            try outbox.recordStart(of: lease, event: event("r1/load/4", .started))
        }

        let restarted = try EventOutbox(directory: directory)
        let reaped = try restarted.reapOrphans()
        #expect(reaped.count == 1)
        #expect(reaped.first?.killedProcessGroup == true)
        let (termination, _) = try await onThreadOfItsOwn { try TaskProcess.reap(leader) }
        #expect(termination == .signalled(SIGKILL))
        #expect(await waitUntil { processHasEnded(child) }, "the leader's child \(child) survived")

        let pending = restarted.pending()
        #expect(pending.map(\.sequence) == [1, 2])
        let failure = try #require(pending.last?.event)
        #expect(failure.kind == .lost)
        #expect(failure.leaseID == "r1/load/4" && failure.epoch == 4)
        #expect(failure.exitStatus == AgentV1.ExitStatus(.signal(SIGKILL)))
        #expect(failure.startedAtUnixUs == 7)
        #expect(try restarted.runningLeases().isEmpty)
        #expect(try restarted.reapOrphans().isEmpty)  // reaped once only
    }

    @Test func reapOrphansLeavesAReusedPidAlone() throws {
        let scratch = try ScratchDirectory()
        let outbox = try EventOutbox(directory: scratch.path("state"))
        // This test process stands in for an unrelated process that got the task's pid.
        let lease = RunningLease(leaseID: "l1", epoch: 1, dagID: "d", runID: "r", taskID: "t", attempt: 1,
                                 processGroup: getpid(), processStartTicks: (ProcessIdentity.startTicks(of: getpid()) ?? 0) + 1,
                                 startedAtUnixUs: 1)
        try outbox.recordStart(of: lease, event: event("l1", .started))
        let reaped = try outbox.reapOrphans()
        #expect(reaped.map(\.killedProcessGroup) == [false])
        #expect(outbox.pending().last?.event.kind == .lost)
    }
}
