import ArgumentParser
import Foundation
import TetherSyntax
import TetherWire

/// `tether run trigger|list|show|cancel`.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Trigger and inspect runs.",
        subcommands: [Trigger.self, List.self, Show.self, Cancel.self, Clear.self]
    )

    /// Exit codes of `run trigger --wait`.
    static func exitCode(for state: ControlV1.RunState) -> Int32 {
        switch state {
        case .success: 0
        case .failed: 1
        case .cancelled: 2
        default: 1
        }
    }

    struct Trigger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a run of a DAG's latest version.",
            discussion: """
                Prints the run id. With --wait, shows the run's progress (and why tasks wait)
                until it finishes and exits with its outcome: 0 success, 1 failed, 2 cancelled
                (3 unavailable, 4 auth). A run of a paused DAG waits, queued, until the DAG is
                unpaused. A second trigger with the same --idempotency-key returns the first
                run (and says so on stderr) instead of starting another.
                """
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String
        @Option(name: .customLong("param"), help: "A parameter override, NAME=VALUE (repeatable).") var params: [String] = []
        @Option(help: ArgumentHelp("The run's logical date, e.g. 2026-12-07 or 2026-12-07T06:00:00Z (default: now). "
                                   + "A scheduled DAG's run processes the latest whole schedule interval ending by then.",
                                   valueName: "RFC3339"))
        var logicalDate: String?
        @Option(help: "Returns the run an earlier trigger of this DAG with the same key made, if any.") var idempotencyKey: String?
        @Option(help: "Free text kept with the run.") var note: String?
        @Flag(help: "Wait for the run to finish, showing progress.") var wait = false

        func run() async throws {
            var overrides: [String: String] = [:]
            for param in params {
                guard let equals = param.firstIndex(of: "="), equals != param.startIndex else {
                    throw ValidationError("--param '\(param)' is not NAME=VALUE")
                }
                overrides[String(param[..<equals])] = String(param[param.index(after: equals)...])
            }
            var logicalTime: Int64 = 0
            if let logicalDate {
                do {
                    logicalTime = try UTCTimestamp.unixMicroseconds(parsing: logicalDate)
                } catch {
                    throw ValidationError("--logical-date: \(error)")
                }
            }
            try await withControl(client) { control in
                var request = ControlV1.TriggerRunRequest()
                request.dagID = dag
                request.params = overrides
                request.logicalTimeUnixUs = logicalTime
                request.idempotencyKey = idempotencyKey ?? ""
                request.note = note ?? ""
                let response: ControlV1.TriggerRunResponse = try await control.call(ControlV1.ControlService.triggerRun, request)
                let runID = response.run?.runID ?? ""
                if response.existing, !client.json {
                    printError("run \(runID) was triggered before with idempotency key '\(request.idempotencyKey)'; no new run")
                }
                if !wait {
                    try emit(response, json: client.json) { print(runID) }
                    return
                }
                if !client.json, !response.existing { printError("run \(runID) started") }
                let finished = try await Self.follow(runID, control, quiet: client.json)
                try emit(finished, json: client.json) { RunCommand.Show.printRun(finished) }
                let code = RunCommand.exitCode(for: finished.run?.state ?? .unspecified)
                if code != 0 { throw ExitCode(code) }
            }
        }

        /// Polls GetRun until the run is final, printing a progress line to stderr
        /// whenever the task counts, or why the run or its tasks wait, change.
        static func follow(_ runID: String, _ control: ControlClient, quiet: Bool) async throws -> ControlV1.GetRunResponse {
            var request = ControlV1.GetRunRequest()
            request.runID = runID
            var last = ""
            while true {
                let response: ControlV1.GetRunResponse = try await control.call(ControlV1.ControlService.getRun, request)
                let state = response.run?.state ?? .unspecified
                let counts = (response.run?.taskCounts ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                var line = "\(runID): \(state.label) — \(counts.joined(separator: ", "))"
                if let reason = response.run?.waitReason, !reason.isEmpty { line += "; waiting: \(reason)" }
                let waiting = response.taskInstances.filter { !$0.waitingReason.isEmpty }
                if let first = waiting.first {
                    line += "; \(first.taskID) waits: \(first.waitingReason)" + (waiting.count > 1 ? " (+\(waiting.count - 1) more)" : "")
                }
                if line != last, !quiet { printError(line) }
                last = line
                if [.success, .failed, .cancelled].contains(state) { return response }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runs, newest first.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only runs of this DAG.") var dag: String?
        @Option(help: "Only runs in this state (queued, running, success, failed, cancelled; repeatable).") var state: [String] = []
        @Option(help: "At most this many runs.") var limit: UInt32 = 20

        func run() async throws {
            var states: [ControlV1.RunState] = []
            for name in state {
                guard let known = [ControlV1.RunState.queued, .running, .success, .failed, .cancelled].first(where: { $0.label == name }) else {
                    throw ValidationError("--state '\(name)' is not one of queued, running, success, failed, cancelled")
                }
                states.append(known)
            }
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1...1000") }
            try await withControl(client) { control in
                var request = ControlV1.ListRunsRequest()
                request.dagID = dag ?? ""
                request.states = states
                request.pageSize = limit
                let response: ControlV1.ListRunsResponse = try await control.call(ControlV1.ControlService.listRuns, request)
                try emit(response, json: client.json) {
                    printTable(["RUN", "DAG", "VERSION", "STATE", "TRIGGER", "CREATED", "DURATION"], response.runs.map { run in
                        [run.runID, run.dagID, String(run.dagVersion), run.state.label,
                         run.trigger == .schedule ? "schedule" : run.trigger == .backfill ? "backfill" : "manual",
                         formatTime(run.createdAtUnixUs), formatDuration(fromMicroseconds: run.startedAtUnixUs, to: run.finishedAtUnixUs)]
                    })
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a run and its task instances.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Run id.") var run: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.GetRunRequest()
                request.runID = run
                let response: ControlV1.GetRunResponse = try await control.call(ControlV1.ControlService.getRun, request)
                try emit(response, json: client.json) { Self.printRun(response) }
            }
        }

        static func printRun(_ response: ControlV1.GetRunResponse) {
            guard let run = response.run else { return }
            print("run \(run.runID) of \(run.dagID) v\(run.dagVersion): \(run.state.label)"
                  + " (\(formatDuration(fromMicroseconds: run.startedAtUnixUs, to: run.finishedAtUnixUs)))")
            print("logical date \(UTCTimestamp.format(unixMicroseconds: run.logicalTimeUnixUs)), data interval "
                  + "\(UTCTimestamp.format(unixMicroseconds: run.dataIntervalStartUnixUs)) to "
                  + "\(UTCTimestamp.format(unixMicroseconds: run.dataIntervalEndUnixUs))")
            if !run.waitReason.isEmpty { print("waiting: \(run.waitReason)") }
            if !run.idempotencyKey.isEmpty { print("idempotency key: \(run.idempotencyKey)") }
            if !run.note.isEmpty { print("note: " + run.note.replacingOccurrences(of: "\n", with: "\n      ")) }
            if run.deadlineAtUnixUs != 0 {
                print("deadline \(UTCTimestamp.format(unixMicroseconds: run.deadlineAtUnixUs))"
                      + (run.deadlineMissedAtUnixUs != 0 ? ": missed (found unfinished at "
                         + "\(UTCTimestamp.format(unixMicroseconds: run.deadlineMissedAtUnixUs)))" : ""))
            }
            printTable(["TASK", "STATE", "TRIES", "AGENT", "EXIT", "DURATION", "NOTE"], response.taskInstances.map { task in
                let attempt = task.attempts.last
                let exit: String = switch attempt?.exit {
                case .exitCode(let code)?: String(code)
                case .signal(let signal)?: "signal \(signal)"
                case nil: "-"
                }
                // The task's own tries against its limit; lost or rejected ones apart.
                let own = task.tries - min(task.tries, task.infrastructureAttempts)
                let tries = "\(own)/\(task.maxTries)" + (task.infrastructureAttempts > 0 ? " +\(task.infrastructureAttempts) lost" : "")
                return [task.taskID, task.state.label, tries, attempt?.agentID ?? "-", exit,
                        formatDuration(fromMicroseconds: attempt?.grantedAtUnixUs ?? 0, to: attempt?.finishedAtUnixUs ?? 0),
                        !task.waitingReason.isEmpty ? task.waitingReason : !task.reason.isEmpty ? task.reason : (attempt?.message ?? "")]
            })
            printCallbacks(response.callbacks)
        }

        /// The run's callbacks, after its tasks: they never change the run's state.
        static func printCallbacks(_ callbacks: [ControlV1.Callback]) {
            guard !callbacks.isEmpty else { return }
            print("")
            printTable(["CALLBACK", "FOR", "ENTRYPOINT", "STATE", "AGENT", "EXIT", "NOTE"], callbacks.map { callback in
                let attempt = callback.attempts.last
                let exit: String = switch attempt?.exit {
                case .exitCode(let code)?: String(code)
                case .signal(let signal)?: "signal \(signal)"
                case nil: "-"
                }
                return [callback.callbackID, callback.taskID.isEmpty ? "run" : callback.taskID, callback.entrypoint,
                        callback.state.label, attempt?.agentID ?? "-", exit,
                        !callback.reason.isEmpty ? callback.reason : (attempt?.message ?? "")]
            })
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a run: pending tasks are cancelled, running ones revoked.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Run id.") var run: String
        @Option(help: "Why; added to the run's note.") var reason: String?

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.CancelRunRequest()
                request.runID = run
                request.reason = reason ?? ""
                let response: ControlV1.CancelRunResponse = try await control.call(ControlV1.ControlService.cancelRun, request)
                try emit(response, json: client.json) { print("\(run): \(response.run?.state.label ?? "?")") }
            }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run finished tasks of a run again.",
            discussion: """
                The cleared tasks go back to scheduled and run again as new attempts in the same
                run, on the run's DAG version, each with its full retries; a finished run is
                queued again (it waits while the DAG is paused or at max_active_runs). Without
                --task every task is picked. Tasks not yet finished cannot be cleared: cancel
                them or let them finish. Prints the cleared task ids.
                """
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "Run id.") var run: String
        @Option(name: .customLong("task"), help: "A task to clear (repeatable); default: every task.") var tasks: [String] = []
        @Flag(help: "Also clear every task downstream of them.") var downstream = false
        @Flag(help: "Of the tasks picked, clear only the failed and upstream_failed ones.") var failedOnly = false

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.ClearRunRequest()
                request.runID = run
                request.taskIds = tasks
                request.downstream = downstream
                request.failedOnly = failedOnly
                let response: ControlV1.ClearRunResponse = try await control.call(ControlV1.ControlService.clearRun, request)
                try emit(response, json: client.json) {
                    if response.clearedTaskIds.isEmpty {
                        print("\(run): no task matched; nothing cleared")
                    } else {
                        print("\(run): \(response.run?.state.label ?? "?"); cleared \(response.clearedTaskIds.joined(separator: ", "))")
                    }
                }
            }
        }
    }
}
