import GRPC
import Testing
@testable import TetherServer
@_spi(Testing) import TetherWire

/// Who may call each ControlService method, over the wire. The methods come from the
/// generated descriptors of control.proto, so a new RPC is covered (and fails) until it
/// has a line in `ControlAccess`.
@Suite struct AccessControlTests {
    static let servicePrefix = ControlV1.ControlService.serviceName + "."

    /// Every method of ControlService in control.proto, as `:path`s.
    static var controlMethodPaths: [String] {
        WireRegistry.fileDescriptors.flatMap(\.symbols)
            .filter { $0.hasPrefix(servicePrefix) && !$0.dropFirst(servicePrefix.count).contains(".") }
            .map { "/\(ControlV1.ControlService.serviceName)/\($0.dropFirst(servicePrefix.count))" }
    }

    /// What the brief for the roles says, by name: Get*/List* and WatchEvents read for
    /// viewers, except ListTokens and ListAuditEntries (admins'); everything else writes.
    static func expectedKind(_ name: String) -> ControlAccess.Kind {
        name.hasPrefix("Get") || name.hasPrefix("List") || name == "WatchEvents" ? .read : .write
    }

    @Test func everyControlMethodHasAnAccessEntryAndReadsAreTheGetsAndLists() {
        let paths = Self.controlMethodPaths
        #expect(paths.count >= 24, "\(paths)")
        #expect(paths.contains(ControlV1.ControlService.listAuditEntries.path))
        for path in paths {
            let name = ControlAccess.methodName(path)
            guard let access = ControlAccess.table[path] else {
                Issue.record("\(name) has no line in ControlAccess.table")
                continue
            }
            #expect(access.kind == Self.expectedKind(name), "\(name)")
            if access.kind == .read && !["ListTokens", "ListAuditEntries"].contains(name) {
                #expect(access.least == .viewer, "\(name) is a read: viewers may call it")
            }
            #expect(access.least != .agent, "\(name)")
        }
        #expect(Set(ControlAccess.table.keys) == Set(paths), "the table names no method that does not exist")
        for name in ["ApplyDag", "DeleteDag", "SetPool", "DeletePool", "CreateToken", "RevokeToken", "ListTokens", "ListAuditEntries"] {
            #expect(ControlAccess.of("/\(ControlV1.ControlService.serviceName)/\(name)").least == .admin, "\(name)")
        }
        for name in ["TriggerRun", "CancelRun", "CancelTaskInstance", "ClearRun", "Backfill", "PauseDag", "UnpauseDag",
                     "DrainAgent", "UndrainAgent", "ForgetAgent"] {
            #expect(ControlAccess.of("/\(ControlV1.ControlService.serviceName)/\(name)") == .write(.operator), "\(name)")
        }
        #expect(ControlAccess.of("/\(ControlV1.ControlService.serviceName)/NotInTheTable") == .write(.admin), "fails closed")
    }

    /// Calls `path` with an empty request (valid protobuf for any message) and the given
    /// token; nil if it was not refused at all. WatchEvents gets a cursor of no server
    /// process, so a permitted call ends at once (OUT_OF_RANGE) instead of streaming.
    static func refusal(_ h: ServerHarness, _ path: String, secret: String?) async -> GRPCStatusCode? {
        let metadata = secret.map(ServerHarness.bearer) ?? GRPCMetadata()
        do {
            if path == ControlV1.ControlService.watchEvents.path {
                var request = ControlV1.WatchEventsRequest()
                request.afterCursor = 1
                let method = RPCMethod<ControlV1.WatchEventsRequest, ControlV1.ListPoolsResponse, RPCShape.Unary>(path: path)
                let _: ControlV1.ListPoolsResponse = try await h.client.unary(method, request, metadata: metadata, timeout: .seconds(10))
            } else {
                let method = RPCMethod<ControlV1.ListPoolsRequest, ControlV1.ListPoolsResponse, RPCShape.Unary>(path: path)
                let _: ControlV1.ListPoolsResponse = try await h.client.unary(method, ControlV1.ListPoolsRequest(), metadata: metadata,
                                                                              timeout: .seconds(10))
            }
            return nil
        } catch {
            return [.unauthenticated, .permissionDenied].contains(error.code) ? error.code : nil
        }
    }

    @Test func everyMethodRefusesMissingAndWrongTokensAndRolesBelowItsOwn() async throws {
        let h = try ServerHarness()
        let viewer = try await h.createToken(.viewer)
        let `operator` = try await h.createToken(.operator)
        let agent = try await h.createToken(.agent, agentName: "eu-1")
        let paths = Self.controlMethodPaths
        for path in paths {
            let name = ControlAccess.methodName(path)
            let access = ControlAccess.of(path)
            #expect(await Self.refusal(h, path, secret: nil) == .unauthenticated, "\(name) without a token")
            #expect(await Self.refusal(h, path, secret: "tether_000000000000_0123456789abcdef") == .unauthenticated, "\(name), unknown token")
            #expect(await Self.refusal(h, path, secret: "not a token") == .unauthenticated, "\(name), garbage token")
            #expect(await Self.refusal(h, path, secret: agent) == .permissionDenied, "\(name), agent token")
            let viewerRefused = await Self.refusal(h, path, secret: viewer)
            #expect(viewerRefused == (access.least == .viewer ? nil : .permissionDenied), "\(name), viewer token")
            let operatorRefused = await Self.refusal(h, path, secret: `operator`)
            #expect(operatorRefused == (access.least == .admin ? .permissionDenied : nil), "\(name), operator token")
            #expect(await Self.refusal(h, path, secret: ServerHarness.adminSecret) == nil, "\(name), admin token")
        }
        await h.stop()
    }

    @Test func aTokenRevokedWhileItsConnectionIsOpenIsRefusedOnTheNextCallOnIt() async throws {
        let h = try ServerHarness()
        var create = ControlV1.CreateTokenRequest()
        create.role = .operator
        let created: ControlV1.CreateTokenResponse = try await h.control(ControlV1.ControlService.createToken, create)
        // One client: one HTTP/2 connection, kept open across both calls.
        let client = try GRPCClient(configuration: .init(target: h.address, tls: nil))
        let metadata = ServerHarness.bearer(created.secret)
        let _: ControlV1.ListDagsResponse = try await client.unary(ControlV1.ControlService.listDags, ControlV1.ListDagsRequest(),
                                                                   metadata: metadata, timeout: .seconds(10))
        var revoke = ControlV1.RevokeTokenRequest()
        revoke.tokenID = created.token!.tokenID
        let _: ControlV1.RevokeTokenResponse = try await h.control(ControlV1.ControlService.revokeToken, revoke)
        do {
            let _: ControlV1.ListDagsResponse = try await client.unary(ControlV1.ControlService.listDags, ControlV1.ListDagsRequest(),
                                                                       metadata: metadata, timeout: .seconds(10))
            Issue.record("a revoked token was accepted")
        } catch {
            #expect(error.code == .unauthenticated)
        }
        await client.close()
        await h.stop()
    }

    @Test func viewerAndOperatorTokensCannotOpenTheAgentStream() async throws {
        let h = try ServerHarness()
        for role in [ControlV1.TokenRole.viewer, .operator] {
            let secret = try await h.createToken(role)
            do {
                let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], secret: secret)
                #expect(await agent.endStatus()?.code == .permissionDenied, "\(role)")
            } catch let error as GRPCStatus {
                #expect(error.code == .permissionDenied, "\(role)")   // refused before the Hello went out
            }
        }
        let agentSecret = try await h.createToken(.agent, agentName: "eu-1")
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], secret: agentSecret)
        _ = try await agent.welcome()
        await agent.close()
        await h.stop()
    }

    @Test func tokensOfEveryRoleCanBeCreatedAndAreListedWithTheirRole() async throws {
        let h = try ServerHarness()
        for role in [ControlV1.TokenRole.viewer, .operator, .admin] {
            var create = ControlV1.CreateTokenRequest()
            create.role = role
            create.description = "role \(role)"
            let created: ControlV1.CreateTokenResponse = try await h.control(ControlV1.ControlService.createToken, create)
            #expect(created.token?.role == role)
        }
        var bound = ControlV1.CreateTokenRequest()
        bound.role = .viewer
        bound.agentName = "eu-1"
        await #expect(throws: GRPCStatus.self) {
            let _: ControlV1.CreateTokenResponse = try await h.control(ControlV1.ControlService.createToken, bound)
        }
        var listAll = ControlV1.ListTokensRequest()
        listAll.includeInactive = true
        let listed: ControlV1.ListTokensResponse = try await h.control(ControlV1.ControlService.listTokens, listAll)
        #expect(Set(listed.tokens.map(\.role)) == [.viewer, .operator, .admin])
        await h.stop()
    }
}
