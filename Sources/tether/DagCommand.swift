import ArgumentParser
import Foundation
import TetherSyntax
import TetherWire

/// `tether dag apply|list|show|versions|diff|pause|unpause|delete|backfill`.
struct DagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dag",
        abstract: "Apply and inspect DAG specs.",
        subcommands: [Apply.self, List.self, Show.self, Versions.self, Diff.self, Pause.self, Unpause.self, Delete.self, Backfill.self]
    )

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply DAG files (YAML, see docs/dag-format.md).",
            discussion: "An identical spec is a no-op; a changed one becomes the next version. Exit code 1 if any file is refused."
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG files.") var files: [String]

        func run() async throws {
            try await withControl(client) { control in
                var failed = false
                for file in files {
                    let text: String
                    do {
                        text = try String(contentsOfFile: file, encoding: .utf8)
                    } catch {
                        printError("tether: cannot read \(file): \(error.localizedDescription)")
                        failed = true
                        continue
                    }
                    var request = ControlV1.ApplyDagRequest()
                    request.specYaml = text
                    request.sourceName = file
                    do {
                        let response: ControlV1.ApplyDagResponse = try await control.call(ControlV1.ControlService.applyDag, request)
                        try emit(response, json: client.json) {
                            let version = response.version
                            print("\(version?.dagID ?? "?"): version \(version?.version ?? 0) \(response.created ? "applied" : "unchanged")")
                        }
                    } catch let error as CLIError where error.exitCode == 1 {
                        printError("tether: \(error.description)")
                        failed = true
                    }
                }
                if failed { throw CLIError("some files were not applied", exitCode: 1) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List DAGs.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.ListDagsRequest()
                request.pageSize = 1000
                var response: ControlV1.ListDagsResponse = try await control.call(ControlV1.ControlService.listDags, request)
                while !response.nextPageToken.isEmpty {  // every page, as one response
                    request.pageToken = response.nextPageToken
                    let page: ControlV1.ListDagsResponse = try await control.call(ControlV1.ControlService.listDags, request)
                    response.dags += page.dags
                    response.nextPageToken = page.nextPageToken
                }
                try emit(response, json: client.json) {
                    printTable(["DAG", "VERSION", "SCHEDULE", "PAUSED", "ACTIVE RUNS", "NEXT RUN"], response.dags.map { dag in
                        [dag.dagID, String(dag.latestVersion), dag.schedule.isEmpty ? "-" : dag.schedule, dag.paused ? "yes" : "no",
                         String(dag.activeRuns), formatTime(dag.nextRunAtUnixUs)]
                    })
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a DAG and the tasks of one of its versions.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String
        @Option(help: "Version (default: the latest).") var version: UInt32 = 0

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.GetDagRequest()
                request.dagID = dag
                request.version = version
                let response: ControlV1.GetDagResponse = try await control.call(ControlV1.ControlService.getDag, request)
                try emit(response, json: client.json) {
                    guard let dag = response.dag, let version = response.version, let spec = version.spec else { return }
                    print("DAG \(dag.dagID) version \(version.version) of \(dag.latestVersion)\(dag.paused ? " (paused)" : "")")
                    if !spec.description.isEmpty { print(spec.description) }
                    print("schedule: \(spec.schedule.isEmpty ? "manual only" : spec.schedule)  hash: \(version.contentHash.prefix(12))")
                    let callbacks = [("on_success", spec.onSuccess), ("on_failure", spec.onFailure),
                                     ("on_deadline_miss", spec.onDeadlineMiss)].filter { !$0.1.isEmpty }
                    if !spec.deadline.isEmpty { print("deadline: \(spec.deadline)") }
                    if !callbacks.isEmpty {
                        print("run callbacks: " + callbacks.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
                              + " (queue \(spec.callbackQueue))")
                    }
                    print("")
                    printTable(["TASK", "ENTRYPOINT", "QUEUE", "DEPENDS ON", "RETRIES", "PRIORITY"], spec.tasks.map { task in
                        [task.taskID, task.entrypoint, task.queue, task.dependsOn.isEmpty ? "-" : task.dependsOn.joined(separator: ","),
                         String(task.retries), String(task.priority)]
                    })
                }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a DAG's schedule from creating runs.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.PauseDagRequest()
                request.dagID = dag
                let response: ControlV1.PauseDagResponse = try await control.call(ControlV1.ControlService.pauseDag, request)
                try emit(response, json: client.json) { print("\(dag): paused") }
            }
        }
    }

    struct Unpause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a DAG's schedule create runs again (catching up only with catchup: true).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.UnpauseDagRequest()
                request.dagID = dag
                let response: ControlV1.UnpauseDagResponse = try await control.call(ControlV1.ControlService.unpauseDag, request)
                try emit(response, json: client.json) { print("\(dag): unpaused") }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a DAG with its versions, runs, task instances and callbacks.",
            discussion: """
                Refused (exit 1) while the DAG has queued or running runs, unless --cancel-runs.
                Its schedule never fires again; pools are left alone; applying the same dag_id
                later starts afresh at version 1, run 1. Asks for confirmation on a terminal;
                otherwise --yes is required.
                """
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String
        @Flag(help: "Do not ask for confirmation.") var yes = false
        @Flag(help: "Cancel the DAG's queued and running runs instead of refusing.") var cancelRuns = false

        func run() async throws {
            if !yes {
                guard isatty(STDIN_FILENO) == 1 else {
                    throw CLIError("deleting DAG '\(dag)' removes all its runs: pass --yes to confirm", exitCode: 1)
                }
                FileHandle.standardError.write(Data("Delete DAG '\(dag)' with all its versions and runs? [y/N] ".utf8))
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    throw CLIError("not deleted", exitCode: 1)
                }
            }
            var request = ControlV1.DeleteDagRequest()
            request.dagID = dag
            request.cancelRuns = cancelRuns
            try await withControl(client) { control in
                let response: ControlV1.DeleteDagResponse = try await control.call(ControlV1.ControlService.deleteDag, request)
                try emit(response, json: client.json) {
                    let cancelled = response.cancelledRunIds
                    print("\(dag): deleted" + (cancelled.isEmpty ? "" : " (cancelled \(cancelled.joined(separator: ", ")))"))
                }
            }
        }
    }

    struct Backfill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a scheduled DAG for every schedule interval of a date range.",
            discussion: """
                One run per interval whose logical date is in FROM..TO (both included), never two:
                intervals that already have a scheduled or backfill run keep it (with --rerun-failed,
                a failed one has its failed tasks cleared and run again). Intervals after the
                schedule's last scheduled instant are left to the schedule. New runs start as the
                DAG's max_active_runs and pause allow, and, with --max-active-runs N, at most N of
                this backfill's runs at once. Prints the runs; with --wait, shows progress
                until every run has finished and exits 1 if any failed. At most 1,000 new runs a call.
                """
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "DAG id.") var dag: String
        @Option(help: ArgumentHelp("First logical date, e.g. 2026-11-01.", valueName: "RFC3339")) var from: String
        @Option(help: ArgumentHelp("Last logical date, e.g. 2026-11-30T23:59:59Z.", valueName: "RFC3339")) var to: String
        @Flag(help: "Re-run the failed tasks of failed runs in the range.") var rerunFailed = false
        @Flag(help: "Wait for every run to finish, showing progress.") var wait = false
        @Option(help: "Most of this backfill's runs running at once (besides the DAG's max_active_runs); 0: no limit of its own.")
        var maxActiveRuns: UInt32 = 0

        func run() async throws {
            func instant(_ text: String, _ option: String) throws -> Int64 {
                do { return try UTCTimestamp.unixMicroseconds(parsing: text) } catch { throw ValidationError("\(option): \(error)") }
            }
            var request = ControlV1.BackfillRequest()
            request.dagID = dag
            request.fromUnixUs = try instant(from, "--from")
            request.toUnixUs = try instant(to, "--to")
            request.rerunFailed = rerunFailed
            request.maxActiveRuns = maxActiveRuns
            try await withControl(client) { control in
                let response: ControlV1.BackfillResponse = try await control.call(ControlV1.ControlService.backfill, request)
                if !client.json {
                    let rerun = response.rerunRunIds.isEmpty ? "" : ", \(response.rerunRunIds.count) failed ones re-run"
                    printError("backfill \(dag): \(response.runs.count) intervals through "
                               + "\(UTCTimestamp.format(unixMicroseconds: response.throughUnixUs)), \(response.created) new runs\(rerun)")
                }
                guard wait else {
                    try emit(response, json: client.json) { Self.printRuns(response.runs) }
                    return
                }
                var runs = response.runs
                var last = ""
                while true {
                    for index in runs.indices where ![.success, .failed, .cancelled].contains(runs[index].state) {
                        var get = ControlV1.GetRunRequest()
                        get.runID = runs[index].runID
                        let latest: ControlV1.GetRunResponse = try await control.call(ControlV1.ControlService.getRun, get)
                        if let run = latest.run { runs[index] = run }
                    }
                    let done = runs.filter { [.success, .failed, .cancelled].contains($0.state) }
                    let line = "backfill \(dag): \(done.count) of \(runs.count) runs finished, "
                        + "\(done.filter { $0.state == .success }.count) succeeded, \(done.filter { $0.state != .success }.count) failed"
                    if line != last, !client.json { printError(line) }
                    last = line
                    if done.count == runs.count { break }
                    try await Task.sleep(for: .milliseconds(500))
                }
                var finished = response
                finished.runs = runs
                try emit(finished, json: client.json) { Self.printRuns(runs) }
                if runs.contains(where: { $0.state != .success }) { throw ExitCode(1) }
            }
        }

        static func printRuns(_ runs: [ControlV1.Run]) {
            printTable(["LOGICAL DATE", "RUN", "TRIGGER", "STATE"], runs.map { run in
                [UTCTimestamp.format(unixMicroseconds: run.logicalTimeUnixUs), run.runID,
                 run.trigger == .backfill ? "backfill" : "schedule", run.state.label]
            })
        }
    }
}
