import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Keeps the test process clear of a crash in swift-corelibs-foundation's `Process.run()`
/// on Linux, which a full `swift test` (some 40 servers in this process at once) hit.
///
/// Before spawning, Foundation finds the highest open descriptor by reading
/// `/proc/self/fd`, copying each entry's whole 256-byte `d_name` out of glibc's `readdir`
/// buffer (`var entryName = dirEntPtr.pointee.d_name`). Entries are variable-length, so
/// for the last entry of a full buffer that copy reads past the buffer's end, and faults
/// when the next page is unmapped: SIGSEGV in memcpy inside `Process.run()`, page-aligned
/// address (seen in 4 of 8 full runs). The 32 KiB buffer fills only with some 1,300
/// descriptors open; mid-suite this process holds up to 1,600 (sockets, epoll and event
/// fds, SQLite files of its servers). So a spawn waits until fewer than `limit` are open
/// (servers of finished tests close theirs within seconds), for at most `patience`: no
/// lock is held meanwhile, since the waiters' own servers keep descriptors open too.
public enum SpawnGuard {
    public static let limit = 1_000

    /// Runs `spawn` (a `Process.run()`) once this process has fewer than `limit`
    /// descriptors open, or after `patience` anyway.
    public static func run<T>(patience: Duration = .seconds(10), _ spawn: () throws -> T) rethrows -> T {
        let deadline = ContinuousClock.now + patience
        while openDescriptors() >= limit, ContinuousClock.now < deadline { usleep(20_000) }
        return try spawn()
    }

    /// Entries in /proc/self/fd, counted without reading their names.
    static func openDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return count
    }
}
