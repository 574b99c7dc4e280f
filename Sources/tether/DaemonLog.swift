import ArgumentParser
import Foundation
import Logging

/// How `tether server` and `tether agent` write their log to stderr (`--log-format`).
enum LogFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// `2026-11-26T00:38:03.231Z tether agent: connected as eu-1`: the UTC time, the
    /// daemon's name, the message, then ` key=value` for each metadata entry, if any.
    case human
    /// One JSON object per line: `time` (RFC 3339 UTC, milliseconds), `level`, `label`,
    /// `message` and `metadata` (an object, empty without any), for journald and log shippers.
    case json
}

/// A daemon's logger: swift-log's `Logger` over `DaemonLogHandler`, at `info` and above.
/// - Parameters:
///   - label: the logger's label, e.g. "tether.server" (JSON's `label`).
///   - name: how human lines name the daemon, e.g. "tether server".
func daemonLogger(label: String, name: String, format: LogFormat) -> Logger {
    Logger(label: label) { label in DaemonLogHandler(label: label, name: name, format: format) }
}

/// A swift-log handler writing one line per entry to stderr in `LogFormat`. Each line is one
/// `write(2)` of the whole line, so lines from several threads never interleave.
struct DaemonLogHandler: LogHandler {
    let label: String
    let name: String
    let format: LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let own = event.metadata { all.merge(own) { $1 } }
        let line = Self.line(time: Date.now, level: event.level, label: label, name: name, message: event.message.description,
                             metadata: all, format: format)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// One entry as a line (without its newline).
    static func line(time: Date, level: Logger.Level, label: String, name: String, message: String,
                     metadata: Logger.Metadata, format: LogFormat) -> String {
        let stamp = time.ISO8601Format(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        switch format {
        case .human:
            let pairs = metadata.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            return "\(stamp) \(name): \(message)\(pairs)"
        case .json:
            let object: [String: Any] = [
                "time": stamp, "level": level.rawValue, "label": label, "message": message,
                "metadata": metadata.mapValues(Self.json),
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }

    private static func json(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .dictionary(let dictionary): dictionary.mapValues(json)
        case .array(let array): array.map(json)
        }
    }
}
