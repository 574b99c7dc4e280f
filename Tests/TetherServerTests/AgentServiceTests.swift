import GRPC
import Testing
import TetherWire

@Suite struct AgentServiceTests {
    static let chain = """
        dag_id: chain
        tasks:
          - id: first
            entrypoint: work
          - id: second
            entrypoint: work
            depends_on: [first]
        """

    @Test func agentGetsGrantsOverItsStreamAndItsReportsFinishTheRun() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.chain)
        let agentToken = try await h.createToken(.agent, agentName: "eu-1")
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], secret: agentToken)
        let welcome = try await agent.welcome()
        #expect(welcome.agentID == "eu-1" && welcome.ackedSequence == 0 && welcome.leaseTtlMs == 30_000 && welcome.acknowledgesHeartbeats)
        let run = try await h.trigger("chain", params: [:])
        let first = try await agent.grant()
        #expect(first.task?.taskID == "first" && first.task?.runID == run.runID && first.entrypoint == "work" && first.epoch == 1)
        try await agent.report(first, .succeeded, sequence: 1)
        #expect(try await agent.ack().sequence == 1)
        let second = try await agent.grant()
        #expect(second.task?.taskID == "second")
        try await agent.report(second, .succeeded, sequence: 2)
        #expect(try await agent.ack().sequence == 2)
        let finished = try await h.run(run.runID)
        #expect(finished.run?.state == .success)
        #expect(finished.taskInstances.map(\.state) == [.success, .success])
        #expect(finished.taskInstances.first?.attempts.first?.agentID == "eu-1")
        await agent.close()
        await h.stop()
    }

    @Test func firstMessageMustBeHello() async throws {
        let h = try ServerHarness()
        let call: GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage> =
            try await h.client.makeCall(AgentV1.AgentService.connect, metadata: ServerHarness.bearer(ServerHarness.adminSecret))
        try await call.send(AgentV1.AgentMessage(.heartbeat(AgentV1.Heartbeat())))
        await call.finishSending()
        do {
            while try await call.next() != nil {}
            Issue.record("the stream ended without an error")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("Hello"))
        }
        await h.stop()
    }

    @Test func invalidHelloIsRefusedAndASecondSessionOfANameReplacesTheFirst() async throws {
        let h = try ServerHarness()
        let bad = try await h.connectAgent("bad name!", entrypoints: ["work"])
        await #expect(throws: GRPCStatus.self) { _ = try await bad.welcome() }
        let first = try await h.connectAgent("eu-1", entrypoints: ["work"])
        _ = try await first.welcome()
        // The agent redialled after its old connection was lost without a close.
        let second = try await h.connectAgent("eu-1", entrypoints: ["work"])
        _ = try await second.welcome()
        // The old session is ended at once, without waiting for a message from it.
        #expect(await first.endStatus()?.code == .aborted, "the replaced session went on")
        // The new session is the live one: it gets grants.
        _ = try await h.apply(Self.chain)
        _ = try await h.trigger("chain")
        #expect(try await second.grant().task?.taskID == "first")
        await second.close()
        await h.stop()
    }

    @Test func staleEpochAndAnotherAgentsLeaseAreRejectedAndChangeNothing() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.chain)
        let a = try await h.connectAgent("a", entrypoints: ["work"])
        _ = try await a.welcome()
        let b = try await h.connectAgent("b", entrypoints: ["other"])
        _ = try await b.welcome()
        let run = try await h.trigger("chain")
        let grant = try await a.grant()
        try await a.report(grant, .succeeded, sequence: 1, epoch: grant.epoch + 5)
        let stale = try await a.ack()
        #expect(stale.rejections.first?.reason.contains("stale epoch") == true)
        try await b.report(grant, .succeeded, sequence: 1)
        let foreign = try await b.ack()
        #expect(foreign.rejections.first?.reason.contains("not held by agent 'b'") == true)
        let state = try await h.run(run.runID)
        #expect(state.taskInstances.first?.state == .running)
        #expect(state.taskInstances.first?.attempts.count == 1)
        await a.close()
        await b.close()
        await h.stop()
    }

    @Test func taskWhoseEntrypointNoAgentOffersWaitsVisibly() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.chain)
        let agent = try await h.connectAgent("a", entrypoints: ["something_else"])
        _ = try await agent.welcome()
        let run = try await h.trigger("chain")
        let state = try await h.run(run.runID)
        #expect(state.taskInstances.first?.state == .queued)
        #expect(state.taskInstances.first?.waitingReason == "no connected agent on queue 'default' offers entrypoint 'work'")
        await agent.close()
        await h.stop()
    }

    @Test func agentTokenCannotUseTheControlServiceButCanConnect() async throws {
        let h = try ServerHarness()
        let token = try await h.createToken(.agent, agentName: "a")
        do {
            let _: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest(), secret: token)
            Issue.record("agent token was allowed on ControlService")
        } catch {
            #expect(error.code == .permissionDenied)
        }
        let agent = try await h.connectAgent("a", entrypoints: ["work"], secret: token)
        _ = try await agent.welcome()
        let agents: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest())
        #expect(agents.agents.map(\.name) == ["a"])
        await agent.close()
        await h.stop()
    }

    @Test func anAgentThatSendsButNeverReadsHasItsCallEndedOnceItsQueueIsFull() async throws {
        // Not much lower: on a loaded machine the scheduler can queue a few dozen Acks
        // before the connection's thread gets to write them, reader or not.
        let h = try ServerHarness(agentOutboundLimit: 256)
        let stalled = try await h.connectAgent("stalled", entrypoints: ["work"])
        let reader = try await h.connectAgent("reader", entrypoints: ["work"])
        _ = try await reader.welcome()
        // `stalled` never reads, so its client withholds the stream window and the Acks
        // pile up on the server. Each event names a long unknown lease, so each rejection
        // Ack carries ~8 KiB, and the stream window and the 1 MiB send buffer fill after
        // some 140; then 256 more end the call.
        let leaseID = String(repeating: "x", count: 4_000)
        func connected() async throws -> [String] {
            let agents: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest())
            return agents.agents.map(\.name)
        }
        // How many Acks a number of events makes depends on how the server batches them
        // (one Ack per batch read together), so send until the call ends, within a deadline;
        // the reader heartbeats meanwhile so that its own lease TTL does not end it.
        var sequence: UInt64 = 0
        var gone = false
        let deadline = ContinuousClock.now + .seconds(60)
        var beat: UInt64 = 0
        var lastBeat = ContinuousClock.now
        while !gone && ContinuousClock.now < deadline {
            for _ in 0..<50 {
                sequence += 1
                do {
                    try await stalled.report(AgentV1.LeaseGrant(), .succeeded, sequence: sequence, epoch: 1, leaseID: leaseID)
                } catch {
                    break  // the stream is gone
                }
            }
            if ContinuousClock.now - lastBeat > .seconds(5) {
                beat += 1
                try await reader.heartbeat(id: beat)
                #expect(try await reader.heartbeatAck().heartbeatID == beat)
                lastBeat = ContinuousClock.now
            }
            gone = try await !connected().contains("stalled")
        }
        #expect(gone, "still connected after \(sequence) events")
        #expect(sequence >= 256, "ended after only \(sequence) events: before the queue could have filled")
        // The server goes on serving: the other agent still gets its Acks.
        try await reader.report(AgentV1.LeaseGrant(), .succeeded, sequence: 1, epoch: 1, leaseID: "nope")
        #expect(try await reader.ack().rejections.first?.leaseID == "nope")
        #expect(try await connected() == ["reader"])
        await reader.close()
        await stalled.close()
        await h.stop()
    }

    @Test(.timeLimit(.minutes(1)))  // a stream that went on would wait here forever
    func revokingAnAgentsTokenEndsItsLiveStream() async throws {
        let h = try ServerHarness()
        var create = ControlV1.CreateTokenRequest()
        create.role = .agent
        create.agentName = "eu-1"
        let created: ControlV1.CreateTokenResponse = try await h.control(ControlV1.ControlService.createToken, create)
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], secret: created.secret)
        _ = try await agent.welcome()
        var request = ControlV1.RevokeTokenRequest()
        request.tokenID = try #require(created.token?.tokenID)
        let _: ControlV1.RevokeTokenResponse = try await h.control(ControlV1.ControlService.revokeToken, request)
        // Without a message from the agent: the revocation itself ends the stream.
        let ended = await agent.endStatus()
        #expect(ended?.code == .unauthenticated, "the stream went on after its token was revoked")
        #expect(ended?.message.contains("revoked") == true)
        let agents: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest())
        #expect(agents.agents.isEmpty)
        await h.stop()
    }

    @Test func aStreamWhoseTokenExpiredEndsAtItsNextHeartbeat() async throws {
        let h = try ServerHarness()
        var create = ControlV1.CreateTokenRequest()
        create.role = .agent
        create.agentName = "eu-1"
        create.ttlMs = 5_000  // long enough to connect on a loaded machine (2 s was not, beside a soak)
        let created: ControlV1.CreateTokenResponse = try await h.control(ControlV1.ControlService.createToken, create)
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], secret: created.secret)
        _ = try await agent.welcome()
        // Heartbeats until the token's five seconds are over; the one after that ends the stream.
        let deadline = ContinuousClock.now + .seconds(30)
        var ended: GRPCStatus?
        while ended == nil && ContinuousClock.now < deadline {
            do {
                try await agent.heartbeat([])
                try await Task.sleep(for: .milliseconds(100))
            } catch let status as GRPCStatus {
                ended = status
            }
            if ended == nil, let status = await agent.call.status() { ended = status }
        }
        #expect(ended?.code == .unauthenticated, "\(String(describing: ended))")
        await h.stop()
    }

    @Test func heartbeatMetricsAreSummedOrReplacedAndMalformedOnesDropped() async throws {
        let h = try ServerHarness()
        let agent = try await h.connectAgent("m", entrypoints: ["work"])
        _ = try await agent.welcome()
        func delta(_ name: String, _ kind: AgentV1.MetricKind, _ value: Double, _ labels: [String: String] = [:]) -> AgentV1.MetricDelta {
            var delta = AgentV1.MetricDelta()
            delta.name = name
            delta.kind = kind
            delta.value = value
            delta.labels = labels
            return delta
        }
        try await agent.heartbeat([delta("tasks_total", .counter, 2, ["outcome": "ok"]), delta("running", .gauge, 3)])
        try await agent.heartbeat([delta("tasks_total", .counter, 5, ["outcome": "ok"]), delta("running", .gauge, 1),
                                   delta("bad name!", .counter, 1), delta("nan", .gauge, .nan), delta("unset", .unspecified, 1)])
        var metrics: [String: Double] = [:]
        for _ in 0..<200 {  // heartbeats are fire-and-forget: wait until the second one is applied
            let agents: ControlV1.ListAgentsResponse = try await h.control(ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest())
            metrics = Dictionary(uniqueKeysWithValues: (agents.agents.first?.metrics ?? []).map { ($0.name, $0.value) })
            if metrics["tasks_total"] == 7 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(metrics == ["tasks_total": 7, "running": 1])
        await agent.close()
        await h.stop()
    }

    /// Agent "a", connected, holding the lease of the first task of a triggered `chain` run.
    static func agentHoldingFirstTask(_ h: ServerHarness) async throws -> (FakeAgent, ControlV1.Run, AgentV1.LeaseGrant) {
        _ = try await h.apply(Self.chain)
        let agent = try await h.connectAgent("a", entrypoints: ["work"])
        _ = try await agent.welcome()
        let run = try await h.trigger("chain")
        return (agent, run, try await agent.grant())
    }

    /// Runs `body` on the client's loop: the messages it sends leave in one write and reach
    /// the server together.
    static func inOneWrite(_ h: ServerHarness, _ body: @escaping @Sendable () async throws -> Void) async throws {
        try await Task(executorPreference: h.client.eventLoop, operation: body).value
    }

    @Test func eventsThatArriveTogetherAreAppliedInOrderUnderOneAck() async throws {
        let h = try ServerHarness()
        let (agent, run, grant) = try await Self.agentHoldingFirstTask(h)
        try await Self.inOneWrite(h) {
            try await agent.report(grant, .started, sequence: 1)
            try await agent.report(grant, .succeeded, sequence: 2, epoch: grant.epoch + 5)
            try await agent.report(grant, .succeeded, sequence: 3)
        }
        let ack = try await agent.ack()
        #expect(ack.sequence == 3)
        #expect(ack.rejections.map(\.sequence) == [2])
        #expect(ack.rejections.first?.reason.contains("stale epoch") == true)
        let state = try await h.run(run.runID)
        #expect(state.taskInstances.first?.state == .success)
        #expect(try await agent.grant().task?.taskID == "second")
        await agent.close()
        await h.stop()
    }

    @Test func eventsBeforeARefusedOneInTheSameBatchAreStillApplied() async throws {
        let h = try ServerHarness()
        let (agent, run, grant) = try await Self.agentHoldingFirstTask(h)
        // A good event, then one whose sequence jumps too far, which ends the call.
        try await Self.inOneWrite(h) {
            try await agent.report(grant, .succeeded, sequence: 1)
            try await agent.report(grant, .succeeded, sequence: 5_000_000)
        }
        #expect(await agent.endStatus()?.code == .invalidArgument, "the far jump was accepted")
        var first: ControlV1.TaskInstance?
        for _ in 0..<200 {
            first = try await h.run(run.runID).taskInstances.first
            if first?.state == .success { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(first?.state == .success)
        await h.stop()
    }

    @Test func eventSequencesMayNotJumpFarAheadButResumeFromWhatWasApplied() async throws {
        let h = try ServerHarness()
        let (agent, _, grant) = try await Self.agentHoldingFirstTask(h)
        try await agent.report(grant, .started, sequence: 900_000)
        #expect(try await agent.ack().sequence == 900_000)
        await agent.close()
        // A reconnect continues from the applied sequence, so 1,800,000 is not a jump...
        let again = try await h.connectAgent("a", entrypoints: ["work"], resumed: [AgentV1.ResumedLease(leaseID: grant.leaseID, epoch: grant.epoch)])
        #expect(try await again.welcome().ackedSequence == 900_000)
        try await again.report(grant, .succeeded, sequence: 1_800_000)
        #expect(try await again.ack().sequence == 1_800_000)
        // ...but 3,000,000 is.
        try await again.report(grant, .succeeded, sequence: 3_000_000)
        #expect(await again.endStatus()?.code == .invalidArgument, "a far jump was accepted")
        await h.stop()
    }

    @Test func anAgentTokenBoundToANameConnectsOnlyAsThatAgent() async throws {
        let h = try ServerHarness()
        let token = try await h.createToken(.agent, agentName: "eu-1")
        let impostor = try await h.connectAgent("us-1", entrypoints: ["work"], secret: token)
        do {
            _ = try await impostor.welcome()
            Issue.record("a bound token connected as another agent")
        } catch let error as GRPCStatus {
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("'eu-1'"))
        }
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], secret: token)
        #expect(try await agent.welcome().agentID == "eu-1")
        await agent.close()
        await h.stop()
    }
}
