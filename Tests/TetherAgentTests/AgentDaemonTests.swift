import Foundation
import GRPC
import H2
import Synchronization
import Testing
import TetherStore
import TetherTestSupport
import TetherWire
@testable import TetherAgent

/// The server end of one agent's Connect stream: welcomes it (heartbeats every 100 ms),
/// sends the grants a test hands it, records what the agent sends, in order, and
/// acknowledges each event at once, and each heartbeat unless told not to.
final class FakeConnectServer: Sendable {
    private let server: GRPCServer
    let address: SocketAddress
    /// What goes to the agent after the Welcome.
    private let outbound = AsyncStream.makeStream(of: AgentV1.ServerMessage.self)
    private let received = Received()

    private final class Received: Sendable {
        let messages = Mutex<[AgentV1.AgentMessage]>([])
    }

    init(leaseTTLMilliseconds: UInt64 = 60_000, acknowledgesHeartbeats: Bool = true, announcesAcks: Bool = true) throws {
        var router = GRPCRouter()
        router.bidirectionalStreaming(AgentV1.AgentService.connect) { [outbound, received] (
            requests: GRPCRequestStream<AgentV1.AgentMessage>, writer: GRPCResponseWriter<AgentV1.ServerMessage>, _
        ) in
            var incoming = requests.makeAsyncIterator()
            guard let hello = try await incoming.next(), case .hello? = hello.kind else { return }
            received.messages.withLock { $0.append(hello) }
            var welcome = AgentV1.Welcome()
            welcome.agentID = "test-agent"
            welcome.heartbeatIntervalMs = 100
            welcome.leaseTtlMs = leaseTTLMilliseconds
            welcome.acknowledgesHeartbeats = announcesAcks
            try await writer.write(AgentV1.ServerMessage(.welcome(welcome)))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await message in outbound.stream { try await writer.write(message) }
                }
                while let message = try await incoming.next() {
                    received.messages.withLock { $0.append(message) }
                    if case .taskEvent(let event)? = message.kind {
                        var ack = AgentV1.Ack()
                        ack.sequence = event.sequence
                        outbound.continuation.yield(AgentV1.ServerMessage(.ack(ack)))
                    }
                    if case .heartbeat(let heartbeat)? = message.kind, acknowledgesHeartbeats {
                        outbound.continuation.yield(AgentV1.ServerMessage(.heartbeatAck(.init(heartbeatID: heartbeat.heartbeatID))))
                    }
                }
                group.cancelAll()
            }
        }
        server = try GRPCServer(configuration: .init(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil), router: router)
        address = try server.start()
    }

    func grant(_ leaseID: String, entrypoint: String, namesTask: Bool = true) {
        var task = AgentV1.TaskRef()
        task.dagID = "etl"
        task.runID = "r1"
        task.taskID = leaseID
        var grant = AgentV1.LeaseGrant()
        grant.leaseID = leaseID
        grant.epoch = 1
        grant.task = namesTask ? task : nil
        grant.entrypoint = entrypoint
        grant.attempt = 1
        outbound.continuation.yield(AgentV1.ServerMessage(.leaseGrant(grant)))
    }

    /// The task events received so far, as "lease kind".
    var events: [String] {
        received.messages.withLock { messages in
            messages.compactMap { message in
                guard case .taskEvent(let event)? = message.kind else { return nil }
                return "\(event.leaseID) \(event.kind)"
            }
        }
    }

    /// The agent's Hello, once it came.
    var hello: AgentV1.Hello? {
        received.messages.withLock { messages in
            messages.lazy.compactMap { if case .hello(let hello)? = $0.kind { hello } else { nil } }.first
        }
    }

    /// The task events' messages so far.
    var eventMessages: [String] {
        received.messages.withLock { messages in
            messages.compactMap { if case .taskEvent(let event)? = $0.kind { event.message } else { nil } }
        }
    }

    var heartbeats: Int { received.messages.withLock { $0.filter { if case .heartbeat? = $0.kind { true } else { false } }.count } }

    func stop() async {
        outbound.continuation.finish()
        await server.shutdown(graceful: false)
    }
}

@Suite struct AgentDaemonTests {
    /// An agent with a `block` entrypoint (runs until the scratch file `go` exists) and a
    /// `quick` one, against `server`.
    private func agent(_ scratch: ScratchDirectory, _ server: FakeConnectServer, startedEventDelay: Duration,
                       log: @escaping @Sendable (String) -> Void = { _ in }) throws -> AgentDaemon {
        let block = AgentConfiguration.Entrypoint(argv: ["/bin/sh", "-c", "while [ ! -e \"$OUT/go\" ]; do sleep 0.01; done"],
                                                  environment: ["OUT": scratch.url.path])
        let configuration = AgentConfiguration(
            server: .init(usesTLS: false, host: "127.0.0.1", port: UInt16(server.address.port)), tokenFile: "unused", name: "test-agent",
            logDirectory: scratch.path("logs"), insecurePlaintext: true,
            entrypoints: ["block": block, "quick": AgentConfiguration.Entrypoint(argv: ["/bin/true"]),
                          "gone": AgentConfiguration.Entrypoint(argv: ["tether-no-such-program"])])
        let client = try GRPCClient(configuration: .init(target: server.address, tls: nil))
        let daemon = try AgentDaemon(configuration: configuration, token: { "unused" }, client: client,
                                     startedEventDelay: startedEventDelay, log: log)
        return daemon
    }

    /// Runs `body` while such an agent runs against a fresh fake server; then drains it.
    private func withRunningAgent(startedEventDelay: Duration, server: FakeConnectServer? = nil,
                                  _ body: (ScratchDirectory, FakeConnectServer, AgentDaemon) async throws -> Void) async throws {
        let scratch = try ScratchDirectory()
        let server = try server ?? FakeConnectServer()
        let daemon = try agent(scratch, server, startedEventDelay: startedEventDelay)
        let running = Task { await daemon.run() }
        var failure: (any Error)?
        do { try await body(scratch, server, daemon) } catch { failure = error }
        _ = FileManager.default.createFile(atPath: scratch.path("go"), contents: nil)  // no task left blocking
        daemon.drain(reason: "test over")
        await running.value  // closes the client
        await server.stop()
        if let failure { throw failure }
    }

    @Test func aStartedEventWaitsToTravelWithTheNextEvent() async throws {
        try await withRunningAgent(startedEventDelay: .seconds(3600)) { scratch, server, daemon in
            server.grant("a", entrypoint: "block")
            // Once a's start is in the outbox, an agent sending it at once would have put it on
            // the stream before the next two heartbeats.
            let outbox = try SQLiteDatabase(.init(path: daemon.configuration.stateDirectory + "/" + EventOutbox.fileName,
                                                  access: .readOnly))
            #expect(await waitUntil { (try? outbox.scalar("SELECT group_concat(lease_id) FROM leases").text) == "a" })
            let heartbeats = server.heartbeats
            #expect(await waitUntil { server.heartbeats >= heartbeats + 2 })
            #expect(server.events.isEmpty)

            // b's end carries both starts along.
            server.grant("b", entrypoint: "quick")
            #expect(await waitUntil { server.events.count == 3 })
            #expect(server.events == ["a started", "b started", "b succeeded"])

            _ = FileManager.default.createFile(atPath: scratch.path("go"), contents: nil)
            #expect(await waitUntil { server.events.count == 4 })
            #expect(server.events.last == "a succeeded")
        }
    }

    @Test func whileItHoldsWorkTheAgentRedialsWithinAQuarterOfTheTTL() {
        #expect(AgentDaemon.reconnectDelay(.seconds(7), leaseTTL: .seconds(3), holdsWork: true) == .milliseconds(750))
        #expect(AgentDaemon.reconnectDelay(.seconds(7), leaseTTL: .seconds(3), holdsWork: false) == .seconds(7))
        #expect(AgentDaemon.reconnectDelay(.milliseconds(500), leaseTTL: .seconds(3), holdsWork: true) == .milliseconds(500))
        #expect(AgentDaemon.reconnectDelay(.seconds(7), leaseTTL: nil, holdsWork: true) == .seconds(7))
    }

    @Test(.timeLimit(.minutes(1)))  // waiting for Acks from a server that is gone would never end
    func stopEndsTheAgentWhileTheServerIsDownLeavingEventsInTheOutbox() async throws {
        let scratch = try ScratchDirectory()
        let server = try FakeConnectServer()
        let daemon = try agent(scratch, server, startedEventDelay: .zero)
        let running = Task { await daemon.run() }
        server.grant("a", entrypoint: "block")
        #expect(await waitUntil { server.events == ["a started"] })
        await server.stop()
        daemon.stop()
        await running.value
        // The cancelled task's final event, never acknowledged, waits in the outbox.
        let outbox = try SQLiteDatabase(.init(path: daemon.configuration.stateDirectory + "/" + EventOutbox.fileName, access: .readOnly))
        #expect(try outbox.scalar("SELECT count(*) FROM events").int64 == 1)
    }

    /// Reported: a drained agent whose server was unreachable said "drained" and then slept
    /// out its reconnect backoff (seconds, up to minutes) before it exited.
    @Test(.timeLimit(.minutes(1)))
    func aDrainedAgentWhoseServerIsGoneExitsWithoutWaitingOutItsBackoff() async throws {
        let scratch = try ScratchDirectory()
        let server = try FakeConnectServer()
        await server.stop()  // nothing answers: every session fails and the backoff grows
        let failures = Mutex(0)
        let daemon = try agent(scratch, server, startedEventDelay: .zero) { line in
            if line.hasPrefix("session ended") { failures.withLock { $0 += 1 } }
        }
        let running = Task { await daemon.run() }
        // After four failures the next wait is 3.3-4.9 s (gRPC backoff: 1 s x 1.6^3, 20% jitter).
        #expect(await waitUntil { failures.withLock { $0 } >= 4 })
        let drained = ContinuousClock.now
        daemon.drain(reason: "test over")
        await running.value
        #expect(ContinuousClock.now - drained < .milliseconds(1_500), "run() returned \(ContinuousClock.now - drained) after drain()")
    }

    @Test func anEntrypointWhoseProgramIsMissingIsNotOffered() async throws {
        try await withRunningAgent(startedEventDelay: .zero) { _, server, _ in
            #expect(await waitUntil { server.hello != nil })
            #expect(server.hello?.entrypoints == ["block", "quick"])
        }
    }

    @Test func aGrantThatNamesNoTaskIsRefusedAtOnce() async throws {
        try await withRunningAgent(startedEventDelay: .zero) { _, server, _ in
            server.grant("a", entrypoint: "quick", namesTask: false)
            #expect(await waitUntil { server.events == ["a rejected"] }, "\(server.events)")
            #expect(server.eventMessages == ["lease grant names no task"])
        }
    }

    @Test func aTaskWhoseLeaseGoesUnconfirmedIsStoppedAndReportedLost() async throws {
        // A server that stops answering heartbeats (a partition, a hung server): with a 1 s
        // TTL the task must be dead well before a second has passed since the last
        // confirmation (the Welcome), since the server may then give it to another agent.
        let server = try FakeConnectServer(leaseTTLMilliseconds: 1_000, acknowledgesHeartbeats: false)
        try await withRunningAgent(startedEventDelay: .zero, server: server) { _, server, _ in
            server.grant("a", entrypoint: "block")
            #expect(await waitUntil { server.events == ["a started", "a lost"] }, "\(server.events) \(server.eventMessages)")
            #expect(server.eventMessages.last?.contains("lease not confirmed by the server for") == true)
        }
    }

    @Test func acknowledgedHeartbeatsKeepATaskRunningPastTheTTL() async throws {
        // A 3 s TTL leaves the agent ~1.9 s from a heartbeat's send to its ack: slack for a
        // loaded machine (with 1 s, 0.6 s, and a full parallel test run beside a soak lost it).
        let server = try FakeConnectServer(leaseTTLMilliseconds: 3_000)
        try await withRunningAgent(startedEventDelay: .zero, server: server) { scratch, server, _ in
            server.grant("a", entrypoint: "block")
            #expect(await waitUntil { server.events == ["a started"] })
            // 40 heartbeats 100 ms apart: more than a TTL, all of them acknowledged.
            let heartbeats = server.heartbeats
            #expect(await waitUntil { server.heartbeats >= heartbeats + 40 })
            #expect(server.events == ["a started"])
            _ = FileManager.default.createFile(atPath: scratch.path("go"), contents: nil)
            #expect(await waitUntil { server.events == ["a started", "a succeeded"] })
        }
    }

    @Test func againstAServerThatDoesNotAcknowledgeHeartbeatsTasksRunOn() async throws {
        // An older server: no HeartbeatAck ever comes, and the Welcome does not promise any.
        let server = try FakeConnectServer(leaseTTLMilliseconds: 1_000, acknowledgesHeartbeats: false, announcesAcks: false)
        try await withRunningAgent(startedEventDelay: .zero, server: server) { scratch, server, _ in
            server.grant("a", entrypoint: "block")
            #expect(await waitUntil { server.events == ["a started"] })
            let heartbeats = server.heartbeats
            #expect(await waitUntil { server.heartbeats >= heartbeats + 30 })  // three TTLs
            #expect(server.events == ["a started"])
            _ = FileManager.default.createFile(atPath: scratch.path("go"), contents: nil)
            #expect(await waitUntil { server.events == ["a started", "a succeeded"] })
        }
    }

    @Test func aGrantArrivingAfterItsLeaseCouldHaveExpiredIsNeverStarted() async throws {
        let server = try FakeConnectServer(leaseTTLMilliseconds: 1_000, acknowledgesHeartbeats: false)
        try await withRunningAgent(startedEventDelay: .zero, server: server) { scratch, server, _ in
            // Ten heartbeats 100 ms apart with no ack: the Welcome's confirmation is a second old.
            #expect(await waitUntil { server.heartbeats >= 10 })
            server.grant("late", entrypoint: "quick")
            #expect(await waitUntil { server.events == ["late rejected"] }, "\(server.events)")
            #expect(server.eventMessages.last?.contains("after the server last confirmed") == true)
            #expect(!FileManager.default.fileExists(atPath: scratch.path("logs/etl")))  // nothing was spawned
        }
    }

    @Test func aStartedEventWithNoCompanyIsSentAfterTheDelay() async throws {
        try await withRunningAgent(startedEventDelay: .milliseconds(50)) { scratch, server, _ in
            server.grant("a", entrypoint: "block")
            // The task still runs: only the delay can have sent its start.
            #expect(await waitUntil { server.events == ["a started"] })
            _ = FileManager.default.createFile(atPath: scratch.path("go"), contents: nil)
            #expect(await waitUntil { server.events == ["a started", "a succeeded"] })
        }
    }
}

@Suite struct AgentInstanceIDTests {
    @Test func theInstanceIDIsMadeOnceAndKeptOwnerOnlyInTheStateDirectory() throws {
        let scratch = try ScratchDirectory()
        let first = try AgentDaemon.instanceID(in: scratch.url.path)
        #expect(first.count == 32)
        #expect(try AgentDaemon.instanceID(in: scratch.url.path) == first)
        var info = stat()
        #expect(stat(scratch.path("instance-id"), &info) == 0 && info.st_mode & 0o777 == 0o600)
        let other = try ScratchDirectory()
        #expect(try AgentDaemon.instanceID(in: other.url.path) != first)
    }
}
