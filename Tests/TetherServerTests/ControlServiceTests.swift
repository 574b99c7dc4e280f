import GRPC
import Testing
import TetherWire

@Suite struct ControlServiceTests {
    static let etl = """
        dag_id: nightly_etl
        description: the nightly load
        tasks:
          - id: extract
            entrypoint: extract
          - id: load
            entrypoint: load
            depends_on: [extract]
        """

    @Test func callsWithoutAValidAdminTokenAreRefusedAndChangeNothing() async throws {
        let h = try ServerHarness()
        await #expect(throws: GRPCStatus.self) {
            let _: ControlV1.ListDagsResponse = try await h.control("ListDags", ControlV1.ListDagsRequest(), secret: nil)
        }
        do {
            var request = ControlV1.ApplyDagRequest()
            request.specYaml = Self.etl
            let _: ControlV1.ApplyDagResponse = try await h.control("ApplyDag", request, secret: "not-a-token-at-all")
            Issue.record("ApplyDag with a bad token succeeded")
        } catch {
            #expect(error.code == .unauthenticated)
        }
        let agentToken = try await h.createToken(.agent)
        do {
            let _: ControlV1.ListDagsResponse = try await h.control("ListDags", ControlV1.ListDagsRequest(), secret: agentToken)
            Issue.record("an agent token listed DAGs")
        } catch {
            #expect(error.code == .permissionDenied)
        }
        let dags: ControlV1.ListDagsResponse = try await h.control("ListDags", ControlV1.ListDagsRequest())
        #expect(dags.dags.isEmpty)
        await h.stop()
    }

    @Test func applyIsVersionedAndIdempotent() async throws {
        let h = try ServerHarness()
        let first = try await h.apply(Self.etl)
        #expect(first.created && first.version?.version == 1)
        #expect(first.version?.spec?.tasks.map(\.taskId) == ["extract", "load"])
        #expect(first.version?.specYaml == Self.etl)
        let again = try await h.apply(Self.etl + "\n")
        #expect(!again.created && again.version?.version == 1)
        let changed = try await h.apply(Self.etl.replacingOccurrences(of: "the nightly load", with: "changed"))
        #expect(changed.created && changed.version?.version == 2)

        var get = ControlV1.GetDagRequest()
        get.dagId = "nightly_etl"
        get.version = 1
        let v1: ControlV1.GetDagResponse = try await h.control("GetDag", get)
        #expect(v1.dag?.latestVersion == 2 && v1.version?.spec?.description == "the nightly load")
        var versions = ControlV1.ListDagVersionsRequest()
        versions.dagId = "nightly_etl"
        let listed: ControlV1.ListDagVersionsResponse = try await h.control("ListDagVersions", versions)
        #expect(listed.versions.map(\.version) == [1, 2])
        await h.stop()
    }

    @Test func invalidSpecIsInvalidArgumentNamingFileTaskAndField() async throws {
        let h = try ServerHarness()
        do {
            _ = try await h.apply(Self.etl.replacingOccurrences(of: "[extract]", with: "[extrct]"), source: "dags/etl.yaml")
            Issue.record("an invalid spec was applied")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("dags/etl.yaml"))
            #expect(error.message.contains("extrct"))
        }
        var get = ControlV1.GetDagRequest()
        get.dagId = "nightly_etl"
        await #expect(throws: GRPCStatus.self) { let _: ControlV1.GetDagResponse = try await h.control("GetDag", get) }
        await h.stop()
    }

    @Test func triggerUnknownDAGIsNotFoundAndUnknownParamIsInvalid() async throws {
        let h = try ServerHarness()
        do {
            _ = try await h.trigger("ghost")
            Issue.record("triggered an unknown DAG")
        } catch {
            #expect(error.code == .notFound)
        }
        _ = try await h.apply(Self.etl)
        do {
            _ = try await h.trigger("nightly_etl", params: ["nope": "1"])
            Issue.record("an undeclared param was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
        }
        var list = ControlV1.ListRunsRequest()
        list.dagId = "nightly_etl"
        let runs: ControlV1.ListRunsResponse = try await h.control("ListRuns", list)
        #expect(runs.runs.isEmpty)
        await h.stop()
    }

    @Test func listRunsPagesNewestFirst() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.etl)
        var ids: [String] = []
        for _ in 0..<5 { ids.append(try await h.trigger("nightly_etl").runId) }
        var request = ControlV1.ListRunsRequest()
        request.dagId = "nightly_etl"
        request.pageSize = 2
        var seen: [String] = []
        repeat {
            let page: ControlV1.ListRunsResponse = try await h.control("ListRuns", request)
            seen += page.runs.map(\.runId)
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        #expect(seen == ids.reversed())
        await h.stop()
    }
}
