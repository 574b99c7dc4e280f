import Foundation
import GRPC
import Testing
@testable import TetherServer
import TetherTestSupport
import TetherWire

/// `WatchEvents` against an in-process server driven by a fake agent.
@Suite struct WatchEventsTests {
    static let chain = """
        dag_id: chain
        tasks:
          - id: first
            entrypoint: work
          - id: second
            entrypoint: work
            depends_on: [first]
          - id: third
            entrypoint: work
            depends_on: [second]
        """

    /// A WatchEvents stream, read one event at a time.
    struct Watcher {
        let call: GRPCClientCall<ControlV1.WatchEventsRequest, ControlV1.WatchEventsResponse>

        init(_ h: ServerHarness, after cursor: UInt64, dag: String = "", run: String = "", agents: Bool = false,
             secret: String = ServerHarness.adminSecret) async throws {
            call = try await h.client.makeCall(ControlV1.ControlService.watchEvents, metadata: ServerHarness.bearer(secret))
            var request = ControlV1.WatchEventsRequest()
            request.afterCursor = cursor
            request.dagID = dag
            request.runID = run
            request.includeAgents = agents
            try await call.send(request)
            await call.finishSending()
        }

        func next() async throws -> ControlV1.WatchEventsResponse {
            guard let event = try await call.next() else { throw await call.status() ?? GRPCStatus(code: .unknown, message: "ended") }
            return event
        }

        /// Events up to and including the one `last` accepts.
        func until(_ last: (ControlV1.WatchEventsResponse) -> Bool) async throws -> [ControlV1.WatchEventsResponse] {
            var events: [ControlV1.WatchEventsResponse] = []
            while true {
                let event = try await next()
                events.append(event)
                if last(event) { return events }
            }
        }
    }

    /// The log's newest cursor once it holds at least `count` events. The feed logs a commit
    /// some milliseconds after it (batched), so a cursor read at once may predate events of
    /// calls that already returned; a watcher resuming from it would wait for them forever.
    static func cursor(afterAtLeast count: UInt64, _ h: ServerHarness) async throws -> UInt64 {
        let log = h.server.eventLog
        try #require(await eventually(within: .seconds(30)) { log.lastCursor & (1 << EventLog.sequenceBits - 1) >= count },
                     "the event log holds fewer than \(count) events after 30 s")
        return log.lastCursor
    }

    static func runFinished(_ event: ControlV1.WatchEventsResponse) -> Bool {
        if case .run(let run)? = event.subject { return run.state == .success || run.state == .failed }
        return false
    }

    @Test(.timeLimit(.minutes(1)))
    func aClientThatResumesFromItsCursorSeesEveryEventOnce() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.chain)
        let start = try await Self.cursor(afterAtLeast: 1, h)
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"])
        _ = try await agent.welcome()
        let continuous = try await Watcher(h, after: start, dag: "chain")
        let interrupted = try await Watcher(h, after: start, dag: "chain")
        _ = try await h.trigger("chain")

        let first = try await agent.grant()
        try await agent.report(first, .succeeded, sequence: 1)
        // The interrupted client reads as far as the first task's success, then goes.
        let before = try await interrupted.until {
            if case .taskInstance(let task)? = $0.subject { return task.taskID == "first" && task.state == .success }
            return false
        }
        await interrupted.call.cancel()
        // What happens while it is away...
        let second = try await agent.grant()
        try await agent.report(second, .succeeded, sequence: 2)
        let third = try await agent.grant()
        try await agent.report(third, .succeeded, sequence: 3)
        let all = try await continuous.until(Self.runFinished)
        // ...it gets on resuming from the last cursor it saw, each once.
        let resumed = try await Watcher(h, after: try #require(before.last).cursor, dag: "chain")
        let after = try await resumed.until(Self.runFinished)

        #expect((before + after).map(\.cursor) == all.map(\.cursor))
        #expect(before + after == all)
        #expect(Set(all.map(\.cursor)).count == all.count)
        #expect(all.map(\.cursor) == all.map(\.cursor).sorted())
        let tasks = all.compactMap { if case .taskInstance(let t)? = $0.subject { "\(t.taskID):\(t.state.rawValue)" } else { nil } }
        for id in ["first", "second", "third"] {
            #expect(tasks.contains("\(id):\(ControlV1.TaskState.running.rawValue)") && tasks.contains("\(id):\(ControlV1.TaskState.success.rawValue)"))
        }
        await resumed.call.cancel()
        await continuous.call.cancel()
        await agent.close()
        await h.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func filtersNarrowToARunAndAgentEventsComeOnlyWhenAskedFor() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.chain)
        _ = try await h.apply(Self.chain.replacingOccurrences(of: "dag_id: chain", with: "dag_id: other"))
        let start = try await Self.cursor(afterAtLeast: 2, h)
        let runA = try await h.trigger("chain")
        _ = try await h.trigger("other")
        let agent = try await h.connectAgent("eu-2", entrypoints: ["work"])
        _ = try await agent.welcome()

        let byRun = try await Watcher(h, after: start, run: runA.runID)
        let withAgents = try await Watcher(h, after: start, agents: true)
        let agentEvent = try await withAgents.until { if case .agent? = $0.subject { true } else { false } }.last
        if case .agent(let seen)? = agentEvent?.subject { #expect(seen.name == "eu-2" && seen.state == .connected) }
        // Each run's first task fails, so both runs end; the filtered stream shows one.
        for sequence: UInt64 in 1...2 { try await agent.report(try await agent.grant(), .failed, sequence: sequence) }
        let events = try await byRun.until(Self.runFinished)
        for event in events {
            switch event.subject {
            case .run(let run)?: #expect(run.runID == runA.runID)
            case .taskInstance(let task)?: #expect(task.runID == runA.runID)
            default: Issue.record("unexpected event \(event)")
            }
        }
        await byRun.call.cancel()
        await withAgents.call.cancel()
        await agent.close()
        await h.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func deletingADagIsAnEventSayingSo() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.chain)
        let start = try await Self.cursor(afterAtLeast: 1, h)
        var request = ControlV1.DeleteDagRequest()
        request.dagID = "chain"
        let _: ControlV1.DeleteDagResponse = try await h.control(ControlV1.ControlService.deleteDag, request)
        let watcher = try await Watcher(h, after: start, dag: "chain")
        let event = try await watcher.next()
        guard case .dag(let dag)? = event.subject else { Issue.record("not a DAG event: \(event)"); return }
        #expect(dag.dagID == "chain" && dag.deleted)
        await watcher.call.cancel()
        await h.stop()
    }

    @Test func badCursorsAndTokensAreRefusedWithTheirStatus() async throws {
        let h = try ServerHarness()
        let stale = (h.server.eventLog.epoch % (1 << 23 - 1) + 1) << 40 | 1
        await #expect(throws: GRPCStatus.self) { try await Watcher(h, after: stale).next() }
        do {
            _ = try await Watcher(h, after: stale).next()
        } catch let status as GRPCStatus {
            #expect(status.code == .outOfRange && status.message.contains("earlier server process"))
        }
        do {
            _ = try await Watcher(h, after: 0, secret: "wrong").next()
            Issue.record("a wrong token was let in")
        } catch let status as GRPCStatus {
            #expect(status.code == .unauthenticated)
        }
        await h.stop()
    }
}
