import ArgumentParser
import Foundation
import GRPC
import H2
import TetherEcho
import TetherWire

/// `tether-echo pingpong`: the transport benchmark's round-trip client. Opens one
/// `Chat` call on any EchoService server (ours or another stack's) and times
/// sequential send + receive round trips, each on the client's event-loop thread.
struct PingPong: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pingpong",
        abstract: "Time bidi ping-pong round trips on one EchoService/Chat call.",
        discussion: """
            Prints one line to stdout after the run:
              round_trips=N p50_us=X p99_us=Y mean_us=Z
            Percentiles are nearest-rank over the timed round trips (not the warm-up).
            """
    )

    @Option(help: "HOST:PORT of the EchoService server.")
    var target: String
    @Option(help: "CA (PEM) the server's certificate must chain to; switches on TLS.")
    var ca: String?
    @Option(help: "Name the server's certificate must match (TLS only).")
    var serverName = "localhost"
    @Option(help: "Request payload size in bytes (echoed back).")
    var payloadBytes = 32
    @Option(help: "Untimed round trips first.")
    var warmup = 2_000
    @Option(help: "Timed round trips.")
    var roundTrips = 20_000
    @OptionGroup var busyPoll: BusyPollOption

    func run() async throws {
        let tls = try ca.map { try TLSContext(.client(caFile: $0, serverName: serverName)) }
        var configuration = GRPCClient.Configuration(target: try SocketAddress(parsing: target), tls: tls)
        configuration.busyPoll = busyPoll.duration
        let client = try GRPCClient(configuration: configuration)
        let (payloadBytes, warmup, roundTrips) = (self.payloadBytes, self.warmup, self.roundTrips)
        // The task prefers the loop, so every await below resumes on the thread
        // that owns the socket: a round trip costs no thread hop on our side.
        let result = await Task(executorPreference: client.eventLoop) {
            try await Self.measure(client, payloadBytes: payloadBytes, warmup: warmup, roundTrips: roundTrips)
        }.result
        await client.close()
        var samples = try result.get()
        samples.sort()
        let mean = Double(samples.reduce(0, +)) / Double(max(1, samples.count))
        func microseconds(_ ns: Double) -> String { String(format: "%.1f", ns / 1000) }
        print("round_trips=\(samples.count) p50_us=\(microseconds(Double(Self.percentile(samples, 0.50))))"
              + " p99_us=\(microseconds(Double(Self.percentile(samples, 0.99)))) mean_us=\(microseconds(mean))")
    }

    /// Runs the warm-up and the timed round trips on one call; returns each timed
    /// round trip in nanoseconds. Must run in a task that prefers `client.eventLoop`.
    /// - Throws: the call's `GRPCStatus`, or `PingPongError` for a wrong echo.
    static func measure(_ client: GRPCClient, payloadBytes: Int, warmup: Int, roundTrips: Int) async throws -> [Int64] {
        let call: GRPCClientCall<TestingV1.EchoRequest, TestingV1.EchoResponse> =
            try await client.makeCall(TestingV1.EchoService.chat)
        var request = TestingV1.EchoRequest()
        request.payload = [UInt8](repeating: 0x70, count: payloadBytes)
        var samples: [Int64] = []
        samples.reserveCapacity(roundTrips)
        for i in 0..<(warmup + roundTrips) {
            let start = MonotonicClock.nanoseconds()
            try await call.send(request)
            guard let reply = try await call.next() else { throw PingPongError("call ended after \(i) round trips") }
            let end = MonotonicClock.nanoseconds()
            guard reply.payload.count == payloadBytes else {
                throw PingPongError("echo \(i) carried \(reply.payload.count) bytes, sent \(payloadBytes)")
            }
            if i >= warmup { samples.append(end - start) }
            if i == 0 && !client.eventLoop.inEventLoop {
                throw PingPongError("round trips are not running on the client's event loop")
            }
        }
        await call.finishSending()
        while try await call.next() != nil {}
        return samples
    }

    /// Nearest-rank percentile of sorted `samples` (the same rule as the C/C++ peers).
    static func percentile(_ samples: [Int64], _ q: Double) -> Int64 {
        guard !samples.isEmpty else { return 0 }
        let rank = Int((Double(samples.count) * q).rounded(.up))
        return samples[min(samples.count, max(1, rank)) - 1]
    }
}

/// The server's echo was not what the benchmark sent.
struct PingPongError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
