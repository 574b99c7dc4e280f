import ArgumentParser
import Foundation
import H2

/// `tether-torture e2e-spawn`: the floor under a chain hop, the cost of starting a no-op
/// process and reaping it, one after another, with no orchestrator. Spawned the way the
/// agent spawns a task (`TaskProcess.spawn`): `posix_spawn` into its own process group,
/// stdin/stdout/stderr redirected (here to /dev/null), then a blocking wait.
struct E2ESpawn: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e-spawn",
        abstract: "Time sequential posix_spawn + wait of a program.",
        discussion: """
            Prints one line to stdout:
              spawns=N p50_ms=X mean_ms=Y p99_ms=Z
            """
    )

    @Option(help: "Untimed spawns first.")
    var warmup = 20
    @Option(help: "Timed spawns.")
    var count = 200
    @Argument(help: "The program and its arguments (absolute path).")
    var argv: [String] = ["/bin/true"]

    func validate() throws {
        guard count > 0, warmup >= 0 else { throw ValidationError("--count must be positive, --warmup >= 0") }
        guard argv.first?.hasPrefix("/") == true else { throw ValidationError("the program must be an absolute path") }
    }

    func run() throws {
        var samples: [Int64] = []
        samples.reserveCapacity(count)
        for index in 0..<(warmup + count) {
            let start = MonotonicClock.nanoseconds()
            let status = try Self.spawnAndWait(argv)
            let end = MonotonicClock.nanoseconds()
            guard status == 0 else { throw E2EError("\(argv.joined(separator: " ")) exited with wait status \(status)") }
            if index >= warmup { samples.append(end - start) }
        }
        samples.sort()
        func ms(_ ns: Double) -> String { String(format: "%.3f", ns / 1e6) }
        let mean = Double(samples.reduce(0, +)) / Double(samples.count)
        let p99 = samples[min(samples.count, max(1, Int((Double(samples.count) * 0.99).rounded(.up)))) - 1]
        writeLine("spawns=\(samples.count) p50_ms=\(ms(Double(samples[(samples.count - 1) / 2]))) mean_ms=\(ms(mean))"
                  + " p99_ms=\(ms(Double(p99)))")
    }

    /// Spawns `argv` with the standard descriptors on /dev/null in a new process group and
    /// waits for it; returns the raw wait status.
    /// - Throws: `E2EError` naming the call that failed and its errno.
    static func spawnAndWait(_ argv: [String]) throws -> Int32 {
        func check(_ what: String, _ result: Int32) throws {
            guard result == 0 else { throw E2EError("\(what): \(String(cString: strerror(result)))") }
        }
        var attributes = posix_spawnattr_t()
        try check("posix_spawnattr_init", posix_spawnattr_init(&attributes))
        defer { posix_spawnattr_destroy(&attributes) }
        var actions = posix_spawn_file_actions_t()
        try check("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions))
        defer { posix_spawn_file_actions_destroy(&actions) }
        try check("posix_spawnattr_setflags", posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP)))
        try check("posix_spawnattr_setpgroup", posix_spawnattr_setpgroup(&attributes, 0))
        for fd: Int32 in 0...2 {
            try check("posix_spawn_file_actions_addopen \(fd)",
                      posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0))
        }
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid = pid_t()
        try check("posix_spawn \(argv[0])", posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, environ))
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw E2EError("waitpid: \(String(cString: strerror(errno)))") }
        }
        return status
    }
}
