import Foundation
import GRPC
import Synchronization
import Testing
import TetherTestSupport
import TetherWire

/// The data dir on a real filesystem that fills up: a tmpfs of 2 MiB and a filler file.
@Suite struct DiskFullTests {
    static let dag = """
        dag_id: d
        tasks:
          - id: t
            entrypoint: work
        """

    static let services = ["", "tether.agent.v1.AgentService", "tether.control.v1.ControlService"]

    /// Polls health until every service in `services` says `status`, or fails at `deadline`.
    static func waitForHealth(_ status: HealthV1.HealthCheckResponse.ServingStatus, _ h: ServerHarness, within deadline: Duration = .seconds(30)) async throws {
        let end = ContinuousClock.now + deadline
        while true {
            var seen: [HealthV1.HealthCheckResponse.ServingStatus] = []
            for service in services { seen.append(try await h.health(service)) }
            if seen.allSatisfy({ $0 == status }) { return }
            guard ContinuousClock.now < end else {
                Issue.record("health did not become \(status) within \(deadline): \(seen)")
                throw GRPCStatus(code: .deadlineExceeded, message: "health stayed \(seen)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test(.enabled(if: SmallFilesystem.isAvailable, "mounting a tmpfs needs root: \(SmallFilesystem.unavailableReason ?? "")"))
    func aFullDiskIsNotServingAndTheServerServesAgainWithoutARestartWhenSpaceReturns() async throws {
        let disk = try SmallFilesystem(bytes: 2 << 20)
        let log = Mutex<[String]>([])
        let h = try ServerHarness(dataDirectory: disk.url.appendingPathComponent("data"),
                                  log: { line in log.withLock { $0.append(line) } })
        // Acknowledged before the fault: a DAG, a run, and its task's lease on an agent.
        _ = try await h.apply(Self.dag)
        let agent = try await h.connectAgent("a", entrypoints: ["work"], slots: 1, instanceID: "instance-a")
        _ = try await agent.welcome()
        var acked = [try await h.trigger("d").runID]
        let grant = try await agent.grant()
        for service in Self.services { #expect(try await h.health(service) == .serving) }

        try disk.fill()
        // The WAL may have a little room left; the first write that needs more fails.
        var refusal: GRPCStatus?
        for _ in 0..<50 {
            do {
                acked.append(try await h.trigger("d").runID)
            } catch {
                refusal = error
                break
            }
        }
        let status = try #require(refusal, "50 runs fitted on a full disk")
        #expect(status.code == .unavailable)
        #expect(status.message.contains("SQLITE_FULL") && status.message.contains("no space left"), "\(status.message)")
        try await Self.waitForHealth(.notServing, h)
        // Refused at once while the store fails, with the same reason; the event is not acked.
        await #expect(throws: GRPCStatus.self) { _ = try await h.trigger("d") }
        try await agent.report(grant, .succeeded, sequence: 1)

        try disk.free()
        try await Self.waitForHealth(.serving, h)
        // The reloaded scheduler has the agent reconnect and resume its lease.
        let ended = await agent.endStatus()
        #expect(ended?.code == .unavailable, "\(String(describing: ended))")
        let again = try await h.connectAgent("a", entrypoints: ["work"], slots: 1,
                                             resumed: [AgentV1.ResumedLease(leaseID: grant.leaseID, epoch: grant.epoch)],
                                             instanceID: "instance-a")
        let welcome = try await again.welcome()
        #expect(welcome.confirmedLeaseIds == [grant.leaseID])
        #expect(welcome.ackedSequence == 0)  // the report during the outage was not applied
        try await again.report(grant, .succeeded, sequence: 1)
        #expect(try await again.ack().sequence == 1)

        // New writes succeed, and everything acknowledged before the fault is there.
        let after = try await h.trigger("d")
        var list = ControlV1.ListRunsRequest()
        list.dagID = "d"
        let runs: ControlV1.ListRunsResponse = try await h.control(ControlV1.ControlService.listRuns, list)
        #expect(Set(runs.runs.map(\.runID)) == Set(acked + [after.runID]))
        #expect(try await h.run(acked[0]).run?.state == .success)

        let lines = log.withLock { $0 }
        #expect(lines.filter { $0.hasPrefix("state store failed: ") }.count == 1, "\(lines)")
        #expect(lines.filter { $0.hasPrefix("state store writes again") }.count == 1, "\(lines)")
        // (The audit log, on the same disk, may log its own failure first.)
        #expect(lines.first { $0.hasPrefix("state store failed: ") }?.contains("no space left") == true, "\(lines)")
        await again.close()
        await h.stop()
        withExtendedLifetime(disk) {}  // unmounted only after the server stopped
    }
}
