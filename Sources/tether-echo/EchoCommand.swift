import ArgumentParser
import Foundation
import GRPC
import H2
import TetherEcho
import TetherWire

/// `tether-echo`: the echo service (Protos/tether/testing/v1/echo.proto) on
/// Tether's gRPC transport, for interop tests and benchmarks.
@main
struct EchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tether-echo",
        abstract: "Echo service on Tether's gRPC transport, for tests and benchmarks.",
        subcommands: [Serve.self, PingPong.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve tether.testing.v1.EchoService (and gRPC health) until SIGTERM/SIGINT.",
        discussion: "Prints \"listening on ADDRESS\" once ready."
    )

    @Option(help: "HOST:PORT to listen on; port 0 picks one.")
    var listen = "127.0.0.1:0"
    @Option(help: "TLS certificate chain (PEM); without it the server speaks h2c.")
    var tlsCert: String?
    @Option(help: "TLS private key (PEM).")
    var tlsKey: String?
    @Option(help: "CA (PEM) whose client certificates are required (mTLS).")
    var clientCA: String?
    @Option(help: "Event loops (default: one per core).")
    var loops: Int?
    @Option(help: "Largest request message accepted, in bytes.")
    var maxReceiveBytes = 4 << 20
    @Option(help: "Max concurrent streams per connection.")
    var maxConcurrentStreams: UInt32 = 1000
    @Flag(help: "Also answer plain HTTP on the port (HTTP/1.1 and non-gRPC h2: GET /healthz), as tether server does.")
    var plainHTTP = false
    @OptionGroup var busyPoll: BusyPollOption

    /// The plain HTTP side of `--plain-http`: `/healthz`, 404 elsewhere.
    @Sendable static func healthz(_ request: HTTPRequest) async -> HTTPResponse {
        request.path == "/healthz" ? .text(200, "ok") : .text(404, "no such path: \(request.path)")
    }

    func run() async throws {
        var tls: TLSContext?
        if let tlsCert, let tlsKey {
            var tlsConfiguration = TLSConfiguration.server(certificateChainFile: tlsCert, privateKeyFile: tlsKey,
                                                           clientCAFile: clientCA, requireClientCertificate: clientCA != nil)
            tlsConfiguration.acceptsHTTP11 = plainHTTP
            tls = try TLSContext(tlsConfiguration)
        }
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: listen), tls: tls)
        if let loops { configuration.loopCount = loops }
        configuration.limits.maxReceiveMessageBytes = maxReceiveBytes
        configuration.http2.maxConcurrentStreams = maxConcurrentStreams
        configuration.busyPoll = busyPoll.duration
        let handler: HTTPHandler? = plainHTTP ? Self.healthz : nil
        let server = try GRPCServer(configuration: configuration, router: EchoService.router(),
                                    reflection: WireRegistry.fileDescriptors, httpHandler: handler)
        let bound = try server.start()
        FileHandle.standardOutput.write(Data(("listening on \(bound) (\(tls == nil ? "h2c" : "tls"))" + "\n").utf8))
        await waitForTerminationSignal()
        await server.shutdown(graceful: true)
    }
}

/// `--busy-poll-us`, for the server's loops and the ping-pong client's loop alike.
struct BusyPollOption: ParsableArguments {
    @Option(help: "Longest busy poll before an event loop sleeps, in microseconds; 0 sleeps at once.")
    var busyPollUs = Int(GRPCServer.Configuration.defaultBusyPoll / .microseconds(1))

    func validate() throws {
        guard (0...10_000).contains(busyPollUs) else { throw ValidationError("--busy-poll-us must be 0...10000") }
    }

    var duration: Duration { .microseconds(busyPollUs) }
}
