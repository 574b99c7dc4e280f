/// One thing wrong with a DAG file, located as precisely as the file allows.
public struct DAGFileProblem: Hashable, Sendable, CustomStringConvertible {
    /// The name the file was given to `DAGFile.parse` (a path, or "<stdin>").
    public var sourceName: String
    /// 1-based line, when known.
    public var line: Int?
    /// The task's position in `tasks` (0-based), when the problem is inside a task.
    public var taskIndex: Int?
    /// The task's id, when the problem is inside a task that has one.
    public var taskID: String?
    /// The key as written in the file: `depends_on`, `max_active_runs`; under `defaults:`
    /// it is prefixed, as `defaults.retries`. Nil for problems with the file as a whole.
    public var field: String?
    public var message: String

    public init(sourceName: String, line: Int?, taskIndex: Int? = nil, taskID: String? = nil, field: String? = nil, message: String) {
        self.sourceName = sourceName
        self.line = line
        self.taskIndex = taskIndex
        self.taskID = taskID
        self.field = field
        self.message = message
    }

    /// `FILE:LINE: task 'load' field 'depends_on': unknown task 'extrct'`; a task without a
    /// usable id is `task #3` (1-based), and parts that do not apply are left out.
    public var description: String {
        var text = sourceName + (line.map { ":\($0)" } ?? "") + ": "
        if let taskID, !taskID.isEmpty {
            text += "task '\(taskID)' "
        } else if let taskIndex {
            text += "task #\(taskIndex + 1) "
        }
        if let field { text += "field '\(field)': " }
        return text + message
    }
}

/// Why a DAG file was rejected: every problem found, ordered by line (problems with no
/// line last).
public struct DAGFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public var sourceName: String
    /// Never empty.
    public var problems: [DAGFileProblem]

    public init(sourceName: String, problems: [DAGFileProblem]) {
        self.sourceName = sourceName
        self.problems = problems
    }

    /// One problem per line.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
