import Foundation
import Testing
import TetherTestSupport

/// A live `tether server` through stock grpcio clients (Tests/Interop/reflection_interop.py):
/// server reflection as grpcio-reflection and grpcurl use it, and health as probes watch it.
@Suite struct ReflectionAndHealthTests {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/reflection_interop.py").path

    static func startServer(_ dataDir: String) throws -> ChildProcess {
        try ChildProcess(Repository.tetherBinary, ["server", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--insecure-plaintext"],
                         readyPrefix: "listening on")
    }

    static func dataDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tether-reflect-\(UUID().uuidString)").path
    }

    /// grpcio-reflection lists every service, describes every service, method, message and
    /// enum of the control, agent and health protos as grpcio-tools compiles them from
    /// Protos/, and a ControlService call made with classes built from the reflected
    /// descriptors alone succeeds with the admin token; bad requests get a clear status.
    @Test func grpcioReflectionListsDescribesAndCallsTheServerWithoutProtoFiles() async throws {
        let dir = Self.dataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (result, exitStatus) = try await onThreadOfItsOwn {
            let server = try Self.startServer(dir)
            let result = try runProcess(Repository.python, [Self.script, "reflection", server.listeningAddress, dir + "/admin.token"])
            return (result, server.stop())
        }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains(" 0 failed"), "\(result.stdout)")
        #expect(exitStatus == 0, "server did not exit cleanly on SIGTERM")
    }

    /// Health.Watch streams SERVING, and NOT_SERVING for the server and both services as
    /// soon as SIGTERM starts the drain; then the watch ends OK and the server exits 0.
    @Test func healthWatchSeesNotServingWhenTheServerIsToldToDrain() async throws {
        let dir = Self.dataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (result, exited, exitStatus) = try await onThreadOfItsOwn {
            let server = try Self.startServer(dir)
            let pid = server.process.processIdentifier
            let result = try runProcess(Repository.python, [Self.script, "health-drain", server.listeningAddress, "\(pid)"])
            let exited = server.waitForExit(within: .seconds(10))
            return (result, exited, server.stop())
        }
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(exited, "the server did not exit within 10 s of SIGTERM")
        #expect(exitStatus == 0)
    }
}
