import Foundation
import Testing
@testable import TetherServer

/// The server's threads carry names (`docs/operations.md`, "Threads"), so `top -H` and
/// `perf` tell the event loops, the state database's writer and its checkpointer apart.
@Suite struct ServerThreadNamesTests {
    @Test func theLoopsTheWriterAndTheCheckpointerAreNamed() async throws {
        let h = try ServerHarness()
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        let names = Set(tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .newlines) })
        for name in ["grpc-0", "tether-commit", "tether-wal"] {
            #expect(names.contains(name), "no thread named \(name) among \(names.sorted())")
        }
        await h.stop()
    }
}
