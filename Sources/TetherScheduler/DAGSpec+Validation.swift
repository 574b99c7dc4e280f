import TetherSyntax

/// The limits a DAG spec must keep, enforced by `DAGSpec.validate()` and documented in
/// docs/dag-format.md. They bound what one apply can make the server store and schedule.
public enum DAGSpecLimits {
    // dag_id, task ids, queue names, entrypoint names and param keys: see `Identifier`.
    public static let maxTasks = 1_000
    /// UTF-8 bytes of the description.
    public static let maxDescriptionBytes = 4_096
    /// Entries in one params map (the DAG's, or one task's after defaults).
    public static let maxParams = 100
    /// UTF-8 bytes of one param value.
    public static let maxParamValueBytes = 4_096
    /// UTF-8 bytes of one params map's keys and values together. A task's environment
    /// gets its DAG's, its own and its run's maps merged, so at most three times this, far
    /// below Linux's ARG_MAX (2 MiB with the default 8 MiB stack); each value is far below
    /// its 128 KiB limit on one environment string.
    public static let maxParamsTotalBytes = 32 * 1_024
    /// UTF-8 bytes of every params map in one spec together (the DAG's, and each task's
    /// after merging `defaults`), so a stored version, and GetDag's answer, stays well
    /// inside a 4 MiB message beside its up-to-1 MiB YAML.
    public static let maxSpecParamsTotalBytes = 2 * 1_024 * 1_024
    public static let retries = 0...100
    /// Longest retry delay, backoff cap and execution timeout: 365 days.
    public static let maxDurationMilliseconds: Int64 = 365 * 86_400_000
    public static let maxActiveRuns = 1...1_000
    /// 0 means no limit.
    public static let maxActiveTasks = 0...100_000
    /// The wire's int32.
    public static let priority = Int(Int32.min)...Int(Int32.max)
    /// Slots of its pool one attempt may take; also the largest pool.
    public static let poolSlots = 1...100_000
    /// Dependency cycles reported at most; one is enough to fix at a time.
    public static let maxCyclesReported = 10
}

/// One thing wrong with a DAG spec: which task (if any), which field, what.
public struct DAGSpecProblem: Hashable, Sendable, CustomStringConvertible {
    /// Position of the task in `DAGSpec.tasks`; nil for a DAG-level problem. With
    /// duplicate ids this is the only way to tell the tasks apart.
    public var taskIndex: Int?
    /// The task's id as written (may itself be the invalid part).
    public var taskID: String?
    /// The field as spelled in DAG files and on the wire: `depends_on`, `retries`, `params` …
    public var field: String
    public var message: String

    public init(taskIndex: Int? = nil, taskID: String? = nil, field: String, message: String) {
        self.taskIndex = taskIndex
        self.taskID = taskID
        self.field = field
        self.message = message
    }

    /// `task 'load' field 'depends_on': unknown task 'extrct'`.
    public var description: String {
        (taskID.map { "task '\($0)' " } ?? "") + "field '\(field)': \(message)"
    }
}

/// Every problem found in a DAG spec, in a stable order: DAG-level fields, then tasks in
/// file order, then the dependency graph.
public struct DAGSpecError: Error, Hashable, Sendable, CustomStringConvertible {
    public var problems: [DAGSpecProblem]

    public init(problems: [DAGSpecProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

extension DAGSpec {
    /// Checks every rule of docs/dag-format.md.
    ///
    /// - Throws: `DAGSpecError` with every problem found (never just the first).
    public func validate() throws(DAGSpecError) {
        let found = problems()
        if !found.isEmpty { throw DAGSpecError(problems: found) }
    }

    /// Every problem found; empty when the spec is valid.
    public func problems() -> [DAGSpecProblem] {
        var problems: [DAGSpecProblem] = []
        func report(_ field: String, _ message: String) {
            problems.append(DAGSpecProblem(field: field, message: message))
        }
        if let timeout = runTimeoutMilliseconds, timeout <= 0 || timeout > DAGSpecLimits.maxDurationMilliseconds {
            report("run_timeout", "must be more than 0 and at most 365d")
        }
        if let message = Identifier.problem(dagID) { report("dag_id", message) }
        if description.utf8.count > DAGSpecLimits.maxDescriptionBytes {
            report("description", "is \(description.utf8.count) bytes; at most \(DAGSpecLimits.maxDescriptionBytes)")
        }
        // NUL can arrive through a YAML escape ("\0"); C consumers would cut the text there.
        if description.utf8.contains(0) { report("description", "contains a NUL character") }
        if !schedule.isEmpty {
            do throws(CronScheduleError) {
                _ = try CronSchedule(parsing: schedule)
            } catch {
                report("schedule", error.description)
            }
        }
        if !DAGSpecLimits.maxActiveRuns.contains(maxActiveRuns) {
            report("max_active_runs", "is \(maxActiveRuns); must be \(rangeText(DAGSpecLimits.maxActiveRuns))")
        }
        if !DAGSpecLimits.maxActiveTasks.contains(maxActiveTasks) {
            report("max_active_tasks", "is \(maxActiveTasks); must be \(rangeText(DAGSpecLimits.maxActiveTasks)) (0: no limit)")
        }
        for message in paramsProblems(params) { report("params", message) }
        for (field, value) in [("on_success", onSuccess), ("on_failure", onFailure), ("on_deadline_miss", onDeadlineMiss)]
        where !value.isEmpty {
            if let message = Identifier.problem(value) { report(field, message) }
        }
        if let message = Identifier.problem(callbackQueue) { report("defaults.queue", message) }
        switch deadline {
        case .afterCreation(let milliseconds)? where milliseconds <= 0 || milliseconds > DAGSpecLimits.maxDurationMilliseconds:
            report("deadline", "must be more than 0 and at most 365d, or a time of day HH:MM")
        case .timeOfDay(let minutes)? where !(0..<1_440).contains(minutes):
            report("deadline", "time of day must be 00:00 to 23:59")
        default:
            break
        }

        if tasks.isEmpty {
            report("tasks", "a DAG needs at least one task")
        } else if tasks.count > DAGSpecLimits.maxTasks {
            report("tasks", "has \(tasks.count) tasks; at most \(DAGSpecLimits.maxTasks)")
        }
        for (index, task) in tasks.enumerated() {
            for (field, message) in task.fieldProblems() {
                problems.append(DAGSpecProblem(taskIndex: index, taskID: task.id, field: field, message: message))
            }
        }
        let specParamBytes = tasks.reduce(paramsBytes(params)) { $0 + paramsBytes($1.params) }
        if specParamBytes > DAGSpecLimits.maxSpecParamsTotalBytes {
            report("params", "the DAG's and its tasks' params (after merging defaults) total \(specParamBytes) bytes; at most \(DAGSpecLimits.maxSpecParamsTotalBytes)")
        }
        problems += dependencyProblems()
        return problems
    }

    /// Why `params` may not start a run: the rules of a spec's params map (identifier
    /// keys, entries, value and total sizes, no NUL), each message naming the param and
    /// the limit. Empty when they may. Which names the DAG declares is the scheduler's check.
    public static func runParamsProblems(_ params: [String: String]) -> [String] {
        paramsProblems(params)
    }

    /// Duplicate ids, unknown, repeated and self dependencies, and cycles.
    private func dependencyProblems() -> [DAGSpecProblem] {
        var problems: [DAGSpecProblem] = []
        var indexByID: [String: Int] = [:]
        for (index, task) in tasks.enumerated() {
            if let first = indexByID[task.id] {
                problems.append(DAGSpecProblem(
                    taskIndex: index, taskID: task.id, field: "id",
                    message: "duplicate task id (task #\(first + 1) has it too)"
                ))
            } else {
                indexByID[task.id] = index
            }
        }

        // Edges from a task to the tasks it depends on, over first occurrences of each id.
        var upstream = [[Int]](repeating: [], count: tasks.count)
        for (index, task) in tasks.enumerated() {
            var seen: Set<String> = []
            for dependency in task.dependsOn {
                func report(_ message: String) {
                    problems.append(DAGSpecProblem(taskIndex: index, taskID: task.id, field: "depends_on", message: message))
                }
                if !seen.insert(dependency).inserted {
                    report("'\(dependency)' is listed twice")
                } else if dependency == task.id {
                    report("a task cannot depend on itself")
                } else if let target = indexByID[dependency] {
                    if indexByID[task.id] == index { upstream[index].append(target) }
                } else {
                    report("unknown task '\(dependency)'")
                }
            }
        }
        for cycle in dependencyCycles(upstream: upstream).prefix(DAGSpecLimits.maxCyclesReported) {
            let path = (cycle + [cycle[0]]).map { tasks[$0].id }.joined(separator: " -> ")
            problems.append(DAGSpecProblem(
                taskIndex: cycle[0], taskID: tasks[cycle[0]].id, field: "depends_on", message: "dependency cycle \(path)"
            ))
        }
        return problems
    }

    /// Cycles in the graph, each in run order (every task runs after the one before it,
    /// as `extract -> load`) and starting at its task that comes first in the file.
    /// Iterative depth-first search, so 1,000 chained tasks cannot exhaust the stack.
    private func dependencyCycles(upstream: [[Int]]) -> [[Int]] {
        enum Mark { case unvisited, onPath, done }
        var marks = [Mark](repeating: .unvisited, count: upstream.count)
        var cycles: [[Int]] = []
        for root in upstream.indices where marks[root] == .unvisited {
            var path: [(task: Int, nextEdge: Int)] = [(root, 0)]
            marks[root] = .onPath
            while let top = path.last {
                guard top.nextEdge < upstream[top.task].count else {
                    marks[top.task] = .done
                    path.removeLast()
                    continue
                }
                path[path.count - 1].nextEdge += 1
                let next = upstream[top.task][top.nextEdge]
                switch marks[next] {
                case .unvisited:
                    marks[next] = .onPath
                    path.append((next, 0))
                case .onPath:
                    // The path runs downstream -> upstream; reverse it into run order.
                    let start = path.lastIndex { $0.task == next }!
                    let runOrder = Array(path[start...].map(\.task).reversed())
                    let first = runOrder.indices.min { runOrder[$0] < runOrder[$1] }!
                    cycles.append(Array(runOrder[first...] + runOrder[..<first]))
                case .done:
                    break
                }
            }
        }
        return cycles
    }
}

extension TaskSpec {
    /// (field, message) for every rule this task breaks on its own.
    fileprivate func fieldProblems() -> [(String, String)] {
        var problems: [(String, String)] = []
        if let message = Identifier.problem(id) { problems.append(("id", message)) }
        if CallbackKind.isCallbackID(id) {
            problems.append(("id", "'\(id)' is reserved: callback task instances are named <kind>.<number>"))
        }
        for (field, value) in [("on_success", onSuccess), ("on_failure", onFailure), ("on_retry", onRetry)] where !value.isEmpty {
            if let message = Identifier.problem(value) { problems.append((field, message)) }
        }
        if let message = Identifier.problem(entrypoint) { problems.append(("entrypoint", message)) }
        if let message = Identifier.problem(queue) { problems.append(("queue", message)) }
        if !DAGSpecLimits.retries.contains(retry.retries) {
            problems.append(("retries", "is \(retry.retries); must be \(rangeText(DAGSpecLimits.retries))"))
        }
        let longest = DAGSpecLimits.maxDurationMilliseconds
        if retry.delayMilliseconds < 0 { problems.append(("retry_delay", "must not be negative")) }
        if retry.delayMilliseconds > longest { problems.append(("retry_delay", "must be at most 365d")) }
        if retry.maxDelayMilliseconds < 0 { problems.append(("max_retry_delay", "must not be negative")) }
        if retry.maxDelayMilliseconds > longest { problems.append(("max_retry_delay", "must be at most 365d")) }
        if let timeout = executionTimeoutMilliseconds, timeout <= 0 {
            problems.append(("execution_timeout", "must be positive when set (leave it out for no limit)"))
        }
        if let timeout = executionTimeoutMilliseconds, timeout > longest {
            problems.append(("execution_timeout", "must be at most 365d"))
        }
        if !DAGSpecLimits.priority.contains(priority) {
            problems.append(("priority", "is \(priority); must fit in 32 bits"))
        }
        for message in paramsProblems(params) { problems.append(("params", message)) }
        if !pool.isEmpty, let message = Identifier.problem(pool) { problems.append(("pool", message)) }
        if let timeout = queueTimeoutMilliseconds, timeout <= 0 || timeout > longest {
            problems.append(("queue_timeout", "must be more than 0 and at most 365d"))
        }
        if !DAGSpecLimits.poolSlots.contains(poolSlots) {
            problems.append(("pool_slots", "is \(poolSlots); must be \(rangeText(DAGSpecLimits.poolSlots))"))
        }
        return problems
    }
}

private func paramsProblems(_ params: [String: String]) -> [String] {
    var problems: [String] = []
    if params.count > DAGSpecLimits.maxParams {
        // Entry by entry, a map this long could only bury the one problem that matters.
        return ["has \(params.count) entries; at most \(DAGSpecLimits.maxParams)"]
    }
    // Sorted so the report is the same on every run.
    for key in params.keys.sorted() {
        if let message = Identifier.problem(key) { problems.append("key '\(shortened(key))': \(message)") }
        let value = params[key]!
        if value.utf8.count > DAGSpecLimits.maxParamValueBytes {
            problems.append("value of '\(shortened(key))' is \(value.utf8.count) bytes; at most \(DAGSpecLimits.maxParamValueBytes)")
        }
        if value.utf8.contains(0) { problems.append("value of '\(shortened(key))' contains a NUL character") }
    }
    let total = paramsBytes(params)
    if total > DAGSpecLimits.maxParamsTotalBytes {
        problems.append("keys and values total \(total) bytes; at most \(DAGSpecLimits.maxParamsTotalBytes)")
    }
    return problems
}

/// `text`, cut for quoting in a message: a key over the limits may be megabytes.
private func shortened(_ text: String) -> String {
    let limit = Identifier.maxLength + 1
    return text.count <= limit ? text : text.prefix(limit) + "..."
}

private func paramsBytes(_ params: [String: String]) -> Int {
    params.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
}

private func rangeText(_ range: ClosedRange<Int>) -> String {
    "\(range.lowerBound)...\(range.upperBound)"
}
