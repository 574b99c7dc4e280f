import TetherScheduler
internal import Yams
import TetherSyntax
import TetherYAML

/// Turns a composed YAML tree into a `DAGSpec`, collecting a problem for every unknown
/// key, missing key and wrongly typed value instead of stopping at the first, and
/// remembering where each field was written so `DAGSpec.validate()` problems can be
/// reported with lines too.
///
/// Work is bounded by the input: only known keys are descended into, and lists longer
/// than the spec limits allow are reported without being read.
struct DAGFileReader {
    let sourceName: String
    private(set) var problems: [DAGFileProblem] = []

    /// Where things were written, for `locate(_:)`.
    private var rootLine: Int?
    private var topKeyLines: [String: Int] = [:]
    private var defaultsKeyLines: [String: Int] = [:]
    private var tasks: [TaskLocation] = []
    /// The document or a task was not a mapping: validating what was read of it would
    /// only report its fields as empty.
    private var documentUnreadable = false

    private struct TaskLocation {
        var line: Int?
        var unreadable = false
        var keyLines: [String: Int] = [:]
    }

    /// Fields a task may inherit from `defaults:`.
    private struct TaskDefaults {
        var queue: String?
        var retries: Int?
        var retryDelay: Int64?
        var exponentialBackoff: Bool?
        var maxRetryDelay: Int64?
        var executionTimeout: Int64??
        var priority: Int?
        var triggerRule: TriggerRule?
        var params: [String: String]?
        var pool: String?
        var poolSlots: Int?
        var queueTimeout: Int64??
        var onSuccess: String?
        var onFailure: String?
        var onRetry: String?
    }

    /// Who a problem is about.
    private struct Place {
        var taskIndex: Int?
        var taskID: String?
        /// `defaults.` inside the defaults section.
        var fieldPrefix = ""

        static let top = Place()
        static let defaults = Place(fieldPrefix: "defaults.")
    }

    static let topKeys = [
        "dag_id", "description", "schedule", "paused", "catchup", "run_timeout", "max_active_runs", "max_active_tasks", "params", "defaults", "tasks",
        "on_success", "on_failure", "on_deadline_miss", "deadline",
    ]
    static let defaultsKeys = [
        "queue", "retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay", "execution_timeout", "priority",
        "trigger_rule", "params", "pool", "pool_slots", "queue_timeout", "on_success", "on_failure", "on_retry",
    ]
    static let taskKeys = ["id", "entrypoint", "depends_on"] + defaultsKeys

    init(sourceName: String) {
        self.sourceName = sourceName
    }

    // MARK: - Document

    /// The spec `root` describes, with defaults applied. Fields that could not be read keep
    /// their built-in defaults; `problems` says why.
    mutating func read(_ root: Node) -> DAGSpec {
        var spec = DAGSpec(dagID: "", tasks: [])
        rootLine = root.mark?.line
        guard case .mapping(let mapping) = root else {
            report(root.mark?.line, .top, nil, "expected a mapping with dag_id and tasks, found \(kind(root))")
            documentUnreadable = true
            return spec
        }
        let entries = knownEntries(mapping, allowed: Self.topKeys, place: .top)
        for (key, entry) in entries { topKeyLines[key] = entry.keyLine }
        for required in ["dag_id", "tasks"] where entries[required] == nil {
            report(rootLine, .top, required, "is required")
        }
        let place = Place.top
        if let node = entries["dag_id"]?.value, let value = string(node, "dag_id", place) { spec.dagID = value }
        if let node = entries["description"]?.value, let value = string(node, "description", place) { spec.description = value }
        if let node = entries["schedule"]?.value, let value = string(node, "schedule", place) { spec.schedule = value }
        if let node = entries["paused"]?.value, let value = bool(node, "paused", place) { spec.paused = value }
        if let node = entries["catchup"]?.value, let value = bool(node, "catchup", place) { spec.catchup = value }
        if let node = entries["run_timeout"]?.value, let value = duration(node, "run_timeout", place) {
            spec.runTimeoutMilliseconds = value == 0 ? nil : value
        }
        if let node = entries["max_active_runs"]?.value, let value = integer(node, "max_active_runs", place) { spec.maxActiveRuns = value }
        if let node = entries["max_active_tasks"]?.value, let value = integer(node, "max_active_tasks", place) { spec.maxActiveTasks = value }
        if let node = entries["params"]?.value, let value = params(node, "params", place) { spec.params = value }
        if let node = entries["on_success"]?.value, let value = string(node, "on_success", place) { spec.onSuccess = value }
        if let node = entries["on_failure"]?.value, let value = string(node, "on_failure", place) { spec.onFailure = value }
        if let node = entries["on_deadline_miss"]?.value, let value = string(node, "on_deadline_miss", place) { spec.onDeadlineMiss = value }
        if let node = entries["deadline"]?.value { spec.deadline = deadline(node, place) }
        var defaults = TaskDefaults()
        if let node = entries["defaults"]?.value { defaults = readDefaults(node) }
        spec.callbackQueue = defaults.queue ?? TaskSpec.defaultQueue
        if let node = entries["tasks"]?.value { spec.tasks = readTasks(node, defaults: defaults) }
        return spec
    }

    private mutating func readDefaults(_ node: Node) -> TaskDefaults {
        var defaults = TaskDefaults()
        if node.isNull { return defaults }
        guard case .mapping(let mapping) = node else {
            report(node.mark?.line, .top, "defaults", "expected a mapping, found \(kind(node))")
            return defaults
        }
        let entries = knownEntries(mapping, allowed: Self.defaultsKeys, place: .defaults)
        for (key, entry) in entries { defaultsKeyLines[key] = entry.keyLine }
        readInheritable(entries, into: &defaults, place: .defaults)
        return defaults
    }

    private mutating func readTasks(_ node: Node, defaults: TaskDefaults) -> [TaskSpec] {
        guard case .sequence(let sequence) = node else {
            report(node.mark?.line, .top, "tasks", node.isNull ? "is empty; a DAG needs at least one task" : "expected a list of tasks, found \(kind(node))")
            return []
        }
        guard sequence.count <= DAGSpecLimits.maxTasks else {
            report(node.mark?.line, .top, "tasks", "has \(sequence.count) tasks; at most \(DAGSpecLimits.maxTasks)")
            return []
        }
        return sequence.enumerated().map { index, item in readTask(item, index: index, defaults: defaults) }
    }

    private mutating func readTask(_ node: Node, index: Int, defaults: TaskDefaults) -> TaskSpec {
        var location = TaskLocation(line: node.mark?.line)
        var place = Place(taskIndex: index)
        var task = TaskSpec(id: "", entrypoint: "")
        defer { tasks.append(location) }
        guard case .mapping(let mapping) = node else {
            report(node.mark?.line, place, nil, "expected a mapping with id and entrypoint, found \(kind(node))")
            location.unreadable = true
            return task
        }
        // The id first, so every other problem of this task can name it.
        if let idNode = mapping["id"], let id = string(idNode, "id", place) {
            task.id = id
            place.taskID = id
        }
        let entries = knownEntries(mapping, allowed: Self.taskKeys, place: place)
        for (key, entry) in entries { location.keyLines[key] = entry.keyLine }
        for required in ["id", "entrypoint"] where entries[required] == nil {
            report(node.mark?.line, place, required, "is required")
        }
        if let node = entries["entrypoint"]?.value, let value = string(node, "entrypoint", place) { task.entrypoint = value }
        if let node = entries["depends_on"]?.value, let value = stringList(node, "depends_on", place) { task.dependsOn = value }

        var own = TaskDefaults()
        readInheritable(entries, into: &own, place: place)
        task.queue = own.queue ?? defaults.queue ?? TaskSpec.defaultQueue
        task.triggerRule = own.triggerRule ?? defaults.triggerRule ?? .allSuccess
        let builtIn = RetryPolicy()
        task.retry = RetryPolicy(
            retries: own.retries ?? defaults.retries ?? builtIn.retries,
            delayMilliseconds: own.retryDelay ?? defaults.retryDelay ?? builtIn.delayMilliseconds,
            exponentialBackoff: own.exponentialBackoff ?? defaults.exponentialBackoff ?? builtIn.exponentialBackoff,
            maxDelayMilliseconds: own.maxRetryDelay ?? defaults.maxRetryDelay ?? builtIn.maxDelayMilliseconds
        )
        task.executionTimeoutMilliseconds = own.executionTimeout ?? defaults.executionTimeout ?? nil
        task.priority = own.priority ?? defaults.priority ?? 0
        task.params = (defaults.params ?? [:]).merging(own.params ?? [:]) { _, taskValue in taskValue }
        task.pool = own.pool ?? defaults.pool ?? ""
        task.poolSlots = own.poolSlots ?? defaults.poolSlots ?? 1
        task.queueTimeoutMilliseconds = own.queueTimeout ?? defaults.queueTimeout ?? nil
        task.onSuccess = own.onSuccess ?? defaults.onSuccess ?? ""
        task.onFailure = own.onFailure ?? defaults.onFailure ?? ""
        task.onRetry = own.onRetry ?? defaults.onRetry ?? ""
        return task
    }

    /// Reads the keys tasks share with `defaults:`.
    private mutating func readInheritable(_ entries: [String: (keyLine: Int?, value: Node)], into fields: inout TaskDefaults, place: Place) {
        if let node = entries["queue"]?.value { fields.queue = string(node, "queue", place) }
        if let node = entries["retries"]?.value { fields.retries = integer(node, "retries", place) }
        if let node = entries["retry_delay"]?.value { fields.retryDelay = duration(node, "retry_delay", place) }
        if let node = entries["retry_exponential_backoff"]?.value { fields.exponentialBackoff = bool(node, "retry_exponential_backoff", place) }
        if let node = entries["max_retry_delay"]?.value { fields.maxRetryDelay = duration(node, "max_retry_delay", place) }
        if let node = entries["execution_timeout"]?.value, let value = duration(node, "execution_timeout", place) {
            // 0 means no limit, as on the wire; it lets a task lift a timeout from defaults.
            fields.executionTimeout = .some(value == 0 ? nil : value)
        }
        if let node = entries["priority"]?.value { fields.priority = integer(node, "priority", place) }
        if let node = entries["trigger_rule"]?.value { fields.triggerRule = triggerRule(node, place) }
        if let node = entries["params"]?.value { fields.params = params(node, "params", place) }
        if let node = entries["pool"]?.value { fields.pool = string(node, "pool", place) }
        if let node = entries["pool_slots"]?.value { fields.poolSlots = integer(node, "pool_slots", place) }
        if let node = entries["queue_timeout"]?.value, let value = duration(node, "queue_timeout", place) {
            fields.queueTimeout = .some(value == 0 ? nil : value)  // 0 lifts one set in defaults
        }
        // An empty string lifts a callback set in defaults.
        if let node = entries["on_success"]?.value { fields.onSuccess = node.isNull ? "" : string(node, "on_success", place) }
        if let node = entries["on_failure"]?.value { fields.onFailure = node.isNull ? "" : string(node, "on_failure", place) }
        if let node = entries["on_retry"]?.value { fields.onRetry = node.isNull ? "" : string(node, "on_retry", place) }
    }

    /// `deadline:`: a time of day `HH:MM` (UTC), or a duration; `0` means none.
    private mutating func deadline(_ node: Node, _ place: Place) -> RunDeadline? {
        guard let text = scalarText(node, "deadline", place, expected: "a duration like 2h or a time of day like 06:00") else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2 {
            guard parts[0].count == 2, parts[1].count == 2, let hours = Int(parts[0]), let minutes = Int(parts[1]),
                  (0..<24).contains(hours), (0..<60).contains(minutes) else {
                report(node.mark?.line, place, "deadline", "expected a time of day HH:MM from 00:00 to 23:59, found '\(text)'")
                return nil
            }
            return .timeOfDay(minutes: hours * 60 + minutes)
        }
        do throws(DurationTextError) {
            let milliseconds = try DurationText.milliseconds(parsing: text)
            return milliseconds == 0 ? nil : .afterCreation(milliseconds: milliseconds)
        } catch {
            report(node.mark?.line, place, "deadline", error.description + " (or a time of day HH:MM)")
            return nil
        }
    }

    // MARK: - Mapping validation problems to lines

    /// `DAGSpec.validate()` problems as file problems with lines. A task problem in a field
    /// the task inherited from `defaults:` is reported once, on the defaults line. Problems
    /// in fields that already failed to read are dropped: they only restate that failure.
    func locate(_ specProblems: [DAGSpecProblem]) -> [DAGFileProblem] {
        var located: [DAGFileProblem] = []
        var seen: Set<DAGFileProblem> = []
        if documentUnreadable { return [] }
        for problem in specProblems {
            if let index = problem.taskIndex, index < tasks.count, tasks[index].unreadable { continue }
            if problems.contains(where: { $0.taskIndex == problem.taskIndex && $0.field == problem.field }) { continue }
            var filed = DAGFileProblem(sourceName: sourceName, line: nil, field: problem.field, message: problem.message)
            if let index = problem.taskIndex, index < tasks.count {
                let task = tasks[index]
                if let line = task.keyLines[problem.field] {
                    filed.line = line
                    filed.taskIndex = index
                    filed.taskID = problem.taskID
                } else if let line = defaultsKeyLines[problem.field] {
                    filed.line = line
                    filed.field = "defaults." + problem.field
                } else {
                    filed.line = task.line
                    filed.taskIndex = index
                    filed.taskID = problem.taskID
                }
            } else if problem.field.hasPrefix("defaults."), let line = defaultsKeyLines[String(problem.field.dropFirst("defaults.".count))] {
                filed.line = line  // the DAG's own use of a default (callback_queue): the same line as its tasks'
            } else {
                filed.line = topKeyLines[problem.field] ?? rootLine
            }
            if seen.insert(filed).inserted { located.append(filed) }
        }
        return located
    }

    // MARK: - Values

    /// The entries of `mapping` whose keys are in `allowed`; other keys, non-string keys
    /// and null keys are reported.
    private mutating func knownEntries(
        _ mapping: Node.Mapping, allowed: [String], place: Place
    ) -> [String: (keyLine: Int?, value: Node)] {
        var entries: [String: (keyLine: Int?, value: Node)] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode, !keyNode.isNull else {
                report(keyNode.mark?.line, place, nil, "keys must be strings, found \(kind(keyNode))")
                continue
            }
            let key = scalar.string
            guard allowed.contains(key) else {
                let suggestion = YAMLDiagnostics.closestKey(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                let section = place.fieldPrefix.isEmpty ? "" : " under \(place.fieldPrefix.dropLast())"
                report(keyNode.mark?.line, place, nil, "unknown key '\(key)'\(section)\(suggestion)")
                continue
            }
            entries[key] = (keyNode.mark?.line, value)
        }
        return entries
    }

    private mutating func scalarText(_ node: Node, _ field: String, _ place: Place, expected: String) -> String? {
        guard case .scalar(let scalar) = node, !node.isNull else {
            report(node.mark?.line, place, field, "expected \(expected), found \(kind(node))")
            return nil
        }
        return scalar.string
    }

    /// Any scalar, as written: `id: 123` is the id "123".
    private mutating func string(_ node: Node, _ field: String, _ place: Place) -> String? {
        scalarText(node, field, place, expected: "a string")
    }

    private mutating func bool(_ node: Node, _ field: String, _ place: Place) -> Bool? {
        guard let text = scalarText(node, field, place, expected: "true or false") else { return nil }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            report(node.mark?.line, place, field, "expected true or false, found '\(text)'")
            return nil
        }
    }

    private mutating func integer(_ node: Node, _ field: String, _ place: Place) -> Int? {
        guard let text = scalarText(node, field, place, expected: "an integer") else { return nil }
        guard let value = Int(text) else {
            report(node.mark?.line, place, field, "expected an integer, found '\(text)'")
            return nil
        }
        return value
    }

    private mutating func duration(_ node: Node, _ field: String, _ place: Place) -> Int64? {
        guard let text = scalarText(node, field, place, expected: "a duration like 30s") else { return nil }
        do throws(DurationTextError) {
            return try DurationText.milliseconds(parsing: text)
        } catch {
            report(node.mark?.line, place, field, error.description)
            return nil
        }
    }

    private mutating func triggerRule(_ node: Node, _ place: Place) -> TriggerRule? {
        guard let text = scalarText(node, "trigger_rule", place, expected: "a trigger rule") else { return nil }
        guard let rule = TriggerRule(rawValue: text) else {
            let names = TriggerRule.allCases.map(\.rawValue).joined(separator: ", ")
            report(node.mark?.line, place, "trigger_rule", "unknown trigger rule '\(text)' (one of \(names))")
            return nil
        }
        return rule
    }

    /// A list of strings, or one string standing for a list of one; null is an empty list.
    private mutating func stringList(_ node: Node, _ field: String, _ place: Place) -> [String]? {
        if node.isNull { return [] }
        switch node {
        case .scalar(let scalar):
            return [scalar.string]
        case .sequence(let sequence):
            guard sequence.count <= DAGSpecLimits.maxTasks else {
                report(node.mark?.line, place, field, "has \(sequence.count) entries; at most \(DAGSpecLimits.maxTasks)")
                return nil
            }
            var values: [String] = []
            for item in sequence {
                guard let value = string(item, field, place) else { return nil }
                values.append(value)
            }
            return values
        default:
            report(node.mark?.line, place, field, "expected a task id or a list of task ids, found \(kind(node))")
            return nil
        }
    }

    /// A mapping of string keys to scalars, kept as written; null is an empty map.
    private mutating func params(_ node: Node, _ field: String, _ place: Place) -> [String: String]? {
        if node.isNull { return [:] }
        guard case .mapping(let mapping) = node else {
            report(node.mark?.line, place, field, "expected a mapping of names to values, found \(kind(node))")
            return nil
        }
        guard mapping.count <= DAGSpecLimits.maxParams else {
            report(node.mark?.line, place, field, "has \(mapping.count) entries; at most \(DAGSpecLimits.maxParams)")
            return nil
        }
        var values: [String: String] = [:]
        var complete = true
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let key) = keyNode, !keyNode.isNull else {
                report(keyNode.mark?.line, place, field, "keys must be strings, found \(kind(keyNode))")
                complete = false
                continue
            }
            guard case .scalar(let value) = valueNode, !valueNode.isNull else {
                report(valueNode.mark?.line, place, field, "value of '\(key.string)' must be a string, number or bool (quote \"\" for empty), found \(kind(valueNode))")
                complete = false
                continue
            }
            values[key.string] = value.string
        }
        return complete ? values : nil
    }

    private mutating func report(_ line: Int?, _ place: Place, _ field: String?, _ message: String) {
        problems.append(DAGFileProblem(
            sourceName: sourceName, line: line, taskIndex: place.taskIndex, taskID: place.taskID,
            field: field.map { place.fieldPrefix + $0 }, message: message
        ))
    }
}

private func kind(_ node: Node) -> String { YAMLDiagnostics.kind(of: node, scalar: "a scalar") }

