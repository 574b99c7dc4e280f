import Foundation
import Testing
import TetherTestSupport

/// Roles and `tether audit` against a real `tether server` process.
@Suite struct AuditCommandTests {
    @Test func rolesLimitTheCLIAndAuditShowsWhoDidWhatAsATableAndJSON() async throws {
        try await onThreadOfItsOwn {
            let server = try ControlCommandTests.Server()
            let file = try server.file("etl.yaml", ControlCommandTests.dag)
            #expect(try server.cli(["dag", "apply", file]).status == 0)
            let created = try server.cli(["token", "create", "--role", "viewer", "--description", "dashboards"])
            #expect(created.status == 0, "\(created)")
            let viewer = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let viewerID = String(viewer.split(separator: "_")[1])
            #expect(try server.cli(["dag", "list"], token: viewer).status == 0, "a viewer reads")
            let refused = try server.cli(["run", "trigger", "nightly_etl"], token: viewer)
            #expect(refused.status == 4 && refused.stderr.contains("permission denied"), "\(refused)")
            #expect(try server.cli(["audit"], token: viewer).status == 4, "the audit log is admins' alone")

            let listed = try server.cli(["token", "list"])
            #expect(listed.stdout.hasPrefix("TOKEN ") && listed.stdout.contains("LAST USED"), "\(listed)")
            let viewerRow = listed.stdout.split(separator: "\n").first { $0.hasPrefix(viewerID) }.map(String.init) ?? ""
            #expect(viewerRow.contains("viewer") && viewerRow.contains("dashboards"), "\(listed.stdout)")
            #expect(viewerRow.filter { $0 == "Z" }.count == 2, "created and last used are times, the rest '-': \(viewerRow)")

            let table = try server.cli(["audit"])
            #expect(table.status == 0, "\(table)")
            let lines = table.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("TIME ") == true && lines.first?.contains("OUTCOME") == true, "\(table.stdout)")
            #expect(lines.count == 4, "TriggerRun refused, CreateToken, ApplyDag: \(table.stdout)")
            #expect(lines[1].contains("\(viewerID) (dashboards)") && lines[1].contains("TriggerRun")
                    && lines[1].contains("dag:nightly_etl") && lines[1].contains("PERMISSION_DENIED") && lines[1].contains("127.0.0.1:"),
                    "\(lines[1])")
            #expect(lines[2].contains("CreateToken") && lines[2].contains("token:\(viewerID)") && lines[2].contains("OK"))
            #expect(!table.stdout.contains(viewer), "no secret")

            let json = try server.cli(["audit", "--json", "--since", "1h", "--limit", "2"])
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let entries = object?["entries"] as? [[String: Any]] ?? []
            #expect(entries.map { $0["method"] as? String } == ["TriggerRun", "CreateToken"], "\(json.stdout)")
            #expect(entries.first?["role"] as? String == "TOKEN_ROLE_VIEWER")
            #expect(entries.first?["statusCode"] as? Int == 7)
            let filtered = try server.cli(["audit", "--method", "ApplyDag", "--since", "2000-01-01"])
            #expect(filtered.stdout.split(separator: "\n").count == 2 && filtered.stdout.contains("ApplyDag"), "\(filtered)")
            let future = try server.cli(["audit", "--since", "2999-01-01"])
            #expect(future.stdout.split(separator: "\n").count == 1, "header only: \(future)")
            let bad = try server.cli(["audit", "--since", "yesterday-ish"])
            #expect(bad.status != 0 && bad.stderr.contains("--since"), "\(bad)")
        }
    }
}
