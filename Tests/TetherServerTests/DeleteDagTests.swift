import GRPC
import Testing
@testable import TetherServer
import TetherWire

/// DeleteDag's answers, and callbacks and deadlines as GetRun shows them.
@Suite struct DeleteDagTests {
    static let dag = """
        dag_id: doomed
        deadline: 1h
        tasks:
          - {id: a, entrypoint: a, on_success: notify}
        """

    private static func delete(_ h: ServerHarness, _ dagID: String, cancelRuns: Bool) async throws(GRPCStatus) -> ControlV1.DeleteDagResponse {
        var request = ControlV1.DeleteDagRequest()
        request.dagID = dagID
        request.cancelRuns = cancelRuns
        return try await h.control(ControlV1.ControlService.deleteDag, request)
    }

    @Test func deleteIsNotFoundForAnUnknownDAGRefusedWithActiveRunsAndThenGoneForGood() async throws {
        let h = try ServerHarness()
        await #expect { try await Self.delete(h, "nope", cancelRuns: true) } throws: { ($0 as? GRPCStatus)?.code == .notFound }
        _ = try await h.apply(Self.dag)
        let run = try await h.trigger("doomed")
        #expect(run.deadlineAtUnixUs == run.createdAtUnixUs + 3_600_000_000)
        await #expect { try await Self.delete(h, "doomed", cancelRuns: false) } throws: { error in
            let status = error as? GRPCStatus
            return status?.code == .failedPrecondition && status?.message.contains("unfinished run") == true
        }
        #expect(try await h.run(run.runID).run?.state == .running)
        let deleted = try await Self.delete(h, "doomed", cancelRuns: true)
        #expect(deleted.cancelledRunIds == [run.runID])
        await #expect { try await h.run(run.runID) } throws: { ($0 as? GRPCStatus)?.code == .notFound }
        var get = ControlV1.GetDagRequest()
        get.dagID = "doomed"
        await #expect { let _: ControlV1.GetDagResponse = try await h.control(ControlV1.ControlService.getDag, get) } throws: {
            ($0 as? GRPCStatus)?.code == .notFound
        }
        let again = try await h.apply(Self.dag)
        #expect(again.created && again.version?.version == 1)
        #expect(again.version?.spec?.deadline == "1h" && again.version?.spec?.tasks.first?.onSuccess == "notify")
        await h.stop()
    }

    @Test func getRunListsARunsCallbacksWithTheirAttempts() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.dag)
        let agent = try await h.connectAgent("x", entrypoints: ["a", "notify"])
        _ = try await agent.welcome()
        let run = try await h.trigger("doomed")
        let grant = try await agent.grant()
        try await agent.report(grant, .succeeded, sequence: 1)
        let callback = try await agent.grant()
        #expect(callback.task?.taskID == "on_success.1" && callback.entrypoint == "notify" && callback.params["task_id"] == "a")
        let shown = try await h.run(run.runID)
        #expect(shown.run?.state == .success)
        let listed = try #require(shown.callbacks.first)
        #expect(listed.callbackID == "on_success.1" && listed.kind == .onSuccess && listed.taskID == "a")
        #expect(listed.state == .running && listed.attempts.map(\.leaseID) == [callback.leaseID])
        await agent.close()
        await h.stop()
    }
}
