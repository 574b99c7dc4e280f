import H2
import Glibc

// The module's one check for OS calls. POSIX has two error conventions, so there are two
// entry points, both producing `H2.SystemError` (the operation and errno).

/// Runs `body` (a call returning -1 and setting errno on failure), retrying on EINTR.
/// - Throws: `SystemError` naming `operation` and carrying errno.
@discardableResult
func systemCall<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let error = Glibc.errno
        if error == EINTR { continue }
        throw SystemError(operation(), errno: error)
    }
}

/// Checks a call that returns 0 or an error number (the `posix_spawn` family, pthreads).
/// - Throws: `SystemError` naming `operation` and carrying the returned number.
func posixCall(_ operation: @autoclosure () -> String, _ result: Int32) throws(SystemError) {
    guard result == 0 else { throw SystemError(operation(), errno: result) }
}

/// An open file descriptor and its sole owner: closed when the value ends.
///
/// Move-only, so no two owners can close the same descriptor. Not shared across threads.
struct FileDescriptor: ~Copyable {
    let raw: Int32

    /// Takes ownership of `raw`, which must be open.
    init(owning raw: Int32) {
        self.raw = raw
    }

    deinit { close(raw) }
}

/// Microseconds since the Unix epoch by the wall clock (`CLOCK_REALTIME`).
func unixMicrosecondsNow() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
}

/// The whole contents of a small file (`/proc` entries), or nil if it cannot be read.
func readSmallFile(_ path: String, limit: Int = 64 << 10) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    let file = FileDescriptor(owning: fd)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < limit {
        let count = chunk.withUnsafeMutableBytes { buffer in read(file.raw, buffer.baseAddress, buffer.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return count == 0 ? bytes : nil }
        bytes.append(contentsOf: chunk[..<count])
    }
    return bytes
}
