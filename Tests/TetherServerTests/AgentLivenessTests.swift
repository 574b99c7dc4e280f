import GRPC
import Testing
import TetherWire

/// Heartbeat acknowledgements and silent agents, over real Connect streams.
@Suite struct AgentLivenessTests {
    @Test func heartbeatIsAcknowledgedAfterItsRenewalAndAForeignLeaseIsRevokedFirst() async throws {
        let h = try ServerHarness()
        let (agent, _, grant) = try await AgentServiceTests.agentHoldingFirstTask(h)
        try await agent.heartbeat(id: 5, leases: [grant.leaseID])
        #expect(try await agent.heartbeatAck().heartbeatID == 5)
        // Naming a lease it does not hold: the revoke comes before the ack, in stream order.
        try await agent.heartbeat(id: 6, leases: [grant.leaseID, "chain-9/first/1-0123456789abcdef"])
        let next = try await agent.call.next()?.kind
        guard case .leaseRevoke(let revoke)? = next else {
            Issue.record("expected a revoke first, got \(String(describing: next))")
            return
        }
        #expect(revoke.leaseID == "chain-9/first/1-0123456789abcdef" && revoke.reason == .unknownLease)
        guard case .heartbeatAck(let ack)? = try await agent.call.next()?.kind else {
            Issue.record("expected the heartbeat's ack")
            return
        }
        #expect(ack.heartbeatID == 6)
        await agent.close()
        await h.stop()
    }

    @Test func heartbeatNamingTooManyLeasesEndsTheStream() async throws {
        let h = try ServerHarness()
        let agent = try await h.connectAgent("a", entrypoints: ["work"])
        _ = try await agent.welcome()
        try await agent.heartbeat(leases: (0...10_000).map { "r/t/\($0)" })
        let status = await agent.endStatus()
        #expect(status?.code == .invalidArgument && status?.message.contains("10001 leases") == true, "\(String(describing: status))")
        await h.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func silentAgentsStreamEndsAndItsTaskGoesToALiveAgent() async throws {
        let h = try ServerHarness(leaseTTLMilliseconds: 1_000)
        let (hung, run, first) = try await AgentServiceTests.agentHoldingFirstTask(h)
        let live = try await h.connectAgent("b", entrypoints: ["work"])
        _ = try await live.welcome()
        // b heartbeats; a (holding the task) says nothing, its connection open: a hung process.
        let beating = Task {
            while !Task.isCancelled {
                try await live.heartbeat()
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let status = await hung.endStatus()
        #expect(status?.code == .unavailable && status?.message.contains("no heartbeat from agent a") == true,
                "\(String(describing: status))")
        let second = try await live.grant()
        #expect(second.task?.runID == run.runID && second.task?.taskID == first.task?.taskID && second.epoch == first.epoch + 1)
        beating.cancel()
        await live.close()
        await h.stop()
    }
}

/// Who may connect under an agent's name.
@Suite struct AgentIdentityTests {
    @Test func anAgentTokenMustBeBoundToAName() async throws {
        let h = try ServerHarness()
        do {
            _ = try await h.createToken(.agent)
            Issue.record("an unbound agent token was created")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("agent_name"), "\(error)")
        }
        await h.stop()
    }

    @Test func aSecondInstanceUnderALiveAgentsNameIsRefusedAndTheSameInstanceReplacesIt() async throws {
        let h = try ServerHarness()
        let first = try await h.connectAgent("eu-1", entrypoints: ["work"], instanceID: "instance-a")
        _ = try await first.welcome()
        let impostor = try await h.connectAgent("eu-1", entrypoints: ["work"], instanceID: "instance-b")
        let refused = await impostor.endStatus()
        #expect(refused?.code == .alreadyExists && refused?.message.contains("already connected") == true, "\(String(describing: refused))")
        // The live agent is untouched: it still gets work.
        _ = try await h.apply(AgentServiceTests.chain)
        _ = try await h.trigger("chain")
        #expect(try await first.grant().task?.taskID == "first")
        // The same instance reconnecting (its old connection half-open) takes over.
        let again = try await h.connectAgent("eu-1", entrypoints: ["work"], instanceID: "instance-a")
        _ = try await again.welcome()
        #expect(await first.endStatus()?.code == .aborted)
        await again.close()
        await h.stop()
    }
}

/// Reported: Hello labels were unbounded (10 sessions with 3.8 MB of labels doubled the
/// server's RSS and broke `tether agents`).
@Suite struct HelloLimitTests {
    private func refusal(_ h: ServerHarness, labels: [String: String]) async throws -> GRPCStatus? {
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], labels: labels)
        return await agent.endStatus()
    }

    @Test func labelsAreBoundedInCountAndSize() async throws {
        let h = try ServerHarness()
        let many = Dictionary(uniqueKeysWithValues: (0...64).map { ("k\($0)", "v") })
        let tooMany = try await refusal(h, labels: many)
        #expect(tooMany?.code == .invalidArgument && tooMany?.message.contains("65 labels; at most 64") == true, "\(String(describing: tooMany))")
        let long = try await refusal(h, labels: ["region": String(repeating: "x", count: 1_025)])
        #expect(long?.code == .invalidArgument && long?.message.contains("label 'region'") == true, "\(String(describing: long))")
        let total = Dictionary(uniqueKeysWithValues: (0..<20).map { ("k\($0)", String(repeating: "x", count: 1_000)) })
        let big = try await refusal(h, labels: total)
        #expect(big?.code == .invalidArgument && big?.message.contains("at most 16384") == true, "\(String(describing: big))")
        let fine = try await h.connectAgent("eu-1", entrypoints: ["work"], labels: ["region": "eu-west", "zone": "a"])
        #expect(try await fine.welcome().agentID == "eu-1")
        await fine.close()
        await h.stop()
    }
}
