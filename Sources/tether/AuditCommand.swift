import ArgumentParser
import Foundation
import GRPC
import TetherSyntax
import TetherWire

/// `tether audit`: the server's audit log, newest first.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Show the audit log: who changed what, from where, and how it ended (admin tokens only).",
        discussion: "Every ControlService call that changes something (apply, trigger, cancel, clear, backfill, pause, "
            + "drain, pools, tokens) and every dashboard action is recorded, refused ones (PERMISSION_DENIED) too, with the "
            + "token, its role, the target, a summary of the arguments (never a secret), the caller's address and the outcome. "
            + "Reads are not recorded. The server keeps the newest 100,000 entries.")
    @OptionGroup var client: ClientOptions
    @Option(help: ArgumentHelp("Only entries since then: a duration ago (30m, 24h, 7d) or an instant (2026-12-01, 2026-12-01T10:00:00Z).",
                               valueName: "WHEN")) var since: String?
    @Option(help: "Only calls made with this token id.") var tokenId: String?
    @Option(help: "Only calls of this method, e.g. TriggerRun.") var method: String?
    @Option(help: "At most this many entries (1-100000).") var limit = 50

    func validate() throws {
        guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 100000") }
    }

    /// `--since` as microseconds since the epoch.
    static func sinceMicroseconds(_ text: String, now: Date = Date()) throws -> Int64 {
        if let ago = try? DurationText.milliseconds(parsing: text) {
            return max(0, Int64(now.timeIntervalSince1970 * 1000) - ago) * 1000
        }
        do {
            return try UTCTimestamp.unixMicroseconds(parsing: text)
        } catch {
            throw ValidationError("--since: '\(text)' is neither a duration (24h) nor an instant (2026-12-01T10:00:00Z)")
        }
    }

    func run() async throws {
        let sinceUnixUs = try since.map { try Self.sinceMicroseconds($0) } ?? 0
        try await withControl(client) { control in
            var all = ControlV1.ListAuditEntriesResponse()
            var request = ControlV1.ListAuditEntriesRequest()
            request.sinceUnixUs = sinceUnixUs
            request.tokenID = tokenId ?? ""
            request.method = method ?? ""
            repeat {
                request.pageSize = UInt32(min(1_000, limit - all.entries.count))
                let page: ControlV1.ListAuditEntriesResponse = try await control.call(ControlV1.ControlService.listAuditEntries, request)
                all.entries += page.entries
                all.nextPageToken = page.nextPageToken
                request.pageToken = page.nextPageToken
            } while !request.pageToken.isEmpty && all.entries.count < limit
            try emit(all, json: client.json) {
                printTable(["TIME", "TOKEN", "ROLE", "METHOD", "TARGET", "FROM", "OUTCOME", "SUMMARY"], all.entries.map { entry in
                    let code = GRPCStatusCode(rawValue: Int(entry.statusCode))
                    let outcome = code == .ok ? "OK" : "\(code): \(entry.statusMessage)"
                    let who = entry.tokenDescription.isEmpty ? entry.tokenID : "\(entry.tokenID) (\(entry.tokenDescription))"
                    let via = entry.surface == "dashboard" ? " [dashboard]" : ""
                    return [formatTime(entry.atUnixUs), who, entry.role.label, entry.method + via,
                            entry.target.isEmpty ? "-" : entry.target, entry.peer.isEmpty ? "-" : entry.peer,
                            Self.clipped(outcome, 80), Self.clipped(entry.summary, 100)]
                })
            }
        }
    }

    /// One line of at most `limit` characters.
    static func clipped(_ text: String, _ limit: Int) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ")
        return line.count <= limit ? line : String(line.prefix(limit - 1)) + "…"
    }
}
