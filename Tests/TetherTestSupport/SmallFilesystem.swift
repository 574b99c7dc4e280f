public import Foundation
import Glibc

/// A tmpfs of a few MiB mounted on a fresh directory: a real filesystem a test can fill
/// until writes fail with ENOSPC (SQLITE_FULL), then free again. Mounting needs root
/// (CAP_SYS_ADMIN); guard tests with `.enabled(if: SmallFilesystem.isAvailable, …)`.
/// Released, it is unmounted (lazily, should a file still be open) and its directory removed.
public final class SmallFilesystem: Sendable {
    public let url: URL
    private let fillerPath: String

    /// Why mounting a tmpfs failed here, nil if it works (tried once per process).
    public static let unavailableReason: String? = {
        do {
            _ = try SmallFilesystem(bytes: 64 << 10)
            return nil
        } catch {
            return "\(error)"
        }
    }()

    /// Whether this process may mount a tmpfs (it runs as root, outside a locked-down container).
    public static var isAvailable: Bool { unavailableReason == nil }

    /// Mounts a tmpfs of `bytes` on a new directory under the temporary directory.
    /// - Throws: `SmallFilesystemError` naming the failed call and its errno.
    public init(bytes: Int) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("tether-tmpfs-\(UUID().uuidString)", isDirectory: true)
        fillerPath = url.appendingPathComponent("filler").path
        guard mkdir(url.path, 0o700) == 0 else { throw SmallFilesystemError(call: "mkdir \(url.path)", errno: errno) }
        guard Glibc.mount("tmpfs", url.path, "tmpfs", 0, "size=\(bytes),mode=0700") == 0 else {
            let error = errno
            rmdir(url.path)
            throw SmallFilesystemError(call: "mount -t tmpfs -o size=\(bytes) tmpfs \(url.path)", errno: error)
        }
    }

    deinit {
        umount2(url.path, Int32(MNT_DETACH))
        rmdir(url.path)
    }

    /// The path of `name` on this filesystem.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes to a filler file until a write fails with ENOSPC, then gives back `leaving`
    /// bytes of it (rounded down to whole pages). Returns the filler's size.
    @discardableResult
    public func fill(leaving: Int = 0) throws -> Int {
        let fd = open(fillerPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SmallFilesystemError(call: "open \(fillerPath)", errno: errno) }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x5A, count: 64 << 10)
        while true {
            let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                guard errno == ENOSPC else { throw SmallFilesystemError(call: "write \(fillerPath)", errno: errno) }
                break
            }
        }
        var size = lseek(fd, 0, SEEK_END)
        if leaving > 0 {
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            size = max(0, size - off_t(leaving / page * page))
            guard ftruncate(fd, size) == 0 else { throw SmallFilesystemError(call: "ftruncate \(fillerPath)", errno: errno) }
        }
        return Int(size)
    }

    /// Deletes the filler: the space it held is free again.
    public func free() throws {
        guard unlink(fillerPath) == 0 || errno == ENOENT else { throw SmallFilesystemError(call: "unlink \(fillerPath)", errno: errno) }
    }
}

/// A system call `SmallFilesystem` made failed.
public struct SmallFilesystemError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public var description: String { "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
