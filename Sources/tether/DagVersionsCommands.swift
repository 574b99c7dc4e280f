import ArgumentParser
import Foundation
import TetherWire

extension DagCommand {
    /// `tether dag versions DAG`.
    struct Versions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a DAG's versions, newest first.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.ListDagVersionsRequest()
                request.dagID = dag
                request.pageSize = 1000
                var response: ControlV1.ListDagVersionsResponse = try await control.call(ControlV1.ControlService.listDagVersions, request)
                while !response.nextPageToken.isEmpty {  // every page, as one response
                    request.pageToken = response.nextPageToken
                    let page: ControlV1.ListDagVersionsResponse = try await control.call(ControlV1.ControlService.listDagVersions, request)
                    response.versions += page.versions
                    response.nextPageToken = page.nextPageToken
                }
                try emit(response, json: client.json) {
                    printTable(["VERSION", "APPLIED", "HASH", "TASKS", "SCHEDULE"], response.versions.map { version in
                        [String(version.version), formatTime(version.createdAtUnixUs), String(version.contentHash.prefix(12)),
                         String(version.spec?.tasks.count ?? 0), (version.spec?.schedule).map { $0.isEmpty ? "-" : $0 } ?? "-"]
                    })
                }
            }
        }
    }

    /// `tether dag diff DAG A B`.
    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show which DAG-level fields and which tasks changed between two versions.",
            discussion: "B defaults to the latest version. Exit code 0 whether or not they differ.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String
        @Argument(help: "The older version.") var from: UInt32
        @Argument(help: "The newer version (default: the latest).") var to: UInt32 = 0

        func run() async throws {
            try await withControl(client) { control in
                func spec(_ version: UInt32) async throws -> (UInt32, ControlV1.DagSpec) {
                    var request = ControlV1.GetDagRequest()
                    request.dagID = dag
                    request.version = version
                    let response: ControlV1.GetDagResponse = try await control.call(ControlV1.ControlService.getDag, request)
                    guard let found = response.version, let spec = found.spec else { throw CLIError("\(dag) has no version \(version)") }
                    return (found.version, spec)
                }
                let (a, old) = try await spec(from)
                let (b, new) = try await spec(to)
                let diff = try DagSpecDiff(old, new)
                if client.json {
                    print(try diff.json(dagID: dag, from: a, to: b))
                    return
                }
                print("\(dag): version \(a) -> \(b)\(diff.isEmpty ? ": no change" : "")")
                for change in diff.fields { print("  ~ \(change.field): \(change.old) -> \(change.new)") }
                for task in diff.added { print("  + task \(task)") }
                for task in diff.removed { print("  - task \(task)") }
                for (task, changes) in diff.changed {
                    print("  ~ task \(task): " + changes.map { "\($0.field) \($0.old) -> \($0.new)" }.joined(separator: "; "))
                }
            }
        }
    }
}

/// What changed between two DAG specs: DAG-level fields, and tasks added, removed or
/// changed (field by field). Fields are compared as the API's JSON shows them, so a field
/// added to the API is compared without changes here.
struct DagSpecDiff {
    struct FieldChange: Equatable {
        var field: String
        /// JSON text; `-` when unset.
        var old: String
        var new: String
    }

    var fields: [FieldChange] = []
    var added: [String] = []
    var removed: [String] = []
    var changed: [(task: String, fields: [FieldChange])] = []

    var isEmpty: Bool { fields.isEmpty && added.isEmpty && removed.isEmpty && changed.isEmpty }

    init(_ old: ControlV1.DagSpec, _ new: ControlV1.DagSpec) throws {
        var oldObject = try Self.object(old), newObject = try Self.object(new)
        let oldTasks = Self.tasks(oldObject.removeValue(forKey: "tasks")), newTasks = Self.tasks(newObject.removeValue(forKey: "tasks"))
        fields = Self.compare(oldObject, newObject)
        added = newTasks.keys.filter { oldTasks[$0] == nil }.sorted()
        removed = oldTasks.keys.filter { newTasks[$0] == nil }.sorted()
        for id in oldTasks.keys.sorted() {
            guard let before = oldTasks[id], let after = newTasks[id] else { continue }
            let changes = Self.compare(before, after)
            if !changes.isEmpty { changed.append((id, changes)) }
        }
    }

    func json(dagID: String, from: UInt32, to: UInt32) throws -> String {
        func fieldList(_ changes: [FieldChange]) -> [[String: String]] { changes.map { ["field": $0.field, "from": $0.old, "to": $0.new] } }
        let object: [String: Any] = [
            "dagId": dagID, "fromVersion": from, "toVersion": to, "fields": fieldList(fields),
            "tasksAdded": added, "tasksRemoved": removed,
            "tasksChanged": changed.map { ["taskId": $0.task, "fields": fieldList($0.fields)] as [String: Any] },
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    private static func object(_ spec: ControlV1.DagSpec) throws -> [String: Any] {
        let data = Data(try spec.jsonString(options: compactJSON).utf8)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    private static func tasks(_ value: Any?) -> [String: [String: Any]] {
        var byID: [String: [String: Any]] = [:]
        for task in value as? [[String: Any]] ?? [] { byID[task["taskId"] as? String ?? ""] = task }
        return byID
    }

    private static func compare(_ old: [String: Any], _ new: [String: Any]) -> [FieldChange] {
        Set(old.keys).union(new.keys).sorted().compactMap { key in
            let a = text(old[key]), b = text(new[key])
            return a == b ? nil : FieldChange(field: key, old: a, new: b)
        }
    }

    /// Canonical JSON text of a value (sorted keys), or `-` when absent.
    private static func text(_ value: Any?) -> String {
        guard let value else { return "-" }
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]) else { return "?" }
        return String(decoding: data, as: UTF8.self)
    }
}
