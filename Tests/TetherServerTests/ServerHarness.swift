import Foundation
import GRPC
import Synchronization
import H2
import TetherServer
import TetherTestSupport
import TetherWire

/// A `TetherServer` in this process on 127.0.0.1 (h2c), with an admin token, and a
/// client for it. `stop()` shuts both down.
final class ServerHarness: Sendable {
    static let adminSecret = "test-admin-secret-0123456789"

    let scratch: ScratchDirectory
    let server: TetherServer
    let address: SocketAddress
    let client: GRPCClient

    /// - Parameters:
    ///   - dataDirectory: where state lives; by default a `data` directory in `scratch`.
    ///   - log: gets the server's log lines.
    ///   - metricsUnauthenticated: serve `/metrics` without a token.
    init(leaseTTLMilliseconds: Int64 = 30_000, agentOutboundLimit: Int = 16_384,
         shutdownGracePeriod: Duration = .seconds(3), dataDirectory: URL? = nil, metricsUnauthenticated: Bool = false,
         log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        scratch = try ScratchDirectory()
        let tokenFile = scratch.path("admin.token")
        try Self.adminSecret.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        var configuration = Self.configuration(dataDirectory: dataDirectory ?? scratch.url.appendingPathComponent("data"))
        configuration.bootstrapTokenFile = tokenFile
        configuration.leaseTTLMilliseconds = leaseTTLMilliseconds
        configuration.agentOutboundLimit = agentOutboundLimit
        configuration.shutdownGracePeriod = shutdownGracePeriod
        configuration.metricsUnauthenticated = metricsUnauthenticated
        server = try TetherServer(configuration: configuration, log: log)
        address = try server.start()
        client = try GRPCClient(configuration: .init(target: address, tls: nil))
    }

    /// A new server with `previous`'s configuration and data directory, once `previous`
    /// has stopped.
    init(restarting previous: ServerHarness) throws {
        scratch = previous.scratch
        server = try TetherServer(configuration: previous.server.configuration)
        address = try server.start()
        client = try GRPCClient(configuration: .init(target: address, tls: nil))
    }

    /// h2c on 127.0.0.1 (any port), `synchronous=normal`, state in `dataDirectory`.
    static func configuration(dataDirectory: URL) -> TetherServer.Configuration {
        var configuration = TetherServer.Configuration(listen: try! SocketAddress(parsing: "127.0.0.1:0"), dataDirectory: dataDirectory)
        configuration.insecurePlaintext = true
        configuration.synchronous = .normal
        return configuration
    }

    /// The server's data directory.
    var dataDirectory: String { server.configuration.dataDirectory.path }

    func stop() async {
        await client.close()
        await server.shutdown()
    }

    static func bearer(_ secret: String) -> GRPCMetadata {
        var metadata = GRPCMetadata()
        try! metadata.addString("Bearer \(secret)", forKey: "authorization")
        return metadata
    }

    /// A ControlService call with the admin token (or `secret`).
    func control<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.Unary>, _ request: Request, secret: String? = adminSecret
    ) async throws(GRPCStatus) -> Response {
        try await client.unary(method, request,
                               metadata: secret.map(Self.bearer) ?? GRPCMetadata(), timeout: .seconds(30))
    }

    func apply(_ yaml: String, source: String = "test.yaml") async throws(GRPCStatus) -> ControlV1.ApplyDagResponse {
        var request = ControlV1.ApplyDagRequest()
        request.specYaml = yaml
        request.sourceName = source
        return try await control(ControlV1.ControlService.applyDag, request)
    }

    func trigger(_ dagID: String, params: [String: String] = [:]) async throws(GRPCStatus) -> ControlV1.Run {
        var request = ControlV1.TriggerRunRequest()
        request.dagID = dagID
        request.params = params
        let response: ControlV1.TriggerRunResponse = try await control(ControlV1.ControlService.triggerRun, request)
        return response.run!
    }

    func run(_ runID: String) async throws(GRPCStatus) -> ControlV1.GetRunResponse {
        var request = ControlV1.GetRunRequest()
        request.runID = runID
        return try await control(ControlV1.ControlService.getRun, request)
    }

    /// `grpc.health.v1.Health/Check` of `service` ("" is the server as a whole).
    func health(_ service: String = "") async throws(GRPCStatus) -> HealthV1.HealthCheckResponse.ServingStatus {
        var request = HealthV1.HealthCheckRequest()
        request.service = service
        let response: HealthV1.HealthCheckResponse = try await client.unary(HealthV1.Health.check, request, timeout: .seconds(10))
        return response.status
    }

    func createToken(_ role: ControlV1.TokenRole, agentName: String = "") async throws(GRPCStatus) -> String {
        var request = ControlV1.CreateTokenRequest()
        request.role = role
        request.agentName = agentName
        request.description = "test"
        let response: ControlV1.CreateTokenResponse = try await control(ControlV1.ControlService.createToken, request)
        return response.secret
    }

    /// Opens an agent stream and sends its Hello.
    func connectAgent(_ name: String, entrypoints: [String], queues: [String] = ["default"], slots: UInt32 = 4,
                      secret: String = adminSecret, resumed: [AgentV1.ResumedLease] = [], instanceID: String = "",
                      labels: [String: String] = [:], over other: GRPCClient? = nil) async throws -> FakeAgent {
        let call: GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage> =
            try await (other ?? client).makeCall(AgentV1.AgentService.connect, metadata: Self.bearer(secret))
        var hello = AgentV1.Hello()
        hello.name = name
        hello.queues = queues
        hello.slots = slots
        hello.entrypoints = entrypoints
        hello.resumedLeases = resumed
        hello.instanceID = instanceID
        hello.labels = labels
        try await call.send(AgentV1.AgentMessage(.hello(hello)))
        return FakeAgent(call: call)
    }
}

/// The agent end of a Connect stream, driven by hand. Messages a wait skips over are
/// kept for later waits (a grant may arrive before the Ack of the report that caused it).
final class FakeAgent: Sendable {
    let call: GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage>
    private let skipped = Mutex<[AgentV1.ServerMessage.Kind]>([])

    init(call: GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage>) { self.call = call }

    /// The first message (kept or new) that `pick` accepts; throws the stream's status if it ends.
    private func first<T>(_ pick: (AgentV1.ServerMessage.Kind) -> T?) async throws -> T {
        let kept = skipped.withLock { kept -> T? in
            guard let index = kept.firstIndex(where: { pick($0) != nil }) else { return nil }
            return pick(kept.remove(at: index))
        }
        if let kept { return kept }
        while true {
            guard let message = try await call.next(), let kind = message.kind else {
                throw await call.status() ?? GRPCStatus(code: .unknown, message: "stream ended")
            }
            if let value = pick(kind) { return value }
            skipped.withLock { $0.append(kind) }
        }
    }

    func welcome() async throws -> AgentV1.Welcome {
        try await first { if case .welcome(let m) = $0 { m } else { nil } }
    }

    func grant() async throws -> AgentV1.LeaseGrant {
        try await first { if case .leaseGrant(let m) = $0 { m } else { nil } }
    }

    func ack() async throws -> AgentV1.Ack {
        try await first { if case .ack(let m) = $0 { m } else { nil } }
    }

    func revoke() async throws -> AgentV1.LeaseRevoke {
        try await first { if case .leaseRevoke(let m) = $0 { m } else { nil } }
    }

    /// Reads the stream to its end: the status it ended with, nil if it ended with OK.
    func endStatus() async -> GRPCStatus? {
        do {
            while try await call.next() != nil {}
            return nil
        } catch {
            return error
        }
    }

    func report(_ grant: AgentV1.LeaseGrant, _ kind: AgentV1.TaskEventKind, sequence: UInt64, epoch: UInt64? = nil,
                leaseID: String? = nil) async throws {
        var event = AgentV1.TaskEvent()
        event.sequence = sequence
        event.leaseID = leaseID ?? grant.leaseID
        event.epoch = epoch ?? grant.epoch
        event.kind = kind
        var exit = AgentV1.ExitStatus()
        exit.status = .exitCode(kind == .succeeded ? 0 : 1)
        event.exitStatus = exit
        try await call.send(AgentV1.AgentMessage(.taskEvent(event)))
    }

    func heartbeat(_ deltas: [AgentV1.MetricDelta] = [], id: UInt64 = 0, leases: [String]? = nil) async throws {
        var heartbeat = AgentV1.Heartbeat()
        heartbeat.metricDeltas = deltas
        heartbeat.heartbeatID = id
        heartbeat.activeLeaseIds = leases ?? []
        try await call.send(AgentV1.AgentMessage(.heartbeat(heartbeat)))
    }

    func heartbeatAck() async throws -> AgentV1.HeartbeatAck {
        try await first { if case .heartbeatAck(let m) = $0 { m } else { nil } }
    }

    func close() async {
        await call.finishSending()
        await call.cancel()
    }
}
