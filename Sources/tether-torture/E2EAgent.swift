import ArgumentParser
import Foundation
import GRPC
import H2
import Synchronization
import TetherWire

/// `tether-torture e2e-agent`: a fake agent for the end-to-end dispatch benchmark. It
/// speaks `tether.agent.v1.AgentService.Connect` to a real `tether server` with an agent
/// token, triggers runs itself through the ControlService with an admin token, reports
/// every lease succeeded the moment it arrives (nothing runs), and times, on its own
/// monotonic clock, what made each lease possible -> the LeaseGrant's arrival.
///
/// The whole exchange runs in one task that prefers the client's event loop, so every
/// await resumes on the thread that owns the socket: the fake agent adds no thread hop
/// of its own to a sample (the same arrangement as `tether-echo pingpong`).
struct E2EAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e-agent",
        abstract: "Fake agent timing lease dispatch through a real tether server.",
        discussion: """
            Shapes (the DAG must match; its tasks must be on --queue with entrypoint --entrypoint):
              chain        a chain of --tasks tasks. Sample: from sending the TaskEvent that
                           completes task i (which makes task i+1 ready) to the LeaseGrant of
                           task i+1. --tasks - 1 samples per run.
              independent  --tasks independent tasks, all ready at the trigger, with --slots 1:
                           task i+1 waits only for the slot task i holds. Sample: from sending the
                           TaskEvent that completes task i (which frees the slot) to the LeaseGrant
                           of task i+1. --tasks - 1 samples per run.
              trigger      a one-task DAG, triggered --tasks times per run, one run at a time.
                           Sample: from sending TriggerRun to the LeaseGrant (submit -> lease).
            Each sample also holds one loopback trip of the event (or the trigger) to the server,
            so it bounds "ready on the server -> lease received" from above.

            After --warmup-runs untimed runs, prints one line per timed run to stdout, then one
            over the samples of every timed run (run=all):
              shape=S run=N samples=K p50_ms=X p99_ms=Y mean_ms=Z max_ms=M
            Percentiles are nearest-rank. Fails unless every run ends in success.
            """
    )

    enum Shape: String, ExpressibleByArgument { case chain, independent, trigger }

    @Option(help: "Server HOST:PORT (plaintext h2c).")
    var server: String
    @Option(help: "File holding an agent token.")
    var agentTokenFile: String
    @Option(help: "File holding an admin token (for TriggerRun and GetRun).")
    var adminTokenFile: String
    @Option(help: "DAG to trigger.")
    var dag: String
    @Option(help: "chain, independent or trigger.")
    var shape: Shape = .chain
    @Option(help: "Tasks in the DAG (chain, independent), or triggers per run (trigger).")
    var tasks = 1_000
    @Option(help: "Timed runs.")
    var runs = 3
    @Option(help: "Untimed runs first.")
    var warmupRuns = 1
    @Option(help: "Agent name.")
    var name = "e2e-fake"
    @Option(help: "Queue the agent serves.")
    var queue = "bench-fake"
    @Option(help: "Entrypoint the agent offers.")
    var entrypoint = "noop"
    @Option(help: "Slots the agent announces.")
    var slots = 1

    func validate() throws {
        guard tasks >= 2, runs >= 1, warmupRuns >= 0, slots >= 1 else {
            throw ValidationError("--tasks must be >= 2, --runs >= 1, --warmup-runs >= 0, --slots >= 1")
        }
        if shape != .trigger && slots != 1 {
            throw ValidationError("--slots must be 1 for \(shape.rawValue): a sample must have exactly one cause")
        }
    }

    func run() throws {
        func token(_ path: String) throws -> String {
            try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let session = E2EAgentSession(
            agentMetadata: try Self.bearer(token(agentTokenFile)), adminMetadata: try Self.bearer(token(adminTokenFile)),
            options: self)
        var configuration = GRPCClient.Configuration(target: try SocketAddress(parsing: server), tls: nil)
        configuration.busyPoll = .zero   // as `tether agent`
        let client = try GRPCClient(configuration: configuration)
        // The measuring task prefers the loop; this thread only waits for it.
        try onClientLoop(client) { try await session.measure(client) }
    }

    static func bearer(_ secret: String) throws -> GRPCMetadata {
        var metadata = GRPCMetadata()
        try metadata.addString("Bearer \(secret)", forKey: "authorization")
        return metadata
    }
}

/// The fake agent's one Connect stream and its runs. Used by one task on the client's loop.
private struct E2EAgentSession: Sendable {
    let agentMetadata: GRPCMetadata
    let adminMetadata: GRPCMetadata
    let options: E2EAgent

    typealias Call = GRPCClientCall<AgentV1.AgentMessage, AgentV1.ServerMessage>

    /// Connects, then does the warm-up and timed runs, printing one line per timed run.
    /// - Throws: `GRPCStatus` from any call; `E2EError` when the server does something
    ///   the benchmark cannot account for (a revoke, a rejected event, a run not successful).
    func measure(_ client: GRPCClient) async throws {
        let call: Call = try await client.makeCall(AgentV1.AgentService.connect, metadata: agentMetadata)
        var hello = AgentV1.Hello()
        hello.name = options.name
        hello.version = "tether-torture-e2e-agent"
        hello.queues = [options.queue]
        hello.slots = UInt32(options.slots)
        hello.entrypoints = [options.entrypoint]
        hello.instanceID = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try await call.send(AgentV1.AgentMessage(.hello(hello)))
        guard let first = try await call.next(), case .welcome(let welcome)? = first.kind else {
            throw await call.status() ?? E2EError("the server's first message was not a Welcome")
        }
        var stream = AgentStream(call: call, sequence: welcome.ackedSequence)
        if !client.eventLoop.inEventLoop { throw E2EError("the fake agent is not running on the client's event loop") }

        var timed: [Int64] = []
        for index in 0..<(options.warmupRuns + options.runs) {
            var samples: [Int64] = []
            samples.reserveCapacity(options.tasks)
            switch options.shape {
            case .chain, .independent:
                let runID = try await trigger(client)
                var lastSent: Int64?
                for _ in 0..<options.tasks {
                    let grant = try await stream.nextGrant()
                    if let lastSent { samples.append(grant.receivedAt - lastSent) }
                    lastSent = try await stream.succeed(grant.grant)
                }
                try await stream.waitForAcks()
                try await expectSuccess(client, runID)
            case .trigger:
                for _ in 0..<options.tasks {
                    let sent = MonotonicClock.nanoseconds()
                    // The grant can arrive before TriggerRun's response: wait for both at once.
                    async let runID = trigger(client)
                    let grant = try await stream.nextGrant()
                    samples.append(grant.receivedAt - sent)
                    _ = try await stream.succeed(grant.grant)
                    try await stream.waitForAcks()
                    try await expectSuccess(client, try await runID)
                }
            }
            // Leases live for the server's TTL from their grant or the agent's last heartbeat.
            try await stream.heartbeat()
            guard index >= options.warmupRuns else { continue }
            timed += samples
            report(run: String(index - options.warmupRuns + 1), samples)
        }
        report(run: "all", timed)
        await call.finishSending()
        while try await call.next() != nil {}
    }

    /// One line of results for `samples` (unsorted, not empty).
    private func report(run: String, _ samples: [Int64]) {
        let sorted = samples.sorted()
        let mean = Double(sorted.reduce(0, +)) / Double(sorted.count)
        func ms(_ ns: Double) -> String { String(format: "%.3f", ns / 1e6) }
        writeLine("shape=\(options.shape.rawValue) run=\(run) samples=\(sorted.count)"
                  + " p50_ms=\(ms(Double(percentile(sorted, 0.50)))) p99_ms=\(ms(Double(percentile(sorted, 0.99))))"
                  + " mean_ms=\(ms(mean)) max_ms=\(ms(Double(sorted.last!)))")
    }

    private func trigger(_ client: GRPCClient) async throws -> String {
        var request = ControlV1.TriggerRunRequest()
        request.dagID = options.dag
        let response: ControlV1.TriggerRunResponse = try await client.unary(
            ControlV1.ControlService.triggerRun, request, metadata: adminMetadata, timeout: .seconds(30))
        guard let runID = response.run?.runID, !runID.isEmpty else { throw E2EError("TriggerRun returned no run") }
        return runID
    }

    /// The run must have finished with success: the last event's Ack means its commit, which
    /// finished the run, is durable.
    private func expectSuccess(_ client: GRPCClient, _ runID: String) async throws {
        var request = ControlV1.GetRunRequest()
        request.runID = runID
        let response: ControlV1.GetRunResponse = try await client.unary(
            ControlV1.ControlService.getRun, request, metadata: adminMetadata, timeout: .seconds(30))
        guard response.run?.state == .success else {
            throw E2EError("run \(runID) is \(response.run?.state.rawValue ?? -1), not success, after its last event was acknowledged")
        }
    }

    /// Nearest-rank percentile of sorted `samples` (as `tether-echo pingpong`).
    private func percentile(_ samples: [Int64], _ q: Double) -> Int64 {
        let rank = Int((Double(samples.count) * q).rounded(.up))
        return samples[min(samples.count, max(1, rank)) - 1]
    }
}

/// The agent side of the stream: grants in, success events out, Acks counted.
private struct AgentStream {
    let call: E2EAgentSession.Call
    /// The last event sequence sent, and the highest one acknowledged.
    var sequence: UInt64
    var acked: UInt64

    init(call: E2EAgentSession.Call, sequence: UInt64) {
        self.call = call
        self.sequence = sequence
        acked = sequence
    }

    /// The next LeaseGrant and the monotonic time it was read; Acks in between are counted.
    mutating func nextGrant() async throws -> (grant: AgentV1.LeaseGrant, receivedAt: Int64) {
        while true {
            let message = try await nextMessage()
            let receivedAt = MonotonicClock.nanoseconds()
            if case .leaseGrant(let grant)? = message.kind { return (grant, receivedAt) }
            try absorb(message)
        }
    }

    /// Reports `grant` succeeded; returns the monotonic time just before the send.
    mutating func succeed(_ grant: AgentV1.LeaseGrant) async throws -> Int64 {
        sequence += 1
        var event = AgentV1.TaskEvent()
        event.sequence = sequence
        event.leaseID = grant.leaseID
        event.epoch = grant.epoch
        event.kind = .succeeded
        var exit = AgentV1.ExitStatus()
        exit.status = .exitCode(0)
        event.exitStatus = exit
        let sent = MonotonicClock.nanoseconds()
        try await call.send(AgentV1.AgentMessage(.taskEvent(event)))
        return sent
    }

    mutating func heartbeat() async throws {
        var heartbeat = AgentV1.Heartbeat()
        heartbeat.freeSlots = 1
        try await call.send(AgentV1.AgentMessage(.heartbeat(heartbeat)))
    }

    /// Returns once every event sent is acknowledged.
    mutating func waitForAcks() async throws {
        while acked < sequence { try absorb(try await nextMessage()) }
    }

    private func nextMessage() async throws -> AgentV1.ServerMessage {
        guard let message = try await call.next() else {
            throw await call.status() ?? E2EError("the server ended the Connect stream")
        }
        return message
    }

    /// Accounts for a message that is not the grant being waited for.
    private mutating func absorb(_ message: AgentV1.ServerMessage) throws {
        switch message.kind {
        case .ack(let ack)?:
            if let rejection = ack.rejections.first {
                throw E2EError("event \(rejection.sequence) (\(rejection.leaseID)) rejected: \(rejection.reason)")
            }
            acked = max(acked, ack.sequence)
        case .leaseGrant(let grant)?:
            throw E2EError("unexpected grant \(grant.leaseID): more leases than the shape allows")
        case .leaseRevoke(let revoke)?:
            throw E2EError("lease \(revoke.leaseID) revoked (\(revoke.reason.rawValue))")
        case .drain(let drain)?:
            throw E2EError("the server asked the agent to drain: \(drain.reason)")
        case .welcome?, .heartbeatAck?, nil:
            break
        }
    }
}

struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
