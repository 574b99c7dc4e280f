public import H2
import Glibc
import TetherStore

/// The agent's task logs on local disk: `<root>/<dag_id>/<run_id>/<task_id>.attempt-<n>.log`.
/// Logs never leave the machine. A run's attempts share one directory: an inode per attempt
/// is the whole file-system cost of a task (a directory per task doubled it, and `mkdir` is
/// the dearer of the two).
///
/// Ids become path components only after `validatedComponent` accepts them (1-255
/// characters of [A-Za-z0-9._-], not `.` or `..`; a task id at most 232, leaving room for
/// the rest of its file name), and every directory below `root` is
/// opened with `O_NOFOLLOW`: neither a hostile id nor a symlink planted under `root` can
/// lead a write or a deletion outside it. (`root` itself may be a symlink: the operator
/// chose it.)
///
/// A value type holding only the root path; safe to use from any thread, though two
/// concurrent `prune` calls may report each other's deletions as failures.
public struct LogDirectory: Sendable, Equatable {
    /// The root directory (`log_dir`).
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// `<task_id>.attempt-<n>.log`.
    public static func attemptFileName(taskID: String, attempt: UInt32) -> String { "\(taskID).attempt-\(attempt).log" }

    /// The path of an attempt's log file. Creates nothing.
    ///
    /// - Throws: `LogDirectoryError.invalidComponent` if an id could escape its directory.
    public func attemptLogPath(dagID: String, runID: String, taskID: String, attempt: UInt32) throws(LogDirectoryError) -> String {
        let directories = try Self.validatedDirectories(dagID: dagID, runID: runID, taskID: taskID)
        return path(of: directories, fileName: Self.attemptFileName(taskID: taskID, attempt: attempt))
    }

    /// `root/<directories...>/fileName`, for components already validated.
    private func path(of directories: [String], fileName: String) -> String {
        ([root.hasSuffix("/") ? String(root.dropLast()) : root] + directories + [fileName]).joined(separator: "/")
    }

    /// `text` if it is safe as one path component under the log root.
    ///
    /// - Throws: `LogDirectoryError.invalidComponent` naming `role` (e.g. "run_id").
    public static func validatedComponent(_ text: String, role: String) throws(LogDirectoryError) -> String {
        let scalars = text.unicodeScalars
        let allowed = scalars.allSatisfy { scalar in
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": true
            default: false
            }
        }
        guard (1...255).contains(scalars.count), allowed, text != ".", text != ".." else {
            throw .invalidComponent(role: role, value: text)
        }
        return text
    }

    /// The dag and run directories' names, once all three ids are accepted (the task id
    /// with room for `.attempt-<n>.log` in one name).
    static func validatedDirectories(dagID: String, runID: String, taskID: String) throws(LogDirectoryError) -> [String] {
        let directories = [try validatedComponent(dagID, role: "dag_id"), try validatedComponent(runID, role: "run_id")]
        _ = try validatedComponent(taskID, role: "task_id")
        guard taskID.utf8.count <= maxTaskIDLength else { throw .invalidComponent(role: "task_id", value: taskID) }
        return directories
    }

    /// A file name holds at most 255 bytes; `.attempt-4294967295.log` takes 23.
    static let maxTaskIDLength = 232

    // MARK: - Opening an attempt's log

    /// An attempt's log, open.
    struct AttemptFiles: ~Copyable {
        /// The log, open for appending.
        let log: FileDescriptor
        let logPath: String
    }

    /// Creates the attempt's directories as needed (mode 0700; never through a symlink
    /// below `root`) and opens its log for appending (mode 0600, created if missing):
    /// task output is nobody else's to read on a shared machine.
    ///
    /// - Throws: `LogDirectoryError` for a bad id or a failed `mkdir`/`open` (a symlink in
    ///   the way fails with ELOOP or ENOTDIR).
    func openAttempt(dagID: String, runID: String, taskID: String, attempt: UInt32) throws(LogDirectoryError) -> AttemptFiles {
        let directories = try Self.validatedDirectories(dagID: dagID, runID: runID, taskID: taskID)
        let name = Self.attemptFileName(taskID: taskID, attempt: attempt)
        let logPath = path(of: directories, fileName: name)
        do throws(SystemError) {
            var rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if rootFD < 0 && errno == ENOENT {
                try Self.makeDirectories(root)
                rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
            var directory = FileDescriptor(owning: try systemCall("open \(root)") { rootFD })
            var path = root
            for component in directories {
                path += "/" + component
                let parent = directory.raw
                if mkdirat(parent, component, PrivateFiles.directoryMode) != 0 && errno != EEXIST {
                    throw SystemError("mkdir \(path)", errno: errno)
                }
                directory = FileDescriptor(owning: try systemCall("open \(path)") {
                    openat(parent, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                })
            }
            let parent = directory.raw
            let log = FileDescriptor(owning: try systemCall("open \(logPath)") {
                openat(parent, name, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, PrivateFiles.fileMode)
            })
            return AttemptFiles(log: log, logPath: logPath)
        } catch {
            throw .system(error)
        }
    }

    /// `mkdir -p path`, each directory it makes 0700 (`PrivateFiles.createDirectories`).
    static func makeDirectories(_ path: String) throws(SystemError) {
        do {
            try PrivateFiles.createDirectories(path)
        } catch {
            throw SystemError("\(error.operation) \(error.path)", errno: error.errno)
        }
    }

    // MARK: - Retention

    /// Deletes attempt logs (`<task_id>.attempt-<n>.log`) last modified before `now - retention`,
    /// then the dag and run directories left empty that were last modified before
    /// then too. Symlinks are never followed nor deleted, other files are kept, and `root`
    /// itself stays. A retention of 0 keeps everything. A missing `root` is not an error.
    ///
    /// Blocks on file-system calls; call it off Swift's cooperative pool.
    ///
    /// - Parameters:
    ///   - retentionMilliseconds: `log_retention`.
    ///   - nowUnixMilliseconds: the present, by the wall clock (file times are wall-clock).
    /// - Throws: `LogDirectoryError.system` if `root` cannot be opened; failures further
    ///   down are counted in `LogPruneReport.failures` and the walk goes on.
    @discardableResult
    public func prune(retentionMilliseconds: Int64, nowUnixMilliseconds: Int64) throws(LogDirectoryError) -> LogPruneReport {
        var report = LogPruneReport()
        guard retentionMilliseconds > 0 else { return report }
        let cutoff = nowUnixMilliseconds - retentionMilliseconds
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return report }
            throw .system(SystemError("open \(root)", errno: errno))
        }
        _ = Self.prune(FileDescriptor(owning: fd), depth: 0, cutoff: cutoff, report: &report)
        return report
    }

    /// `prune(retentionMilliseconds:nowUnixMilliseconds:)` as of the wall clock's now.
    @discardableResult
    public func prune(retentionMilliseconds: Int64) throws(LogDirectoryError) -> LogPruneReport {
        try prune(retentionMilliseconds: retentionMilliseconds, nowUnixMilliseconds: unixMicrosecondsNow() / 1_000)
    }

    /// Levels below the root: dag, run. Attempt logs sit at the run level; one level further
    /// down are the task directories of the layout before (`<run>/<task>/attempt-<n>.log`,
    /// with `.stdin-*` files a crash left), pruned too.
    private static let runDepth = 2

    /// Prunes the directory `directory` (at `depth` below the root); true if it holds
    /// nothing afterwards.
    private static func prune(_ directory: consuming FileDescriptor, depth: Int, cutoff: Int64,
                              report: inout LogPruneReport) -> Bool {
        let fd = directory.raw
        guard let names = entryNames(of: fd) else {
            report.failures += 1
            return false
        }
        var remaining = names.count
        for name in names {
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                if errno != ENOENT { report.failures += 1 } else { remaining -= 1 }
                continue
            }
            let modifiedMilliseconds = Int64(info.st_mtim.tv_sec) * 1_000 + Int64(info.st_mtim.tv_nsec) / 1_000_000
            let old = modifiedMilliseconds < cutoff
            switch info.st_mode & S_IFMT {
            case S_IFDIR where depth <= runDepth:
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    report.failures += 1
                    continue
                }
                let empty = prune(FileDescriptor(owning: child), depth: depth + 1, cutoff: cutoff, report: &report)
                // The time read before the walk: deleting files inside just touched it.
                guard empty, old else { continue }
                if unlinkat(fd, name, AT_REMOVEDIR) == 0 {
                    report.removedDirectories += 1
                    remaining -= 1
                } else if errno != ENOTEMPTY && errno != EEXIST {
                    report.failures += 1  // ENOTEMPTY: a new attempt began in it meanwhile
                }
            case S_IFREG where old && isPrunable(name, depth: depth):
                if unlinkat(fd, name, 0) == 0 {
                    report.removedFiles += 1
                    remaining -= 1
                } else {
                    report.failures += 1
                }
            case S_IFLNK:
                report.skippedSymlinks += 1
            default:
                continue
            }
        }
        return remaining == 0
    }

    /// Attempt logs (and the old layout's leftovers) at `depth`; nothing else is ours.
    private static func isPrunable(_ name: String, depth: Int) -> Bool {
        guard name.hasSuffix(".log") else { return depth == runDepth + 1 && name.hasPrefix(".stdin-") }
        let stem = name.dropLast(".log".count)  // <task_id>.attempt-<n>, or attempt-<n> before
        guard let dash = stem.lastIndex(of: "-") else { return false }
        let number = stem[stem.index(after: dash)...]
        guard !number.isEmpty, number.allSatisfy(\.isASCII), UInt32(number) != nil else { return false }
        let head = stem[..<dash]
        switch depth {
        case runDepth: return head.hasSuffix(".attempt") && head.count > ".attempt".count
        case runDepth + 1: return head == "attempt"
        default: return false
        }
    }

    /// The names in the open directory `fd` except `.` and `..`; nil if it cannot be read.
    /// `fd` stays open and owned by the caller.
    private static func entryNames(of fd: Int32) -> [String]? {
        // fdopendir takes over the descriptor it is given, so it gets a duplicate.
        let copy = dup(fd)
        guard copy >= 0 else { return nil }
        guard let stream = fdopendir(copy) else {
            close(copy)
            return nil
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// What `LogDirectory.prune` did.
public struct LogPruneReport: Sendable, Equatable {
    /// Attempt logs deleted.
    public var removedFiles = 0
    /// Empty dag and run directories deleted.
    public var removedDirectories = 0
    /// Symlinks met under the root; never followed, never deleted.
    public var skippedSymlinks = 0
    /// Entries that could not be examined or deleted.
    public var failures = 0

    public init() {}
}

/// Why a log path could not be built or a log opened.
public enum LogDirectoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// An id that is not 1-255 characters of [A-Za-z0-9._-], or is `.` or `..`.
    case invalidComponent(role: String, value: String)
    /// A file-system call failed.
    case system(SystemError)

    public var description: String {
        switch self {
        case .invalidComponent(let role, let value):
            "\(role) '\(value)' cannot name a log directory: it must be 1-255 characters of [A-Za-z0-9._-], not . or .."
        case .system(let error): "log directory: \(error)"
        }
    }
}
