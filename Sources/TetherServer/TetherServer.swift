public import Foundation
import GRPC
public import H2

/// The orchestration plane's process: one gRPC port (TLS or h2c) and a data
/// directory. Today it serves `grpc.health.v1.Health`; the control and agent
/// services join it in later steps.
public final class TetherServer: Sendable {
    public struct Configuration: Sendable {
        /// Where to listen, "HOST:PORT" (port 0 picks one).
        public var listen: SocketAddress
        /// Where state lives; created if missing.
        public var dataDirectory: URL
        /// TLS certificate chain and key (PEM); nil with `insecurePlaintext` serves h2c.
        public var tlsCertificateFile: String?
        public var tlsKeyFile: String?
        public var insecurePlaintext = false

        public init(listen: SocketAddress, dataDirectory: URL) {
            self.listen = listen
            self.dataDirectory = dataDirectory
        }
    }

    /// Why the server could not start, in words for an operator.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    public let configuration: Configuration
    private let grpc: GRPCServer

    public init(configuration: Configuration) throws {
        self.configuration = configuration
        let tls: TLSContext?
        switch (configuration.tlsCertificateFile, configuration.tlsKeyFile, configuration.insecurePlaintext) {
        case (let cert?, let key?, false):
            tls = try TLSContext(.server(certificateChainFile: cert, privateKeyFile: key))
        case (nil, nil, true):
            tls = nil
        case (_, _, true):
            throw StartError(description: "--insecure-plaintext cannot be combined with --tls-cert/--tls-key")
        default:
            throw StartError(description: "give both --tls-cert and --tls-key, or --insecure-plaintext for h2c")
        }
        do {
            try FileManager.default.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw StartError(description: "cannot create data dir \(configuration.dataDirectory.path): \(error.localizedDescription)")
        }
        grpc = try GRPCServer(configuration: .init(address: configuration.listen, tls: tls), router: GRPCRouter())
    }

    /// Starts serving; returns the bound address.
    public func start() throws -> SocketAddress {
        try grpc.start()
    }

    /// Graceful stop: health goes NOT_SERVING, GOAWAY, in-flight calls finish.
    public func shutdown() async {
        await grpc.shutdown(graceful: true)
    }
}
