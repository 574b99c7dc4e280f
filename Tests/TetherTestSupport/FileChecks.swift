import Glibc

// Checks tests make on what a process left behind: file modes, a port that listens.

/// The permission bits of the file at `path` (`st_mode & 0o7777`, not following a final
/// symlink), or nil if it does not exist.
public func fileMode(_ path: String) -> UInt32? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return UInt32(info.st_mode & 0o7777)
}

/// Opens a TCP connection to 127.0.0.1:`port` and closes it: 0 if it was accepted by the
/// kernel, else the errno (`ECONNREFUSED` when nothing listens).
public func tcpConnectError(port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return result == 0 ? 0 : errno
}
