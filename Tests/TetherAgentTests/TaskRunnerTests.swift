import Foundation
import Glibc
import Synchronization
import Testing
import TetherTestSupport
import TetherWire
@testable import TetherAgent

/// A scratch agent: a log directory, shell scripts as entrypoints, and a recorder of the
/// runner's events.
final class RunnerFixture: Sendable {
    let scratch: ScratchDirectory
    let logRoot: String
    let events = Mutex<[TaskRunner.Event]>([])

    init() throws {
        scratch = try ScratchDirectory()
        logRoot = scratch.path("logs")
    }

    /// An entrypoint running `script` with /bin/sh; `OUT` is the scratch directory.
    func shell(_ script: String, timeoutMilliseconds: Int64? = nil) throws -> AgentConfiguration.Entrypoint {
        let path = scratch.path("script-\(UUID().uuidString).sh")
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        return AgentConfiguration.Entrypoint(argv: ["/bin/sh", path], environment: ["OUT": scratch.url.path],
                                             timeoutMilliseconds: timeoutMilliseconds)
    }

    static func lease(entrypoint: String = "run", params: [String: String] = [:], timeoutMs: UInt64 = 0,
                      runID: String = "nightly-7") -> Lease {
        Lease(id: "\(runID)/load/2", epoch: 2, dagID: "etl", dagVersion: 3, runID: runID, taskID: "load", attempt: 2,
              entrypoint: entrypoint, params: params, timeoutMilliseconds: timeoutMs,
              logicalDateUnixMicroseconds: 1_764_028_800_000_000,  // 2025-11-25T00:00:00Z
              dataIntervalStartUnixMicroseconds: 1_763_942_400_000_000, dataIntervalEndUnixMicroseconds: 1_764_028_800_000_000)
    }

    func runner(_ entrypoints: [String: AgentConfiguration.Entrypoint], lease: Lease = RunnerFixture.lease(),
                killGraceMilliseconds: Int64 = 10_000, inherited: [String: String] = [:],
                diesWithStartingThread: Bool = false) -> TaskRunner {
        TaskRunner(lease: lease, entrypoints: entrypoints, logDirectory: LogDirectory(root: logRoot),
                   killGraceMilliseconds: killGraceMilliseconds, inheritedEnvironment: inherited,
                   diesWithStartingThread: diesWithStartingThread) { [self] event in
            self.events.withLock { $0.append(event) }
        }
    }

    /// Starts `runner` and waits for its result.
    func run(_ runner: TaskRunner) async -> TaskRunner.Result {
        runner.start()
        return await runner.result()
    }

    var startedEvents: [TaskRunner.Start] {
        events.withLock { $0.compactMap { if case .started(let start) = $0 { start } else { nil } } }
    }

    var logPath: String { logRoot + "/etl/nightly-7/load.attempt-2.log" }

    func read(_ name: String) -> String { (try? String(contentsOfFile: scratch.path(name), encoding: .utf8)) ?? "" }
}

/// Waits until `condition` holds, checking every 10 ms, for at most `seconds`.
func waitUntil(seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// Whether `pid` has ended: gone, or a zombie nobody has reaped yet.
func processHasEnded(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(close, offsetBy: 2)] == "Z"
}

@Suite struct TaskRunnerTests {
    @Test(.timeLimit(.minutes(1)))  // the task would otherwise run for an hour
    func aTaskDiesWithTheThreadThatStartedItAndSoWithItsAgent() async throws {
        let fixture = try RunnerFixture()
        let runner = fixture.runner(["run": try fixture.shell("exec sleep 3600")], diesWithStartingThread: true)
        // The thread ends right after the spawn, as an agent's threads do when it dies.
        Thread { runner.start() }.start()
        let result = await runner.result()
        #expect(result.outcome == .failed && result.exit == .signal(SIGKILL), "\(result.message)")
    }

    @Test func taskGetsItsEnvironmentAndParamsOnStdinAndNothingElseOfTheAgent() async throws {
        let fixture = try RunnerFixture()
        let entrypoint = try fixture.shell(#"env > "$OUT/env.txt"; cat > "$OUT/stdin.txt""#)
        let lease = RunnerFixture.lease(params: ["batch_size": "100", "db.host": "db \"1\"\n"])
        let runner = fixture.runner(["run": entrypoint], lease: lease,
                                    inherited: ["PATH": "/usr/bin:/bin", "HOME": "/root", "AGENT_SECRET": "nope"])
        let result = await fixture.run(runner)
        #expect(result.outcome == .succeeded, "\(result.message)")

        let lines = Set(fixture.read("env.txt").split(separator: "\n").map(String.init))
        for expected in [
            "TETHER_RUN_ID=nightly-7", "TETHER_TASK_ID=load", "TETHER_DAG_ID=etl", "TETHER_DAG_VERSION=3",
            "TETHER_ATTEMPT=2", "TETHER_LEASE_ID=nightly-7/load/2", "TETHER_PARAM_BATCH_SIZE=100",
            "PATH=/usr/bin:/bin", "HOME=/root", "OUT=\(fixture.scratch.url.path)",
            "TETHER_LOGICAL_DATE=2025-11-25T00:00:00Z", "TETHER_DATA_INTERVAL_START=2025-11-24T00:00:00Z",
            "TETHER_DATA_INTERVAL_END=2025-11-25T00:00:00Z",
        ] {
            #expect(lines.contains(expected), "missing \(expected)")
        }
        #expect(!lines.contains { $0.hasPrefix("AGENT_SECRET=") })
        #expect(fixture.read("stdin.txt") == #"{"dag_id":"etl","dag_version":3,"run_id":"nightly-7","task_id":"load","attempt":2,"#
            + #""logical_date":"2025-11-25T00:00:00Z","data_interval_start":"2025-11-24T00:00:00Z","#
            + #""data_interval_end":"2025-11-25T00:00:00Z","params":{"batch_size":"100","db.host":"db \"1\"\n"}}"#)
    }

    @Test func outputLandsInTheAttemptLogAndNowhereElse() async throws {
        let fixture = try RunnerFixture()
        let runner = fixture.runner(["run": try fixture.shell("echo to-stdout; echo to-stderr >&2")])
        let result = await fixture.run(runner)
        #expect(result.outcome == .succeeded)
        #expect(try String(contentsOfFile: fixture.logPath, encoding: .utf8) == "to-stdout\nto-stderr\n")
        #expect(fixture.startedEvents.map(\.logPath) == [fixture.logPath])
        #expect(!result.message.contains("to-std"))
        // Nothing but the log is left in the run's directory.
        let entries = try FileManager.default.contentsOfDirectory(atPath: fixture.logRoot + "/etl/nightly-7")
        #expect(entries == ["load.attempt-2.log"])
    }

    @Test(.timeLimit(.minutes(1)))  // a lost exit would otherwise hang the run
    func exitsOfConcurrentTasksAreNoticedOnOneReaperThreadNotAThreadEach() async throws {
        let fixture = try RunnerFixture()
        // Alive at once, so waiter threads of their own would all exist at once too.
        let entrypoint = try fixture.shell("sleep 0.3")
        let finishedOn = Mutex<[UInt]>([])
        let runners = (0..<12).map { index in
            TaskRunner(lease: RunnerFixture.lease(runID: "run-\(index)"), entrypoints: ["run": entrypoint],
                       logDirectory: LogDirectory(root: fixture.logRoot), killGraceMilliseconds: 1_000,
                       inheritedEnvironment: [:]) { event in
                if case .finished = event { finishedOn.withLock { $0.append(UInt(pthread_self())) } }
            }
        }
        for runner in runners { runner.start() }
        for runner in runners { #expect(await runner.result().outcome == .succeeded) }
        let threads = finishedOn.withLock { $0 }
        #expect(threads.count == runners.count)
        #expect(Set(threads).count == 1)
    }

    @Test func exitCodesAndSignalsAreReported() async throws {
        let fixture = try RunnerFixture()
        let exited = await fixture.run(fixture.runner(["run": try fixture.shell("exit 3")]))
        #expect(exited.outcome == .failed)
        #expect(exited.exit == .code(3))
        #expect(exited.message == "exited with code 3")

        let signalled = await fixture.run(fixture.runner(["run": try fixture.shell("kill -USR1 $$")]))
        #expect(signalled.outcome == .failed)
        #expect(signalled.exit == .signal(SIGUSR1))
        #expect(signalled.message == "killed by signal \(SIGUSR1) (SIGUSR1)")

        let succeeded = await fixture.run(fixture.runner(["run": try fixture.shell("true")]))
        #expect(succeeded.exit == .code(0))
        #expect(succeeded.startedAtUnixUs > 0 && succeeded.finishedAtUnixUs >= succeeded.startedAtUnixUs)
    }

    @Test func eventsArriveStartedThenFinishedExactlyOnce() async throws {
        let fixture = try RunnerFixture()
        let runner = fixture.runner(["run": try fixture.shell("true")])
        let result = await fixture.run(runner)
        let events = fixture.events.withLock { $0 }
        #expect(events.count == 2)
        guard case .started(let start)? = events.first, case .finished(let finished)? = events.last else {
            Issue.record("unexpected events \(events)")
            return
        }
        #expect(finished == result)
        #expect(start.processID > 1)
        #expect(start.processStartTicks != nil)
        #expect(runner.cancel() == .alreadyFinished)
    }

    @Test func busyAllocatingTaskReportsCPUTimeAndPeakMemory() async throws {
        let fixture = try RunnerFixture()
        // ~20 MB held in a shell variable, then a CPU-bound loop.
        let script = """
            big=$(head -c 20000000 /dev/zero | tr '\\0' a)
            i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done
            echo ${#big}
            """
        let result = await fixture.run(fixture.runner(["run": try fixture.shell(script)]))
        #expect(result.outcome == .succeeded, "\(result.message)")
        let usage = try #require(result.usage)
        #expect(usage.userCPUMilliseconds + usage.systemCPUMilliseconds > 0)
        #expect(usage.maxRSSKiB > 15_000)
        #expect(usage.wallMilliseconds > 0)
    }

    @Test func cancelStopsTheWholeProcessGroupIncludingGrandchildren() async throws {
        let fixture = try RunnerFixture()
        let script = #"sleep 1000 & echo $! > "$OUT/grandchild.pid"; wait"#
        let runner = fixture.runner(["run": try fixture.shell(script)], killGraceMilliseconds: 5_000)
        runner.start()
        #expect(await waitUntil { Int32(fixture.read("grandchild.pid").filter(\.isNumber)) != nil })
        let grandchild = try #require(Int32(fixture.read("grandchild.pid").filter(\.isNumber)))
        let start = try #require(fixture.startedEvents.first)
        #expect(getpgid(grandchild) == start.processID)  // same group as the task, not the agent's
        #expect(getpgid(start.processID) == start.processID && getpgrp() != start.processID)

        #expect(runner.cancel(reason: "lease revoked: cancelled") == .stopping)
        #expect([.alreadyStopping, .alreadyFinished].contains(runner.cancel()))  // never signals twice
        let result = await runner.result()
        #expect(result.outcome == .cancelled)
        #expect(result.exit == .signal(SIGTERM))
        #expect(result.message == "lease revoked: cancelled; SIGTERM sent; killed by signal 15 (SIGTERM)")
        #expect(await waitUntil { processHasEnded(grandchild) }, "grandchild \(grandchild) survived the cancel")
    }

    @Test func timeoutSendsTermThenKillToATaskThatTrapsTerm() async throws {
        let fixture = try RunnerFixture()
        let script = #"trap 'echo got-term >> "$OUT/trap.txt"' TERM; echo ready > "$OUT/ready.txt"; while :; do sleep 1; done"#
        // The lease's 1 s timeout is smaller than the entrypoint's 1 h, so it applies.
        let runner = fixture.runner(["run": try fixture.shell(script, timeoutMilliseconds: 3_600_000)],
                                    lease: RunnerFixture.lease(timeoutMs: 1_000), killGraceMilliseconds: 1_500)
        #expect(runner.effectiveTimeoutMilliseconds == 1_000)
        let clock = ContinuousClock()
        let began = clock.now
        let result = await fixture.run(runner)
        let elapsed = clock.now - began
        #expect(result.outcome == .timedOut)
        #expect(result.exit == .signal(SIGKILL))
        #expect(result.message == "timed out after 1s; SIGTERM sent, SIGKILL after 1s500ms grace; killed by signal 9 (SIGKILL)")
        #expect(fixture.read("trap.txt").contains("got-term"))  // TERM came first, and was survived
        #expect(elapsed >= .milliseconds(2_400) && elapsed < .seconds(60))
    }

    @Test func missingProgramIsRejectedWithoutRunning() async throws {
        let fixture = try RunnerFixture()
        let absolute = await fixture.run(fixture.runner(["run": .init(argv: ["/nonexistent/program"])]))
        #expect(absolute.outcome == .rejected)
        #expect(absolute.message.contains("spawn /nonexistent/program"))
        #expect(absolute.message.contains("No such file or directory"))
        #expect(absolute.exit == nil && absolute.usage == nil && absolute.startedAtUnixUs == 0)

        let bare = await fixture.run(fixture.runner(["run": .init(argv: ["tether-no-such-program"])]))
        #expect(bare.outcome == .rejected)
        #expect(bare.message == "entrypoint 'run': program 'tether-no-such-program' not found in PATH")

        let badDirectory = await fixture.run(fixture.runner(["run": .init(argv: ["/bin/true"], workingDirectory: "/nonexistent")]))
        #expect(badDirectory.outcome == .rejected)
        #expect(badDirectory.message.contains("in /nonexistent"))
        #expect(fixture.startedEvents.isEmpty)
    }

    @Test func unknownEntrypointIsRejectedAndNothingIsSpawned() async throws {
        let fixture = try RunnerFixture()
        let runner = fixture.runner(["run": try fixture.shell("touch \"$OUT/ran\"")], lease: RunnerFixture.lease(entrypoint: "rm-rf"))
        let result = await fixture.run(runner)
        #expect(result.outcome == .rejected)
        #expect(result.message == "entrypoint 'rm-rf' not configured on this agent")
        #expect(fixture.startedEvents.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: fixture.scratch.path("ran")))
        #expect(!FileManager.default.fileExists(atPath: fixture.logRoot))
    }

    @Test func idsThatCouldEscapeTheLogDirectoryAreRejected() async throws {
        let fixture = try RunnerFixture()
        let runner = fixture.runner(["run": try fixture.shell("touch \"$OUT/ran\"")], lease: RunnerFixture.lease(runID: ".."))
        let result = await fixture.run(runner)
        #expect(result.outcome == .rejected)
        #expect(result.message.contains("run_id '..'"))
        #expect(!FileManager.default.fileExists(atPath: fixture.scratch.path("ran")))
    }

    @Test func cancelBeforeStartEndsTheAttemptWithoutRunningIt() async throws {
        let fixture = try RunnerFixture()
        let runner = fixture.runner(["run": try fixture.shell("touch \"$OUT/ran\"")])
        #expect(runner.cancel(reason: "agent shutting down") == .cancelledBeforeStart)
        runner.start()
        let result = await runner.result()
        #expect(result.outcome == .cancelled)
        #expect(result.message == "agent shutting down before the task started")
        #expect(!FileManager.default.fileExists(atPath: fixture.scratch.path("ran")))
    }

    @Test func leftoverBackgroundProcessesDieWhenTheTaskExits() async throws {
        let fixture = try RunnerFixture()
        let script = #"sleep 1000 & echo $! > "$OUT/leftover.pid""#
        let result = await fixture.run(fixture.runner(["run": try fixture.shell(script)]))
        #expect(result.outcome == .succeeded)
        let leftover = try #require(Int32(fixture.read("leftover.pid").filter(\.isNumber)))
        #expect(await waitUntil { processHasEnded(leftover) }, "background process \(leftover) outlived its task")
    }

    @Test func environmentLayersOverrideInOrder() {
        var lease = RunnerFixture.lease(params: ["a.b": "dotted", "a_b": "underscored"])
        lease.id = "real"
        let entrypoint = AgentConfiguration.Entrypoint(argv: ["/bin/true"], environment: ["PATH": "/opt/bin", "TOKEN": "t"])
        let environment = TaskRunner.environment(for: lease, entrypoint: entrypoint,
                                                 inherited: ["PATH": "/usr/bin", "LANG": "C.UTF-8", "SECRET": "x"])
        #expect(environment["PATH"] == "/opt/bin")
        #expect(environment["LANG"] == "C.UTF-8")
        #expect(environment["SECRET"] == nil)
        #expect(environment["TOKEN"] == "t")
        #expect(environment["TETHER_PARAM_A_B"] == "underscored")  // "a_b" sorts after "a.b"
        #expect(environment["TETHER_LEASE_ID"] == "real")
        #expect(TaskRunner.environment(for: lease, entrypoint: .init(argv: ["x"]), inherited: [:])["PATH"] == TaskRunner.defaultSearchPath)
    }
}

@Suite struct EntrypointCheckTests {
    @Test func anEntrypointIsUsableOnlyIfItsProgramIsAnExecutableFileAndItsDirectoryExists() throws {
        let fixture = try RunnerFixture()
        let plain = fixture.scratch.path("not-executable")
        try "echo".write(toFile: plain, atomically: true, encoding: .utf8)
        typealias Entrypoint = AgentConfiguration.Entrypoint
        #expect(TaskRunner.unusable(Entrypoint(argv: ["true"]), inherited: ["PATH": "/usr/bin:/bin"]) == nil)
        #expect(TaskRunner.unusable(Entrypoint(argv: ["true"]), inherited: ["PATH": "/nowhere"])?.contains("not found in PATH (/nowhere)") == true)
        // The entrypoint's own PATH wins, as it does for the task.
        #expect(TaskRunner.unusable(Entrypoint(argv: ["true"], environment: ["PATH": "/bin"]), inherited: ["PATH": "/nowhere"]) == nil)
        #expect(TaskRunner.unusable(Entrypoint(argv: [plain]), inherited: [:]) == "program '\(plain)' is not an executable file")
        #expect(TaskRunner.unusable(Entrypoint(argv: ["/bin/true"], workingDirectory: plain), inherited: [:])
            == "working_dir '\(plain)' is not a directory")
        #expect(TaskRunner.unusable(Entrypoint(argv: ["/bin/true"], workingDirectory: fixture.scratch.url.path), inherited: [:]) == nil)
    }
}
