import Foundation
import TetherWire

/// Prints `rows` under `headers` as an aligned table (two spaces between columns).
func printTable(_ headers: [String], _ rows: [[String]]) {
    var widths = headers.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(headers))
    for row in rows { print(line(row)) }
}

/// Protobuf JSON on one line, UTF-8 as it is: one `tether events --json` line, or a value
/// to compare (`tether dag diff`).
let compactJSON = WireJSONOptions(layout: .compact, alwaysPrintsFieldsWithoutPresence: false, escapesNonASCII: false)

/// The response as protobuf JSON (`--json`), or the human form.
func emit(_ message: some WireMessage, json: Bool, human: () -> Void) throws {
    if json {
        print(try message.jsonString())
    } else {
        human()
    }
}

/// A wire time (microseconds since the epoch) as "2026-11-25 14:03:07Z", or "-".
func formatTime(_ unixMicroseconds: Int64) -> String {
    guard unixMicroseconds > 0 else { return "-" }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
    return formatter.string(from: Date(timeIntervalSince1970: Double(unixMicroseconds) / 1e6))
}

/// "1.2s", "350ms", "-".
func formatDuration(fromMicroseconds start: Int64, to end: Int64) -> String {
    guard start > 0, end >= start else { return "-" }
    let ms = (end - start) / 1000
    return ms < 1000 ? "\(ms)ms" : String(format: "%.1fs", Double(ms) / 1000)
}

extension ControlV1.RunState {
    var label: String {
        switch self {
        case .queued: "queued"
        case .running: "running"
        case .success: "success"
        case .failed: "failed"
        case .cancelled: "cancelled"
        default: "unknown"
        }
    }
}

extension ControlV1.TaskState {
    var label: String {
        switch self {
        case .scheduled: "scheduled"
        case .queued: "queued"
        case .running: "running"
        case .success: "success"
        case .failed: "failed"
        case .upForRetry: "up_for_retry"
        case .upstreamFailed: "upstream_failed"
        case .skipped: "skipped"
        case .cancelled: "cancelled"
        default: "unknown"
        }
    }
}

extension ControlV1.TokenRole {
    var label: String {
        switch self {
        case .viewer: "viewer"
        case .operator: "operator"
        case .admin: "admin"
        case .agent: "agent"
        default: "unknown"
        }
    }
}
