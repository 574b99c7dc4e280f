import Foundation
import H2
import TetherTestSupport

/// A peer from Tests/Interop/h2_peers.py that misbehaves at the connection level. Every
/// blocking step (start, wait, stop) runs on a thread of its own, off the cooperative pool.
struct H2Peer: Sendable {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/h2_peers.py").path

    /// A server role, listening once this returns.
    final class Server: Sendable {
        let process: ChildProcess
        let address: SocketAddress

        fileprivate init(_ process: ChildProcess) throws {
            self.process = process
            address = try SocketAddress(parsing: process.listeningAddress)
        }

        /// Stops the peer (SIGTERM); returns its exit status.
        @discardableResult
        func stop() async throws -> Int32 {
            let process = self.process
            return try await onThreadOfItsOwn { process.stop() }
        }
    }

    /// Starts `role` (e.g. "http1-server").
    static func startServer(_ role: String) async throws -> Server {
        try await onThreadOfItsOwn { try Server(ChildProcess(Repository.python, [script, role], readyPrefix: "listening on")) }
    }

    /// Runs a client `role` against `address` to completion.
    static func runClient(_ role: String, _ address: SocketAddress, _ arguments: [String] = []) async throws -> ProcessResult {
        try await onThreadOfItsOwn { try runProcess(Repository.python, [script, role, address.description] + arguments) }
    }
}
