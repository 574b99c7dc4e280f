import Foundation

/// Runs blocking work (starting a child process and waiting for its ready line, waiting
/// for it to exit, `runProcess`) on a thread of its own, so an async test never holds one
/// of the few cooperative-pool threads that every other suite's async tests need while it
/// waits (this machine has two).
public func onThreadOfItsOwn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

