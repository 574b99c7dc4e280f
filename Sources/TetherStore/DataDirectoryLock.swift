import Glibc

/// An exclusive hold on a data directory: one writer per store, across processes.
///
/// Holds `flock(LOCK_EX)` on `DIR/LOCK` (0600) from `init` until the value is released or
/// deinitialised, and writes the holder's pid into the file for whoever is refused. The
/// kernel drops the lock when the process dies however it dies (`kill -9` too), so a stale
/// `LOCK` file never keeps a new holder out. `flock` locks belong to the open file, so a
/// second holder in the same process is refused as one in another process is.
///
/// The sole owner of its descriptor, closed in deinit. Thread-safe (immutable).
public final class DataDirectoryLock: Sendable {
    /// The lock file's name in the directory.
    public static let fileName = "LOCK"

    /// The locked directory, as given.
    public let directory: String
    private let fd: Int32

    /// Takes the lock on `directory`, which must exist; never waits.
    ///
    /// - Throws: `DataDirectoryLockError.held` when another holder (in any process) has
    ///   it; `.system` if the lock file cannot be opened, locked or written.
    public init(directory: String) throws(DataDirectoryLockError) {
        self.directory = directory
        let path = Self.path(in: directory)
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, PrivateFiles.fileMode)
        guard fd >= 0 else { throw .system(FileSystemError("open", path: path, errno: errno)) }
        var result: Int32
        repeat { result = flock(fd, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        guard result == 0 else {
            let error = errno
            defer { close(fd) }
            if error == EWOULDBLOCK { throw .held(directory: directory, pid: Self.holder(fd)) }
            throw .system(FileSystemError("flock", path: path, errno: error))
        }
        let text = Array("\(getpid())\n".utf8)
        guard ftruncate(fd, 0) == 0, text.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, 0) }) == text.count else {
            let error = errno
            close(fd)
            throw .system(FileSystemError("write", path: path, errno: error))
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// `DIR/LOCK`.
    public static func path(in directory: String) -> String {
        (directory.hasSuffix("/") ? directory : directory + "/") + fileName
    }

    /// The pid the holder wrote, if the file holds one.
    private static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let digits = buffer[..<count].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        return Int32(String(decoding: digits, as: UTF8.self)).flatMap { $0 > 0 ? $0 : nil }
    }
}

/// Why a data directory could not be locked.
public enum DataDirectoryLockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another holder has it; `pid` is the holder's, when it could be read.
    case held(directory: String, pid: Int32?)
    case system(FileSystemError)

    public var description: String {
        switch self {
        case .held(let directory, let pid):
            "\(directory) is locked by another process (\(pid.map { "pid \($0)" } ?? "pid unknown"))"
        case .system(let error):
            "cannot lock data dir: \(error)"
        }
    }
}
