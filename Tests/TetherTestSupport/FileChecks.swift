import Glibc

// Checks tests make on what a process left behind.

/// The permission bits of the file at `path` (`st_mode & 0o7777`, not following a final
/// symlink), or nil if it does not exist.
public func fileMode(_ path: String) -> UInt32? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return UInt32(info.st_mode & 0o7777)
}
