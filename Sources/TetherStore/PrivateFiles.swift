import Glibc

/// A failed file-system call: what was being done, on which path, and errno.
public struct FileSystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call, e.g. "mkdir".
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(_ operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Where state and data live: directories only their owner may enter (0700) and files only
/// their owner may read (0600). Tokens' hashes, the scheduler's state, an agent's outbox
/// and task logs are nobody else's business on a shared machine.
public enum PrivateFiles {
    /// The mode of a directory this module creates.
    public static let directoryMode: UInt32 = 0o700
    /// The mode of a file this module creates.
    public static let fileMode: UInt32 = 0o600

    /// `mkdir -p path` where every directory it creates is 0700 (less the umask). Directories
    /// that exist keep their mode: `path` may be a shared parent the operator chose.
    /// A relative `path` stays relative.
    ///
    /// - Throws: `FileSystemError` naming the directory that could not be made.
    public static func createDirectories(_ path: String) throws(FileSystemError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, directoryMode) != 0 && errno != EEXIST {
                throw FileSystemError("mkdir", path: prefix, errno: errno)
            }
        }
    }

    /// Creates `path` (0600) holding `contents` and makes it durable (the file and its
    /// directory are fsynced). Never replaces or follows anything already at `path`.
    ///
    /// - Throws: `FileSystemError`; with errno `EEXIST` when `path` exists. A file that
    ///   could not be written whole is removed.
    public static func createExclusively(_ path: String, contents: String) throws(FileSystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, fileMode)
        guard fd >= 0 else { throw FileSystemError("create", path: path, errno: errno) }
        var failure: FileSystemError?
        var bytes = Array(contents.utf8)[...]
        while failure == nil, !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
            } else if written < 0, errno != EINTR {
                failure = FileSystemError("write", path: path, errno: errno)
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = FileSystemError("fsync", path: path, errno: errno) }
        close(fd)
        if let failure {
            unlink(path)
            throw failure
        }
        syncDirectory(containing: path)
    }

    /// Before SQLite creates the database `path`, creates it empty and 0600: SQLite gives a
    /// new database 0644 (less the umask) and its `-wal`, `-shm` and `-journal` sidecars the
    /// database's mode. A database or sidecar that exists with group or other bits (made by
    /// an older version) loses them.
    ///
    /// Path-based on purpose: opening and closing a descriptor of a database another
    /// connection of this process has open would drop that connection's POSIX locks.
    ///
    /// - Throws: `FileSystemError` if the file cannot be created or its mode changed.
    public static func prepareDatabase(_ path: String) throws(FileSystemError) {
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else { throw FileSystemError("stat", path: path, errno: errno) }
            let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
            if fd >= 0 {
                close(fd)
            } else if errno != EEXIST {   // another opener created it first: checked below
                throw FileSystemError("create", path: path, errno: errno)
            }
        }
        for file in [path, path + "-wal", path + "-shm", path + "-journal"] {
            try restrict(file)
        }
    }

    /// Drops group and other bits from `path`'s mode, if it exists.
    private static func restrict(_ path: String) throws(FileSystemError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw FileSystemError("stat", path: path, errno: errno)
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o077 != 0 else { return }
        if chmod(path, mode & 0o700) != 0 { throw FileSystemError("chmod", path: path, errno: errno) }
    }

    /// fsyncs the directory holding `path`, so a new entry in it survives power loss.
    /// Best effort: a directory that cannot be opened is left as it is.
    private static func syncDirectory(containing path: String) {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
