import Foundation
import Testing
import TetherTestSupport

/// A child that never becomes ready fails the one test that started it, with what went
/// wrong, instead of trapping (and taking down every other test in the binary).
@Suite struct ChildProcessTests {
    @Test func aChildThatExitsBeforeItsReadyLineIsAnErrorWithItsOutput() async throws {
        let error = await #expect(throws: ChildProcessError.self) {
            try await onThreadOfItsOwn {
                _ = try ChildProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "echo no venv here >&2; exit 3"],
                                     readyPrefix: "listening on")
            }
        }
        #expect(error?.problem == "exited (status 3) before printing a line starting with 'listening on'",
                "\(String(describing: error))")
        #expect(error?.output == "no venv here\n")
    }

    @Test func aMissingExecutableIsAnError() async throws {
        let missing = "/nonexistent/.venv/bin/python"
        let error = await #expect(throws: ProcessRunError.self) {
            try await onThreadOfItsOwn { _ = try ChildProcess(URL(fileURLWithPath: missing), [], readyPrefix: "listening on") }
        }
        #expect(error?.description == "\(missing) not found: run Scripts/bootstrap first")
    }

    @Test func anExecutableThatCannotStartIsAnError() async throws {
        // A directory passes the executable check, then fails to exec.
        let directory = FileManager.default.temporaryDirectory
        await #expect(throws: (any Error).self) {
            try await onThreadOfItsOwn { _ = try ChildProcess(directory, [], readyPrefix: "listening on") }
        }
    }

    @Test func aSilentChildIsKilledAtTheDeadline() async throws {
        let error = await #expect(throws: ChildProcessError.self) {
            try await onThreadOfItsOwn {
                _ = try ChildProcess(URL(fileURLWithPath: "/bin/sleep"), ["60"], readyPrefix: "listening on",
                                     timeout: .milliseconds(300))
            }
        }
        #expect(error?.problem.hasPrefix("printed no line starting with 'listening on' within") == true,
                "\(String(describing: error))")
    }
}
