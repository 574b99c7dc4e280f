import Foundation
import GRPC
import Testing
@testable import TetherServer
import TetherWire

/// The dashboard's routes by role: none without a session, reads for viewers, actions for
/// operators and admins, each action in the audit log.
@Suite struct DashboardRolesTests {
    /// Every route of the JSON API (`Dashboard.respond`), with sample ids.
    static let reads = ["/api/dags", "/api/dags/roles", "/api/dags/roles/versions", "/api/dags/roles/grid", "/api/runs",
                        "/api/runs/roles-1", "/api/agents", "/api/agents/eu-1", "/api/session"]
    static let writes = ["/api/dags/roles/pause", "/api/dags/roles/unpause", "/api/dags/roles/trigger", "/api/runs/roles-1/cancel"]
    static let dag = "dag_id: roles\ntasks:\n  - {id: a, entrypoint: e}\n"

    @Test func everyRouteIs401WithoutASession() async throws {
        let h = try ServerHarness()
        let base = "http://\(h.address)"
        for path in Self.reads + ["/api/events", "/api/audit"] {
            #expect(try await DashboardTests.curl(base + path).status == 401, "GET \(path)")
        }
        for path in Self.writes {
            #expect(try await DashboardTests.curl(base + path, method: "POST").status == 401, "POST \(path)")
        }
        #expect(try await DashboardTests.curl(base + "/api/session", method: "DELETE").status == 401)
        await h.stop()
    }

    @Test func everyWriteRouteIsAnAuditedAction() {
        for path in Self.writes {
            let parts = Dashboard.pathComponents(path)!.dropFirst()
            #expect(Dashboard.auditedWrite(method: "POST", Array(parts)) != nil, "\(path)")
        }
        #expect(Dashboard.auditedWrite(method: "DELETE", ["session"]) == nil)
    }

    @Test func viewersReadButEveryWriteIs403AndRecordedOperatorsAct() async throws {
        let h = try ServerHarness()
        let base = "http://\(h.address)"
        _ = try await h.apply(Self.dag)
        let viewerSecret = try await h.createToken(.viewer)
        let viewer = try await DashboardTests.login(base, secret: viewerSecret)
        #expect(viewer.reply.status == 200 && viewer.reply.body.contains(#""role":"viewer""#), "\(viewer.reply)")
        for path in Self.reads {
            let reply = try await DashboardTests.curl(base + path, headers: ["cookie": viewer.cookie])
            #expect(reply.status == 200 || reply.status == 404, "viewer GET \(path): \(reply)")
        }
        #expect(try await DashboardTests.curl(base + "/ui/dags", headers: ["cookie": viewer.cookie]).status == 200)
        for path in Self.writes {
            let reply = try await DashboardTests.curl(base + path, method: "POST", headers: ["cookie": viewer.cookie, "x-csrf-token": viewer.csrf])
            #expect(reply.status == 403, "viewer POST \(path): \(reply)")
        }
        var get = ControlV1.GetDagRequest()
        get.dagID = "roles"
        let dag: ControlV1.GetDagResponse = try await h.control(ControlV1.ControlService.getDag, get)
        #expect(dag.dag?.paused == false && dag.dag?.activeRuns == 0, "a viewer changed nothing")
        let refused = try await AuditLogTests.entries(h).filter { $0.surface == "dashboard" }
        #expect(refused.map(\.method) == ["CancelRun", "TriggerRun", "UnpauseDag", "PauseDag"], "\(refused.map(\.method))")
        #expect(refused.allSatisfy { $0.statusCode == UInt32(GRPCStatusCode.permissionDenied.rawValue) && $0.role == .viewer
            && $0.tokenID == AuditLogTests.tokenID(ofSecret: viewerSecret) && $0.peer.hasPrefix("127.0.0.1:") })
        // A viewer may still log out.
        let logout = try await DashboardTests.curl(base + "/api/session", method: "DELETE",
                                                   headers: ["cookie": viewer.cookie, "x-csrf-token": viewer.csrf])
        #expect(logout.status == 200, "\(logout)")

        let operatorSecret = try await h.createToken(.operator)
        let op = try await DashboardTests.login(base, secret: operatorSecret)
        let triggered = try await DashboardTests.curl(base + "/api/dags/roles/trigger", method: "POST",
                                                      headers: ["cookie": op.cookie, "x-csrf-token": op.csrf])
        #expect(triggered.status == 200, "\(triggered)")
        let paused = try await DashboardTests.curl(base + "/api/dags/nope/pause", method: "POST",
                                                   headers: ["cookie": op.cookie, "x-csrf-token": op.csrf])
        #expect(paused.status == 404)
        let acted = try await AuditLogTests.entries(h).filter { $0.surface == "dashboard" && $0.role == .operator }
        #expect(acted.map(\.method) == ["PauseDag", "TriggerRun"])
        #expect(acted.map(\.target) == ["dag:nope", "dag:roles"])
        #expect(acted.map(\.statusCode) == [UInt32(GRPCStatusCode.notFound.rawValue), 0])

        // The audit log is admins' alone, as ListAuditEntries is.
        #expect(try await DashboardTests.curl(base + "/api/audit", headers: ["cookie": op.cookie]).status == 403)
        let viewerAgain = try await DashboardTests.login(base, secret: viewerSecret)
        #expect(try await DashboardTests.curl(base + "/api/audit", headers: ["cookie": viewerAgain.cookie]).status == 403)
        let admin = try await DashboardTests.login(base)
        #expect(try await DashboardTests.curl(base + "/ui/audit", headers: ["cookie": admin.cookie]).status == 200)
        let audit = try await DashboardTests.curl(base + "/api/audit?limit=2", headers: ["cookie": admin.cookie])
        #expect(audit.status == 200, "\(audit)")
        let object = try JSONSerialization.jsonObject(with: Data(audit.body.utf8)) as? [String: Any]
        let entries = object?["entries"] as? [[String: Any]] ?? []
        #expect(entries.map { $0["method"] as? String } == ["PauseDag", "TriggerRun"], "\(audit.body)")
        #expect(entries.first?["surface"] as? String == "dashboard" && (object?["nextPageToken"] as? String ?? "").isEmpty == false)
        await h.stop()
    }
}
