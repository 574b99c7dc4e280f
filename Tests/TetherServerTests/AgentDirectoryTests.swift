import Foundation
import GRPC
import Testing
@testable import TetherServer
import TetherWire

/// Agents stay listed after they go (when, why), across restarts, until forgotten.
@Suite struct AgentDirectoryTests {
    static func agents(_ h: ServerHarness) async throws -> [String: ControlV1.Agent] {
        var request = ControlV1.ListAgentsRequest()
        request.includeDisconnected = true
        let response: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, request)
        return Dictionary(uniqueKeysWithValues: response.agents.map { ($0.name, $0) })
    }

    /// Waits (at most 30 s) until `condition` holds of the listed agents.
    static func waitFor(_ h: ServerHarness, _ condition: ([String: ControlV1.Agent]) -> Bool) async throws -> [String: ControlV1.Agent] {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let listed = try await agents(h)
            if condition(listed) || ContinuousClock.now > deadline { return listed }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func finishedTasks(_ n: Double) -> AgentV1.MetricDelta {
        var delta = AgentV1.MetricDelta()
        delta.name = "tether_agent_tasks_finished_total"
        delta.kind = .counter
        delta.value = n
        return delta
    }

    @Test(.timeLimit(.minutes(1)))
    func aSessionThatTookOverFromAnOpenOneShowsReplacedUntilItEndsOtherwise() async throws {
        let h = try ServerHarness()
        let first = try await h.connectAgent("eu-1", entrypoints: ["work"])
        _ = try await first.welcome()
        #expect(try await Self.agents(h)["eu-1"]?.disconnectReason == .unspecified)
        // The same agent redials while its old session is still open.
        let second = try await h.connectAgent("eu-1", entrypoints: ["work"])
        _ = try await second.welcome()
        #expect(await first.endStatus()?.code == .aborted)
        let listed = try await Self.agents(h)["eu-1"]
        #expect(listed?.state == .connected && listed?.disconnectReason == .replaced, "\(String(describing: listed))")
        #expect(listed?.disconnectDetail.contains("took over from one still open from") == true, "\(String(describing: listed))")
        // It ends for another reason: that is what stays.
        await second.call.cancel()
        let gone = try await Self.waitFor(h) { $0["eu-1"]?.state == .disconnected }["eu-1"]
        #expect(gone?.disconnectReason == .lost, "\(String(describing: gone))")
        await h.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func disconnectedAgentsStayListedWithWhyAndTheirCountersSurviveARestart() async throws {
        let h = try ServerHarness()
        let lost = try await h.connectAgent("lost", entrypoints: ["work"])
        _ = try await lost.welcome()
        let drained = try await h.connectAgent("drained", entrypoints: ["work"])
        _ = try await drained.welcome()
        let token = try await h.createToken(.agent, agentName: "revoked")
        let revoked = try await h.connectAgent("revoked", entrypoints: ["work"], secret: token)
        _ = try await revoked.welcome()
        // On a connection of its own, which outlives the harness's client.
        let ownClient = try GRPCClient(configuration: .init(target: h.address, tls: nil))
        let stays = try await h.connectAgent("stays", entrypoints: ["work"], over: ownClient)
        _ = try await stays.welcome()
        try await stays.heartbeat([Self.finishedTasks(7)], id: 1)
        _ = try await stays.heartbeatAck()

        await lost.call.cancel()
        try await drained.call.send(AgentV1.AgentMessage(.goodbye(AgentV1.Goodbye())))
        await drained.call.finishSending()
        var revoke = ControlV1.RevokeTokenRequest()
        revoke.tokenID = String(token.split(separator: "_")[1])
        let _: ControlV1.RevokeTokenResponse = try await h.control(ControlV1.ControlService.revokeToken, revoke)

        let listed = try await Self.waitFor(h) { $0.values.filter { $0.state == .disconnected }.count == 3 }
        #expect(listed["lost"]?.state == .disconnected && listed["lost"]?.disconnectReason == .lost)
        #expect(listed["drained"]?.disconnectReason == .drained)
        #expect(listed["revoked"]?.disconnectReason == .revoked)
        #expect(listed["revoked"]?.disconnectDetail.contains("revoked") == true)
        #expect(listed["stays"]?.state == .connected && listed["stays"]?.disconnectReason == .unspecified)
        #expect((listed["lost"]?.lastSeenAtUnixUs ?? 0) >= (listed["lost"]?.connectedAtUnixUs ?? .max))
        #expect(listed["lost"]?.queues == ["default"] && listed["lost"]?.entrypoints == ["work"])
        var connectedOnly = ControlV1.ListAgentsRequest()
        connectedOnly.includeDisconnected = false
        let live: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, connectedOnly)
        #expect(live.agents.map(\.name) == ["stays"])

        // The server stops with "stays" connected: after the restart it is listed as cut off
        // by the stop, the others as before, and its counter is where it was.
        await drained.close()
        await h.stop()
        await stays.close()
        await ownClient.close()
        let again = try ServerHarness(restarting: h)
        let restarted = try await Self.agents(again)
        #expect(Set(restarted.keys) == ["lost", "drained", "revoked", "stays"])
        #expect(restarted["stays"]?.state == .disconnected && restarted["stays"]?.disconnectReason == .serverStopped, "\(String(describing: restarted["stays"]))")
        #expect(restarted["drained"]?.disconnectReason == .drained && restarted["lost"]?.disconnectReason == .lost)
        #expect(restarted["stays"]?.metrics.first { $0.name == "tether_agent_tasks_finished_total" }?.value == 7)
        // And it goes on counting from there when it comes back.
        let back = try await again.connectAgent("stays", entrypoints: ["work"])
        _ = try await back.welcome()
        try await back.heartbeat([Self.finishedTasks(2)], id: 1)
        _ = try await back.heartbeatAck()
        #expect(try await Self.agents(again)["stays"]?.metrics.first { $0.name == "tether_agent_tasks_finished_total" }?.value == 9)
        #expect(try await Self.agents(again)["stays"]?.state == .connected)
        await back.close()
        await again.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func forgettingRemovesADisconnectedAgentForGoodAndRefusesAConnectedOne() async throws {
        let h = try ServerHarness()
        let gone = try await h.connectAgent("gone", entrypoints: ["work"])
        _ = try await gone.welcome()
        let here = try await h.connectAgent("here", entrypoints: ["work"])
        _ = try await here.welcome()
        await gone.call.cancel()
        _ = try await Self.waitFor(h) { $0["gone"]?.state == .disconnected }

        func forget(_ name: String) async throws(GRPCStatus) -> ControlV1.ForgetAgentResponse {
            var request = ControlV1.ForgetAgentRequest()
            request.agent = name
            return try await h.control(ControlV1.ControlService.forgetAgent, request)
        }
        await #expect { _ = try await forget("here") } throws: { ($0 as? GRPCStatus)?.code == .failedPrecondition }
        await #expect { _ = try await forget("nobody") } throws: { ($0 as? GRPCStatus)?.code == .notFound }
        #expect(try await forget("gone").agent?.name == "gone")
        #expect(try await Self.agents(h)["gone"] == nil)
        await here.close()
        await h.stop()
        let again = try ServerHarness(restarting: h)
        #expect(try await Self.agents(again)["gone"] == nil, "forgotten for good")
        #expect(try await Self.agents(again)["here"] != nil)
        await again.stop()
    }
}
