#if canImport(Glibc)
internal import Glibc
#endif

/// An OS call that failed: which call, on what, and errno.
public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The call that failed, e.g. "connect".
    public let operation: String
    /// errno at the failure.
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The one wrapper every syscall goes through: retries EINTR, turns -1 into a
/// `SystemError` carrying errno. `EAGAIN`/`EWOULDBLOCK` come back as `nil` so
/// callers on non-blocking descriptors can wait for readiness.
@inline(__always)
func syscall<T: FixedWidthInteger>(_ operation: @autoclosure () -> String,
                                   _ body: () -> T) throws(SystemError) -> T? {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Glibc.errno
        switch error {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return nil
        default: throw SystemError(operation(), errno: error)
        }
    }
}

/// As `syscall`, for calls where EAGAIN is itself an error.
@inline(__always)
func syscallChecked<T: FixedWidthInteger>(_ operation: @autoclosure () -> String,
                                          _ body: () -> T) throws(SystemError) -> T {
    guard let result = try syscall(operation(), body) else {
        throw SystemError(operation(), errno: EAGAIN)
    }
    return result
}
