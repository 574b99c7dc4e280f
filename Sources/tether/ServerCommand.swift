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
            Serves gRPC on one port: TLS (ALPN h2) with --tls-cert and --tls-key, or
            plaintext h2c with --insecure-plaintext. Prints "listening on ADDRESS" once
            ready. SIGTERM or SIGINT stops it gracefully: health turns NOT_SERVING,
            GOAWAY is sent and in-flight calls finish.
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

    func run() async throws {
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

        let server: TetherServer
        let bound: SocketAddress
        do {
            server = try TetherServer(configuration: configuration)
            bound = try server.start()
        } catch {
            printError("tether server: \(error)")
            throw ExitCode(1)
        }
        FileHandle.standardOutput.write(Data(("listening on \(bound) (\(insecurePlaintext ? "h2c" : "tls"))" + "\n").utf8))
        await waitForTerminationSignal()
        printError("tether server: shutting down")
        await server.shutdown()
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
