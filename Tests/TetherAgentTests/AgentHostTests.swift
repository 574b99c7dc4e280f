import Foundation
import GRPC
import H2
import Testing
import TetherServer
import TetherTestSupport
import TetherWire
@testable import TetherAgent

/// Several real agents in one process, sharing one `AgentHost` and one event loop, against
/// a real `TetherServer` in this process (h2c on 127.0.0.1), as `tether-torture swarm` runs them.
@Suite(.timeLimit(.minutes(2))) struct AgentHostTests {
    static let adminSecret = "host-test-admin-secret-0123456789"

    @Test func agentsSharingAHostEachConnectUnderTheirOwnNameAndOneStoppingLeavesTheOthersTasksRunning() async throws {
        let scratch = try ScratchDirectory()
        try Self.adminSecret.write(toFile: scratch.path("admin.token"), atomically: true, encoding: .utf8)
        var serverConfiguration = TetherServer.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"),
                                                             dataDirectory: scratch.url.appendingPathComponent("server"))
        serverConfiguration.insecurePlaintext = true
        serverConfiguration.synchronous = .normal
        serverConfiguration.bootstrapTokenFile = scratch.path("admin.token")
        let server = try TetherServer(configuration: serverConfiguration)
        let address = try server.start()
        let admin = try GRPCClient(configuration: .init(target: address, tls: nil))

        // Each task writes its pid to OUT/AGENT.TASK.pid, then waits for OUT/go. With two
        // slots, an agent starts its first task on the shared loop and its second on one of
        // the host's spawner threads: both must outlive any one agent.
        let block = AgentConfiguration.Entrypoint(
            argv: ["/bin/sh", "-c", "echo $$ > \"$OUT/$AGENT.$TETHER_TASK_ID.pid\"; while [ ! -e \"$OUT/go\" ]; do sleep 0.01; done"],
            environment: ["OUT": scratch.url.path])
        let host = try AgentHost()
        let loop = try EventLoop.start(name: "test-agents", busyPoll: .zero)  // outlives every agent on it
        let names = ["a0", "a1", "a2"]
        var daemons: [String: AgentDaemon] = [:]
        for name in names {
            let secret = try await createAgentToken(admin, name: name)
            try secret.write(toFile: scratch.path("\(name).token"), atomically: true, encoding: .utf8)
            var entrypoint = block
            entrypoint.environment["AGENT"] = name
            let configuration = AgentConfiguration(
                server: .init(usesTLS: false, host: "127.0.0.1", port: UInt16(address.port)), tokenFile: scratch.path("\(name).token"),
                name: name, slots: 2, logDirectory: scratch.path("\(name)/logs"), stateDirectory: scratch.path("\(name)/state"),
                killGraceMilliseconds: 1_000, insecurePlaintext: true, entrypoints: ["block": entrypoint])
            daemons[name] = try AgentDaemon(configuration: configuration, token: { secret },
                                            client: try configuration.makeClient(eventLoop: loop), host: host, log: { _ in })
        }
        let running = daemons.mapValues { daemon in Task { await daemon.run() } }

        // Each agent is connected under its own name, over its own stream.
        #expect(await eventually { (try? await connectedAgents(admin)) == Set(names) })

        var apply = ControlV1.ApplyDagRequest()
        apply.specYaml = "dag_id: wide\ntasks:\n" + (0..<6).map { "  - {id: t\($0), entrypoint: block}\n" }.joined()
        apply.sourceName = "wide.yaml"
        let _: ControlV1.ApplyDagResponse = try await control(admin, ControlV1.ControlService.applyDag, apply)
        var trigger = ControlV1.TriggerRunRequest()
        trigger.dagID = "wide"
        let triggered: ControlV1.TriggerRunResponse = try await control(admin, ControlV1.ControlService.triggerRun, trigger)
        let runID = try #require(triggered.run?.runID)

        // The server gives each task to the agent with the most free slots: two each.
        func taskPIDs() -> [String: [Int32]] {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: scratch.url.path)) ?? []
            var pids: [String: [Int32]] = [:]
            for file in files where file.hasSuffix(".pid") {
                let text = (try? String(contentsOfFile: scratch.path(file), encoding: .utf8)) ?? ""
                if let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    pids[String(file.prefix { $0 != "." }), default: []].append(pid)
                }
            }
            return pids
        }
        #expect(await waitUntil { taskPIDs().mapValues(\.count) == ["a0": 2, "a1": 2, "a2": 2] }, "\(taskPIDs())")
        let pids = taskPIDs()

        // a0 stops: its task is stopped with it; the others' tasks and connections are untouched.
        daemons["a0"]!.stop()
        await running["a0"]!.value
        #expect(await waitUntil { pids["a0"]!.allSatisfy(processHasEnded) })
        #expect(!(pids["a1"]! + pids["a2"]!).contains(where: processHasEnded))
        #expect(try await connectedAgents(admin) == ["a1", "a2"])

        _ = FileManager.default.createFile(atPath: scratch.path("go"), contents: nil)
        var finished: [String: [ControlV1.AttemptOutcome]] = [:]  // agent -> outcomes of the first attempts it ran
        #expect(await eventually {
            guard let run = try? await getRun(admin, runID) else { return false }
            finished = [:]
            for task in run.taskInstances {
                if let first = task.attempts.first, first.agentName != "a0" { finished[first.agentName, default: []].append(first.outcome) }
            }
            return finished == ["a1": [.succeeded, .succeeded], "a2": [.succeeded, .succeeded]]
        }, "\(finished)")

        for name in ["a1", "a2"] { daemons[name]!.drain(reason: "test over") }
        for task in running.values { await task.value }
        host.stop()
        loop.stop()
        await admin.close()
        await server.shutdown()
    }

    private func control<Request: WireMessage, Response: WireMessage>(
        _ client: GRPCClient, _ method: RPCMethod<Request, Response, RPCShape.Unary>, _ request: Request
    ) async throws -> Response {
        var metadata = GRPCMetadata()
        try metadata.addString("Bearer \(Self.adminSecret)", forKey: "authorization")
        return try await client.unary(method, request, metadata: metadata, timeout: .seconds(30))
    }

    private func createAgentToken(_ client: GRPCClient, name: String) async throws -> String {
        var request = ControlV1.CreateTokenRequest()
        request.role = .agent
        request.agentName = name
        let response: ControlV1.CreateTokenResponse = try await control(client, ControlV1.ControlService.createToken, request)
        return response.secret
    }

    private func connectedAgents(_ client: GRPCClient) async throws -> Set<String> {
        let response: ControlV1.ListAgentsResponse = try await control(client, ControlV1.ControlService.listAgents, ControlV1.ListAgentsRequest())
        return Set(response.agents.filter { $0.state == .connected }.map(\.name))
    }

    private func getRun(_ client: GRPCClient, _ runID: String) async throws -> ControlV1.GetRunResponse {
        var request = ControlV1.GetRunRequest()
        request.runID = runID
        return try await control(client, ControlV1.ControlService.getRun, request)
    }
}

/// `waitUntil` for conditions that ask the server.
private func eventually(seconds: Double = 30, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return await condition()
}
