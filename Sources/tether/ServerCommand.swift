import ArgumentParser
import GRPC
import Foundation
import H2
import TetherServer

/// `tether server`: runs the orchestration plane until SIGTERM or SIGINT.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Run the Tether control server.",
        discussion: """
            Serves gRPC on one port: the agent stream (tether.agent.v1.AgentService), the
            operator API (tether.control.v1.ControlService) and grpc.health.v1.Health;
            and plain HTTP (HTTP/1.1 or h2) on the same port: /healthz, /readyz, and
            Prometheus metrics at /metrics (admin token, or --metrics-unauthenticated);
            TLS (ALPN h2) with --tls-cert and --tls-key, or plaintext h2c with
            --insecure-plaintext. State lives in DIR/state.db (SQLite, WAL), tokens in
            DIR/tokens.db. DIR is created 0700, its files 0600. One server per DIR: a
            second one is refused (exit 1) while DIR/LOCK is held.

            Nothing is open without a token. --bootstrap-token-file installs the secret in
            FILE as an admin token; without it, a start that finds no admin token
            creates one, writes it to DIR/admin.token (0600) and prints only that path.
            Create agent tokens with `tether token create --role agent`.

            Log lines go to stderr, each after its UTC time, or with --log-format json one
            JSON object per line (time, level, label, message, metadata). Under systemd
            (NOTIFY_SOCKET set) it sends READY=1 once serving, STOPPING=1 at SIGTERM, and
            WATCHDOG=1 every half of WATCHDOG_USEC when that is set.

            Prints "listening on ADDRESS" once ready. SIGTERM or SIGINT stops it within
            5 s: new connections are refused, GOAWAY is sent, agent streams end with
            UNAVAILABLE (agents reconnect and resume their leases), other calls get 3 s
            to finish; then pending commits are written and it exits 0.

            If DIR fills up (or its disk fails a write), calls that change state fail
            with UNAVAILABLE naming the cause, health says NOT_SERVING and a line on
            stderr says why; nothing acknowledged is lost. Once writes succeed again
            (checked twice a second) the server reloads its state from DIR/state.db,
            says so on stderr, serves again and has its agents reconnect: no restart.
            """
    )

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free port).")
    var listen = "127.0.0.1:7443"

    @Option(help: "Directory for the server's state; created if missing.")
    var dataDir: String

    @Option(help: "TLS certificate chain (PEM).")
    var tlsCert: String?

    @Option(help: "TLS private key (PEM).")
    var tlsKey: String?

    @Flag(help: "Serve plaintext HTTP/2 (h2c) instead of TLS. Only for local use.")
    var insecurePlaintext = false

    @Option(help: "File holding an admin token secret (16+ characters) to install.")
    var bootstrapTokenFile: String?

    @Option(help: "State database durability: full (survives power loss) or normal (survives a crash of the server).")
    var synchronous: Synchronous = .full

    @Option(help: "How long a lease lives without its agent's heartbeat, in seconds.")
    var leaseTtl = 30

    @Option(help: ArgumentHelp(
        "Attempts of one task that may end lost or rejected (agent gone, lease unconfirmed, task not startable) before the task fails.",
        discussion: "Such attempts never use the task's own retries."))
    var maxInfrastructureAttempts = 10

    @Flag(help: ArgumentHelp(
        "Serve /metrics without a token, for a Prometheus on a trusted network.",
        discussion: "By default /metrics needs an admin token (authorization: Bearer): it names queues and regions and counts agents."))
    var metricsUnauthenticated = false

    @Option(help: "How log lines on stderr read: human (time, then the line) or json (one object per line).")
    var logFormat: LogFormat = .human

    enum Synchronous: String, ExpressibleByArgument { case full, normal }

    func run() async throws {
        // Caught from the start: a SIGTERM that came between "listening on" and a handler
        // installed after it killed the server outright (status 15, no graceful stop).
        let signals = terminationSignals()
        let address: SocketAddress
        do {
            address = try SocketAddress(parsing: listen)
        } catch {
            throw ValidationError("--listen: \(error)")
        }
        var configuration = TetherServer.Configuration(listen: address, dataDirectory: URL(fileURLWithPath: dataDir))
        configuration.tlsCertificateFile = tlsCert
        configuration.tlsKeyFile = tlsKey
        configuration.insecurePlaintext = insecurePlaintext
        configuration.bootstrapTokenFile = bootstrapTokenFile
        configuration.synchronous = synchronous == .full ? .full : .normal
        guard (1...86_400).contains(leaseTtl) else { throw ValidationError("--lease-ttl must be 1...86400 seconds") }
        configuration.leaseTTLMilliseconds = Int64(leaseTtl) * 1000
        guard (1...1_000).contains(maxInfrastructureAttempts) else { throw ValidationError("--max-infrastructure-attempts must be 1...1000") }
        configuration.maxInfrastructureAttempts = maxInfrastructureAttempts
        configuration.heartbeatIntervalMilliseconds = max(200, Int64(leaseTtl) * 1000 / 6)
        configuration.version = TetherVersion.string
        configuration.metricsUnauthenticated = metricsUnauthenticated

        let log = daemonLogger(label: "tether.server", name: "tether server", format: logFormat)
        let notifier = ServiceNotifier()
        let server: TetherServer
        let bound: SocketAddress
        do {
            server = try TetherServer(configuration: configuration) { line in log.info("\(line)") }
            bound = try server.start()
        } catch {
            // A start that fails says so once, without a time (as other one-off errors), or as JSON.
            if logFormat == .json { log.error("\(error)") } else { printError("tether server: \(error)") }
            throw ExitCode(1)
        }
        if let file = server.createdAdminTokenFile {
            FileHandle.standardOutput.write(Data("admin token created; its secret is in \(file) (mode 0600)\n".utf8))
        }
        FileHandle.standardOutput.write(Data(("listening on \(bound) (\(insecurePlaintext ? "h2c" : "tls"))" + "\n").utf8))
        notifier.ready()
        notifier.startWatchdog()
        var received = signals.makeAsyncIterator()
        _ = await received.next()
        notifier.stopping()
        log.info("shutting down")
        await server.shutdown()
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
