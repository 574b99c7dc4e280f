import CLinux
import H2
import Glibc

/// The agent's one wrapper around spawning (`tether_spawn`), `waitid`/`wait4` and `killpg`:
/// a task's process starts as the leader of a process group of its own, so the whole tree
/// it forks can be signalled at once. `Foundation.Process` cannot set a process group.
///
/// Stateless; every function may be called from any thread. Blocking calls say so.
enum TaskProcess {
    /// What to start.
    struct Launch {
        /// The program's absolute path (bare names are resolved first, by `resolveProgram`).
        var executablePath: String
        /// argv, including argv[0] as the entrypoint wrote it.
        var arguments: [String]
        /// The complete environment; nothing else is inherited.
        var environment: [String: String]
        /// The working directory, or nil for the agent's.
        var workingDirectory: String?
    }

    /// How a process ended, decoded from a wait status.
    enum Termination: Equatable {
        case exited(Int32)
        case signalled(Int32)
    }

    /// Starts `launch` as the leader of a new process group (its pgid is its pid), with
    /// `standardInput` as fd 0 and `output` as fds 1 and 2. The child gets default signal
    /// dispositions, an empty signal mask and only the descriptors 0-2, whatever the agent
    /// has set. With a `parentDeathSignal`, the kernel sends it to the child when the
    /// calling thread ends (and so when the agent dies, even by SIGKILL): call from a
    /// thread that lives as long as the agent.
    ///
    /// - Returns: the child's pid, which is also its process group id.
    /// - Throws: `SystemError` (e.g. ENOENT, EACCES for the program or the working
    ///   directory, reported by the child's failed exec).
    static func spawn(_ launch: Launch, standardInput: borrowing FileDescriptor, output: borrowing FileDescriptor,
                      parentDeathSignal: Int32 = 0) throws(SystemError) -> pid_t {
        let environment = launch.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let maxFD = Int32(clamping: max(1024, sysconf(Int32(_SC_OPEN_MAX))))
        var pid: pid_t = 0
        let (input, log) = (standardInput.raw, output.raw)
        let result = withCStringArray(launch.arguments) { argv in
            withCStringArray(environment) { envp in
                tether_spawn(launch.executablePath, argv, envp, input, log, launch.workingDirectory, parentDeathSignal, maxFD, &pid)
            }
        }
        let place = launch.workingDirectory.map { " in \($0)" } ?? ""
        try posixCall("spawn \(launch.executablePath)\(place)", result)
        return pid
    }

    /// Blocks until the child `pid` has exited, without reaping it: the zombie keeps its
    /// pid and process group id reserved, so signalling the group stays safe until `reap`.
    /// Call on a thread of its own, never on Swift's cooperative pool.
    ///
    /// - Throws: `SystemError` from `waitid` (ECHILD if `pid` is not this process's child).
    static func waitForExit(_ pid: pid_t) throws(SystemError) {
        var info = siginfo_t()
        try systemCall("waitid \(pid)") { waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) }
    }

    /// Reaps the exited child `pid`: how it ended and the resources it and its reaped
    /// descendants used. Blocks only if the child has not exited yet.
    ///
    /// - Throws: `SystemError` from `wait4`.
    static func reap(_ pid: pid_t) throws(SystemError) -> (termination: Termination, usage: rusage) {
        var status: Int32 = 0
        var usage = rusage()
        try systemCall("wait4 \(pid)") { wait4(pid, &status, 0, &usage) }
        // The <sys/wait.h> macros do not import into Swift; this is their Linux definition.
        let signal = status & 0x7F
        let termination: Termination = signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
        return (termination, usage)
    }

    /// Sends `signal` to every process in group `processGroup`.
    ///
    /// - Returns: false if the group has no processes left (ESRCH).
    /// - Throws: `SystemError` for any other failure (e.g. EPERM).
    @discardableResult
    static func signalGroup(_ processGroup: pid_t, _ signal: Int32) throws(SystemError) -> Bool {
        precondition(processGroup > 1, "refusing to signal process group \(processGroup)")
        if killpg(processGroup, signal) == 0 { return true }
        let error = errno
        if error == ESRCH { return false }
        throw SystemError("killpg \(processGroup) \(signalName(signal))", errno: error)
    }

    /// The file `program` names: itself if it contains a slash, else the first executable
    /// regular file called `program` in the colon-separated `searchPath`. Nil if none.
    static func resolveProgram(_ program: String, searchPath: String) -> String? {
        if program.utf8.contains(UInt8(ascii: "/")) { return program }
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: true) where directory.hasPrefix("/") {
            let candidate = String(directory.hasSuffix("/") ? directory + program : directory + "/" + program)
            var info = stat()
            guard stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 else { continue }
            return candidate
        }
        return nil
    }

    /// `SIGTERM`, `SIGKILL`…, or `signal 42`.
    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
            SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS",
        ]
        return names[signal] ?? "signal \(signal)"
    }
}

/// Calls `body` with a NULL-terminated array of C strings copied from `strings`, valid
/// only during the call.
private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { for copy in copies { free(copy) } }
    return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
}
