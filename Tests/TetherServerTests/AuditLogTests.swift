import Foundation
import GRPC
import Synchronization
import Testing
@testable import TetherServer
import TetherScheduler
import TetherTestSupport
import TetherWire

/// The audit log (`AuditLog`, `ListAuditEntries`) and tokens' last use.
@Suite struct AuditLogTests {
    static let dag = "dag_id: audited\nparams: {secret_param: \"\"}\ntasks:\n  - {id: a, entrypoint: e}\n"

    static func entries(_ h: ServerHarness, _ request: ControlV1.ListAuditEntriesRequest = .init()) async throws -> [ControlV1.AuditEntry] {
        let response: ControlV1.ListAuditEntriesResponse = try await h.control(ControlV1.ControlService.listAuditEntries, request)
        return response.entries
    }

    static func tokenID(ofSecret secret: String) -> String {
        String(secret.split(separator: "_")[1])
    }

    @Test func writesAreRecordedWithWhoWhatWhereAndOutcomeAndReadsAreNot() async throws {
        let h = try ServerHarness()
        let before = Int64(Date().timeIntervalSince1970 * 1_000_000) - 1_000_000
        _ = try await h.apply(Self.dag, source: "dags/audited.yaml")
        var create = ControlV1.CreateTokenRequest()
        create.role = .operator
        create.description = "on call"
        let created: ControlV1.CreateTokenResponse = try await h.control(ControlV1.ControlService.createToken, create)
        let operatorSecret = created.secret, operatorID = created.token!.tokenID
        let viewerSecret = try await h.createToken(.viewer)

        // An operator's trigger (OK) and cancel of a run that does not exist (NOT_FOUND).
        var trigger = ControlV1.TriggerRunRequest()
        trigger.dagID = "audited"
        trigger.params = ["secret_param": "hunter2"]
        trigger.note = "by hand"
        let triggered: ControlV1.TriggerRunResponse = try await h.control(ControlV1.ControlService.triggerRun, trigger, secret: operatorSecret)
        var cancel = ControlV1.CancelRunRequest()
        cancel.runID = "no-such-run"
        await #expect(throws: GRPCStatus.self) {
            let _: ControlV1.CancelRunResponse = try await h.control(ControlV1.ControlService.cancelRun, cancel, secret: operatorSecret)
        }
        // Reads, by anyone, are not recorded.
        let _: ControlV1.ListDagsResponse = try await h.control(ControlV1.ControlService.listDags, .init(), secret: viewerSecret)
        _ = try await h.run(triggered.run!.runID)
        // A viewer's write is refused and recorded; an unknown token's is refused and not.
        do {
            let _: ControlV1.TriggerRunResponse = try await h.control(ControlV1.ControlService.triggerRun, trigger, secret: viewerSecret)
            Issue.record("a viewer triggered a run")
        } catch {
            #expect(error.code == .permissionDenied)
        }
        await #expect(throws: GRPCStatus.self) {
            let _: ControlV1.TriggerRunResponse = try await h.control(ControlV1.ControlService.triggerRun, trigger, secret: "tether_000000000000_x")
        }

        let entries = try await Self.entries(h)
        #expect(entries.map(\.method) == ["TriggerRun", "CancelRun", "TriggerRun", "CreateToken", "CreateToken", "ApplyDag"],
                "\(entries.map(\.method))")
        #expect(entries.map(\.id) == entries.map(\.id).sorted(by: >), "newest first")
        for entry in entries {
            #expect(entry.peer.hasPrefix("127.0.0.1:"), "\(entry.peer)")
            #expect(entry.surface == "grpc")
            #expect(entry.atUnixUs >= before && entry.atUnixUs <= Int64(Date().timeIntervalSince1970 * 1_000_000))
        }
        let refused = entries[0]
        #expect(refused.tokenID == Self.tokenID(ofSecret: viewerSecret) && refused.role == .viewer)
        #expect(refused.statusCode == UInt32(GRPCStatusCode.permissionDenied.rawValue) && refused.statusMessage.contains("viewer"))
        #expect(refused.target == "dag:audited")
        let notFound = entries[1]
        #expect(notFound.tokenID == operatorID && notFound.tokenDescription == "on call" && notFound.role == .operator)
        #expect(notFound.target == "run:no-such-run" && notFound.statusCode == UInt32(GRPCStatusCode.notFound.rawValue))
        let ok = entries[2]
        #expect(ok.tokenID == operatorID && ok.statusCode == 0 && ok.statusMessage.isEmpty)
        #expect(ok.target == "run:\(triggered.run!.runID)")
        #expect(ok.summary.contains("secret_param") && ok.summary.contains("by hand") && !ok.summary.contains("hunter2"),
                "param names, never their values: \(ok.summary)")
        let createdEntry = entries[4]
        #expect(createdEntry.tokenID == "bootstrap" && createdEntry.role == .admin && createdEntry.target == "token:\(operatorID)")
        #expect(createdEntry.summary.contains("role operator"))
        for entry in entries {
            #expect(!entry.summary.contains(operatorSecret) && !entry.target.contains(operatorSecret), "no secret in the log")
        }
        #expect(entries[5].target == "dag:audited" && entries[5].summary.contains("dags/audited.yaml"))
        await h.stop()
    }

    @Test func listAuditEntriesFiltersAndPages() async throws {
        let h = try ServerHarness()
        let operatorSecret = try await h.createToken(.operator)
        for name in ["p1", "p2", "p3"] {
            var pool = ControlV1.SetPoolRequest()
            pool.name = name
            pool.slots = 2
            let _: ControlV1.SetPoolResponse = try await h.control(ControlV1.ControlService.setPool, pool)
        }
        var pause = ControlV1.PauseDagRequest()
        pause.dagID = "missing"
        await #expect(throws: GRPCStatus.self) {
            let _: ControlV1.PauseDagResponse = try await h.control(ControlV1.ControlService.pauseDag, pause, secret: operatorSecret)
        }
        var byMethod = ControlV1.ListAuditEntriesRequest()
        byMethod.method = "SetPool"
        #expect(try await Self.entries(h, byMethod).map(\.target) == ["pool:p3", "pool:p2", "pool:p1"])
        var byToken = ControlV1.ListAuditEntriesRequest()
        byToken.tokenID = Self.tokenID(ofSecret: operatorSecret)
        #expect(try await Self.entries(h, byToken).map(\.method) == ["PauseDag"])
        var future = ControlV1.ListAuditEntriesRequest()
        future.sinceUnixUs = Int64(Date().timeIntervalSince1970 * 1_000_000) + 3_600_000_000
        #expect(try await Self.entries(h, future).isEmpty)

        var page = ControlV1.ListAuditEntriesRequest()
        page.pageSize = 2
        var seen: [UInt64] = []
        while true {
            let response: ControlV1.ListAuditEntriesResponse = try await h.control(ControlV1.ControlService.listAuditEntries, page)
            #expect(response.entries.count <= 2)
            seen += response.entries.map(\.id)
            guard !response.nextPageToken.isEmpty else { break }
            page.pageToken = response.nextPageToken
        }
        #expect(seen.count == 5 && seen == seen.sorted(by: >), "\(seen)")
        var bad = ControlV1.ListAuditEntriesRequest()
        bad.pageToken = "x"
        do {
            let _: ControlV1.ListAuditEntriesResponse = try await h.control(ControlV1.ControlService.listAuditEntries, bad)
            Issue.record("a bad page token was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
        }
        await h.stop()
    }

    @Test func theLogAndTokensLastUseSurviveARestart() async throws {
        let h = try ServerHarness()
        let viewerSecret = try await h.createToken(.viewer)
        let viewerID = Self.tokenID(ofSecret: viewerSecret)
        let _: ControlV1.ListDagsResponse = try await h.control(ControlV1.ControlService.listDags, .init(), secret: viewerSecret)
        var list = ControlV1.ListTokensRequest()
        list.includeInactive = true
        let listed: ControlV1.ListTokensResponse = try await h.control(ControlV1.ControlService.listTokens, list)
        let lastUsed = try #require(listed.tokens.first { $0.tokenID == viewerID }).lastUsedAtUnixUs
        #expect(lastUsed > 0, "a use is seen at once, in memory")
        await h.stop()

        let again = try ServerHarness(restarting: h)
        let relisted: ControlV1.ListTokensResponse = try await again.control(ControlV1.ControlService.listTokens, list)
        #expect(relisted.tokens.first { $0.tokenID == viewerID }?.lastUsedAtUnixUs == lastUsed)
        let entries = try await Self.entries(again)
        #expect(entries.map(\.method) == ["CreateToken"] && entries.first?.summary.contains("role viewer") == true)
        await again.stop()
    }

    // MARK: AuditLog directly

    static func entry(_ n: Int) -> AuditEntry {
        AuditEntry(atMilliseconds: Int64(n), tokenID: "t\(n % 2)", tokenDescription: "", role: .admin, method: "SetPool",
                   target: "pool:p\(n)", summary: "", peer: "127.0.0.1:1", surface: .grpc, statusCode: 0, statusMessage: "")
    }

    @Test func retentionKeepsTheNewestEntriesPruningInBatches() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("audit.db")
        let log = try AuditLog(path: path, retention: .init(maxEntries: 5, pruneBatch: 3))
        for n in 1...7 { try log.append(Self.entry(n)) }
        #expect(log.count == 7, "below 5 + 3 nothing is pruned")
        try log.append(Self.entry(8))
        #expect(log.count == 5)
        #expect(try log.entries(limit: 100).map(\.id) == [8, 7, 6, 5, 4])
        for n in 9...10 { try log.append(Self.entry(n)) }
        #expect(log.count == 7)
        // Reopened, it knows where its oldest entry is and keeps pruning from there.
        let reopened = try AuditLog(path: path, retention: .init(maxEntries: 5, pruneBatch: 3))
        try reopened.append(Self.entry(11))
        #expect(reopened.count == 5)
        #expect(try reopened.entries(limit: 100).map(\.id) == [11, 10, 9, 8, 7])
        #expect(try reopened.entries(tokenID: "t1", limit: 100).map(\.id) == [11, 9, 7])
        #expect(try reopened.entries(since: 10, limit: 100).map(\.id) == [11, 10])
        #expect(try reopened.entries(before: 9, limit: 1).map(\.id) == [8])
    }

    // MARK: Last use

    /// Writes handed to the store's `scheduleWrite`, run when the test says.
    final class ManualWrites: Sendable {
        private let pending = Mutex<[@Sendable () -> Void]>([])
        var count: Int { pending.withLock { $0.count } }
        func schedule(_ work: @escaping @Sendable () -> Void) { pending.withLock { $0.append(work) } }
        func runAll() {
            for work in pending.withLock({ let all = $0; $0 = []; return all }) { work() }
        }
    }

    @Test func aDashboardSessionsRequestsAreUsesOfItsToken() throws {
        let clock = ManualClock()
        let (sessions, _) = try DashboardTests.sessions(clock)
        let session = try sessions.login(secret: ServerHarness.adminSecret)
        let tokens = sessions.tokens
        let atLogin = tokens.record(tokenID: "bootstrap")?.lastUsedAtMilliseconds
        #expect(atLogin == clock.now().millisecondsSinceEpoch)
        clock.advance(milliseconds: 5_000)
        #expect(sessions.session(session.id) != nil)
        #expect(tokens.record(tokenID: "bootstrap")?.lastUsedAtMilliseconds == atLogin.map { $0 + 5_000 })
    }

    @Test func lastUseIsKeptInMemoryAndWrittenAtMostOnceAMinutePerToken() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("tokens.db")
        let writes = ManualWrites()
        let store = try TokenStore(path: path, scheduleWrite: writes.schedule)
        let (record, secret) = try store.create(role: .viewer, description: "v", now: 1_000)
        #expect(store.authenticate(secret: secret, now: 2_000)?.lastUsedAtMilliseconds == 2_000)
        #expect(writes.count == 1, "the first use schedules a write")
        #expect(store.authenticate(secret: secret, now: 30_000)?.lastUsedAtMilliseconds == 30_000)
        #expect(writes.count == 1, "within a minute no other write is scheduled")
        #expect(try TokenStore(path: path).record(tokenID: record.tokenID)?.lastUsedAtMilliseconds == 0, "nothing on disk yet")
        writes.runAll()
        #expect(try TokenStore(path: path).record(tokenID: record.tokenID)?.lastUsedAtMilliseconds == 30_000)
        _ = store.authenticate(secret: secret, now: 61_999)
        #expect(writes.count == 0)
        _ = store.authenticate(secret: secret, now: 62_000)
        #expect(writes.count == 1, "a minute after the last write was scheduled")
        _ = store.authenticate(secret: secret, now: 70_000)
        #expect(try store.persistLastUsed() == 1, "as at shutdown: what is left")
        #expect(try store.persistLastUsed() == 0)
        #expect(try TokenStore(path: path).record(tokenID: record.tokenID)?.lastUsedAtMilliseconds == 70_000)
        #expect(store.authenticate(secret: "tether_\(record.tokenID)_wrong", now: 80_000) == nil)
        #expect(store.record(tokenID: record.tokenID)?.lastUsedAtMilliseconds == 70_000, "a failed attempt is no use")
    }
}
