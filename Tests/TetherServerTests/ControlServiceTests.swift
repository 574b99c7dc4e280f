import GRPC
import Testing
@testable import TetherServer
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
            let _: ControlV1.ListDagsResponse = try await h.control(ControlV1.ControlService.listDags, ControlV1.ListDagsRequest(), secret: nil)
        }
        do {
            var request = ControlV1.ApplyDagRequest()
            request.specYaml = Self.etl
            let _: ControlV1.ApplyDagResponse = try await h.control(ControlV1.ControlService.applyDag, request, secret: "not-a-token-at-all")
            Issue.record("ApplyDag with a bad token succeeded")
        } catch {
            #expect(error.code == .unauthenticated)
        }
        let agentToken = try await h.createToken(.agent, agentName: "eu-1")
        do {
            let _: ControlV1.ListDagsResponse = try await h.control(ControlV1.ControlService.listDags, ControlV1.ListDagsRequest(), secret: agentToken)
            Issue.record("an agent token listed DAGs")
        } catch {
            #expect(error.code == .permissionDenied)
        }
        let dags: ControlV1.ListDagsResponse = try await h.control(ControlV1.ControlService.listDags, ControlV1.ListDagsRequest())
        #expect(dags.dags.isEmpty)
        await h.stop()
    }

    @Test func applyIsVersionedAndIdempotent() async throws {
        let h = try ServerHarness()
        let first = try await h.apply(Self.etl)
        #expect(first.created && first.version?.version == 1)
        #expect(first.version?.spec?.tasks.map(\.taskID) == ["extract", "load"])
        #expect(first.version?.specYaml == Self.etl)
        let again = try await h.apply(Self.etl + "\n")
        #expect(!again.created && again.version?.version == 1)
        let changed = try await h.apply(Self.etl.replacingOccurrences(of: "the nightly load", with: "changed"))
        #expect(changed.created && changed.version?.version == 2)

        var get = ControlV1.GetDagRequest()
        get.dagID = "nightly_etl"
        get.version = 1
        let v1: ControlV1.GetDagResponse = try await h.control(ControlV1.ControlService.getDag, get)
        #expect(v1.dag?.latestVersion == 2 && v1.version?.spec?.description == "the nightly load")
        var versions = ControlV1.ListDagVersionsRequest()
        versions.dagID = "nightly_etl"
        let listed: ControlV1.ListDagVersionsResponse = try await h.control(ControlV1.ControlService.listDagVersions, versions)
        #expect(listed.versions.map(\.version) == [2, 1], "newest first")
        versions.pageSize = 1
        let page1: ControlV1.ListDagVersionsResponse = try await h.control(ControlV1.ControlService.listDagVersions, versions)
        versions.pageToken = page1.nextPageToken
        let page2: ControlV1.ListDagVersionsResponse = try await h.control(ControlV1.ControlService.listDagVersions, versions)
        #expect(page1.versions.map(\.version) == [2] && page2.versions.map(\.version) == [1] && page2.nextPageToken.isEmpty)
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
        get.dagID = "nightly_etl"
        await #expect(throws: GRPCStatus.self) { let _: ControlV1.GetDagResponse = try await h.control(ControlV1.ControlService.getDag, get) }
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
        list.dagID = "nightly_etl"
        let runs: ControlV1.ListRunsResponse = try await h.control(ControlV1.ControlService.listRuns, list)
        #expect(runs.runs.isEmpty)
        await h.stop()
    }

    @Test func listRunsPagesNewestFirst() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.etl)
        var ids: [String] = []
        for _ in 0..<5 { ids.append(try await h.trigger("nightly_etl").runID) }
        var request = ControlV1.ListRunsRequest()
        request.dagID = "nightly_etl"
        request.pageSize = 2
        var seen: [String] = []
        repeat {
            let page: ControlV1.ListRunsResponse = try await h.control(ControlV1.ControlService.listRuns, request)
            seen += page.runs.map(\.runID)
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        #expect(seen == ids.reversed())
        await h.stop()
    }
    static let withParams = """
        dag_id: with_params
        params: {p0: "", p1: "", p2: "", p3: "", p4: "", p5: "", p6: "", day: ""}
        tasks:
          - id: only
            entrypoint: only
        """

    @Test func triggerRefusesOversizedParamsNamingTheParamAndTheLimit() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.withParams)
        do {
            _ = try await h.trigger("with_params", params: ["day": String(repeating: "x", count: 3_900_000)])
            Issue.record("a 3.9 MB param was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("value of 'day' is 3900000 bytes; at most 4096"), "\(error.message)")
        }
        // (A NUL cannot arrive: decoding refuses it, see BadInputTests' bad_text_in_string_fields.)
        do {
            _ = try await h.trigger("with_params", params: [String(repeating: "k", count: 200_000): "1"])
            Issue.record("a 200 KB param name was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("is 200000 characters; at most 128"), "\(error.message.prefix(300))")
            #expect(error.message.utf8.count < 1_000)
        }
        let run = try await h.trigger("with_params", params: ["day": "2026-12-07"])
        let runs: ControlV1.ListRunsResponse = try await h.control(ControlV1.ControlService.listRuns, ControlV1.ListRunsRequest())
        #expect(runs.runs.map(\.runID) == [run.runID])
        await h.stop()
    }

    @Test func listRunsEndsAPageBeforeTheMessageLimitAndPagesOn() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.withParams)
        // Each run carries ~28 KiB of params (within every limit); 160 of them are ~4.5 MB,
        // more than one 4 MiB message.
        let value = String(repeating: "v", count: 4_096)
        let params = Dictionary(uniqueKeysWithValues: (0..<7).map { ("p\($0)", value) })
        var ids: [String] = []
        for _ in 0..<160 { ids.append(try await h.trigger("with_params", params: params).runID) }
        var request = ControlV1.ListRunsRequest()
        request.pageSize = 1_000
        var pages: [[String]] = []
        repeat {
            let page: ControlV1.ListRunsResponse = try await h.control(ControlV1.ControlService.listRuns, request)
            pages.append(page.runs.map(\.runID))
            #expect(page.runs.allSatisfy { $0.params == params })
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty && pages.count < 10
        #expect(pages.count == 2)
        #expect(pages.joined().elementsEqual(ids.reversed()))
        await h.stop()
    }

    @Test func aRowTooLargeForAnyResponseIsListedSlimmed() {
        // Runs stored before the param limits: one too large for any message, one with a
        // NUL no protobuf string can carry. Neither may break the listing.
        var huge = ControlV1.Run()
        huge.runID = "huge"
        huge.params = ["day": String(repeating: "x", count: 5 << 20)]
        var nul = ControlV1.Run()
        nul.runID = "nul"
        nul.params = ["day": "a\u{0}b"]
        var budget = ListResponseBudget()
        for (run, bytes) in [(huge, 3 + (5 << 20)), (nul, 6)] {
            guard case .send(let row) = budget.admit(run, slim: { $0.slimForList() }) else {
                Issue.record("\(run.runID) was not sent")
                continue
            }
            #expect(row.runID == run.runID && row.params.isEmpty)
            #expect(row.note == "params and note left out of this list (\(bytes) bytes)")
        }
        // Ordinary rows are sent as they are until the next would not fit.
        var small = ControlV1.Run()
        small.params = ["day": String(repeating: "x", count: 1_000)]
        var sent = 0
        var tight = ListResponseBudget(bytes: 10_000)
        while case .send(let row) = tight.admit(small, slim: { $0.slimForList() }) {
            #expect(row == small)
            sent += 1
        }
        #expect(sent == 9)
    }

    @Test func billionLaughsApplyFailsFastAndTheServerServesOn() async throws {
        let h = try ServerHarness()
        // Nine levels of nine aliases, lines broken with U+2028, which libyaml takes as a
        // line break.
        var bomb = "a: &a [x, x, x, x, x, x, x, x, x]\u{2028}"
        for (previous, name) in zip("abcdefgh", "bcdefghi") {
            bomb += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]\u{2028}"
        }
        bomb += "? *i\u{2028}: boom\u{2028}"
        do {
            _ = try await h.apply(bomb, source: "bomb.yaml")
            Issue.record("the bomb was applied")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("bomb.yaml:"), "\(error.message)")
            #expect(error.message.contains("expands to more than 100,000 nodes"), "\(error.message)")
        }
        let applied = try await h.apply("""
            dag_id: anchored
            defaults:
              queue: &q gpu
            tasks:
              - {id: a, entrypoint: e}
              - {id: b, entrypoint: e, queue: *q, depends_on: [a]}
            """)
        #expect(applied.version?.spec?.tasks.map(\.queue) == ["gpu", "gpu"])
        await h.stop()
    }
}
