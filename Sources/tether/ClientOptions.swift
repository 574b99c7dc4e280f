import ArgumentParser
import Foundation
import GRPC
import H2
import TetherSyntax
import TetherWire
import Yams

/// How CLI commands reach the server: flags, then TETHER_SERVER / TETHER_TOKEN /
/// TETHER_CA_FILE, then ~/.config/tether/config.yaml (keys server, token, ca_file).
struct ClientOptions: ParsableArguments {
    @Option(help: "Server URL, https://HOST[:PORT] (http:// for plaintext h2c). Env: TETHER_SERVER.")
    var server: String?

    @Option(help: "Bearer token. Env: TETHER_TOKEN.")
    var token: String?

    @Option(help: "CA certificate (PEM) that signed the server's certificate. Env: TETHER_CA_FILE.")
    var caFile: String?

    @Flag(help: "Print the response messages as protobuf JSON (as grpcurl does) instead of tables.")
    var json = false

    /// The settings after flags > environment > config file.
    func resolved() throws -> (target: GRPCTarget, token: String, caFile: String?) {
        let environment = ProcessInfo.processInfo.environment
        let file = try Self.configFile()
        guard let url = server ?? environment["TETHER_SERVER"] ?? file["server"] else {
            throw ValidationError("no server: pass --server, set TETHER_SERVER, or put server: in ~/.config/tether/config.yaml")
        }
        guard let token = token ?? environment["TETHER_TOKEN"] ?? file["token"], !token.isEmpty else {
            throw ValidationError("no token: pass --token, set TETHER_TOKEN, or put token: in ~/.config/tether/config.yaml")
        }
        let target: GRPCTarget
        do {
            target = try GRPCTarget(url: url, defaultPort: ServerURL.defaultPort)
        } catch {
            throw ValidationError("\(error)")
        }
        return (target, token, caFile ?? environment["TETHER_CA_FILE"] ?? file["ca_file"])
    }

    /// Connects; the caller closes the client.
    func connect() async throws -> ControlClient {
        let (target, token, caFile) = try resolved()
        let address: SocketAddress
        do {
            address = try await Task.detached { try SocketAddress.resolve(host: target.host, port: target.port) }.value
        } catch {
            throw CLIError("cannot resolve \(target.host): \(error)")
        }
        var configuration = GRPCClient.Configuration(
            target: address, tls: target.usesTLS ? try TLSContext(.client(caFile: caFile, serverName: target.host)) : nil)
        configuration.authority = "\(target.host):\(target.port)"
        configuration.backoff.minimumConnectTimeout = .seconds(10)
        var metadata = GRPCMetadata()
        try metadata.addString("Bearer \(token)", forKey: "authorization")
        return ControlClient(client: try GRPCClient(configuration: configuration), metadata: metadata, server: target.description)
    }

    private static func configFile() throws -> [String: String] {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let path = "\(home)/.config/tether/config.yaml"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        guard let composed = try? Yams.compose(yaml: text), let mapping = composed.mapping else {
            throw CLIError("\(path): expected a YAML mapping with server, token and ca_file")
        }
        var values: [String: String] = [:]
        for (key, value) in mapping {
            guard let key = key.string, ["server", "token", "ca_file"].contains(key) else {
                throw CLIError("\(path): unknown key '\(key.string ?? "?")' (known: server, token, ca_file)")
            }
            values[key] = value.string
        }
        return values
    }
}

/// The ControlService with the caller's token.
struct ControlClient: Sendable {
    let client: GRPCClient
    let metadata: GRPCMetadata
    let server: String

    func call<Request: WireMessage, Response: WireMessage>(
        _ method: RPCMethod<Request, Response, RPCShape.Unary>, _ request: Request
    ) async throws -> Response {
        do {
            return try await client.unary(method, request, metadata: metadata, timeout: .seconds(30))
        } catch {
            throw CLIError.from(error, server: server)
        }
    }

    func close() async { await client.close() }
}

/// A failure to report to the user: one line on stderr and exit code `exitCode`.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    let exitCode: Int32

    init(_ description: String, exitCode: Int32 = 1) {
        self.description = description
        self.exitCode = exitCode
    }

    static func from(_ status: GRPCStatus, server: String) -> CLIError {
        switch status.code {
        case .unavailable: return CLIError("server \(server) unavailable: \(status.message)", exitCode: 3)
        case .unauthenticated: return CLIError("not authenticated: \(status.message)", exitCode: 4)
        case .permissionDenied: return CLIError("permission denied: \(status.message)", exitCode: 4)
        default: return CLIError("\(status.message) (\(status.code))")
        }
    }
}

/// Runs a command body, turning `CLIError` into a message on stderr and its exit code.
func runReportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        printError("tether: \(error.description)")
        throw ExitCode(error.exitCode)
    }
}

/// Connects with `options`, runs `body`, closes; errors are reported as `runReportingErrors` does.
func withControl(_ options: ClientOptions, _ body: (ControlClient) async throws -> Void) async throws {
    try await runReportingErrors {
        let control = try await options.connect()
        do {
            try await body(control)
        } catch {
            await control.close()
            throw error
        }
        await control.close()
    }
}
