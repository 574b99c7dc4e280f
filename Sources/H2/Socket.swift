#if canImport(Glibc)
internal import Glibc
#endif
internal import CLinux

/// An IPv4 or IPv6 address and port.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    fileprivate enum Storage: Hashable {
        case v4(UInt32, UInt16)      // address in network order, port in host order
        case v6([UInt8], UInt16)     // 16 address bytes
    }
    fileprivate let storage: Storage

    /// The port number.
    public var port: Int {
        switch storage {
        case .v4(_, let port), .v6(_, let port): return Int(port)
        }
    }

    /// Parses "HOST:PORT" where HOST is an IPv4 literal, "[IPv6]" or "localhost".
    /// Names other than localhost go through `resolve(host:port:)`.
    public init(parsing text: String) throws(SocketAddressError) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            throw SocketAddressError(text: text, reason: "expected HOST:PORT")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        try self.init(host: host, port: port)
    }

    /// An address from a numeric host (or "localhost") and a port.
    public init(host: String, port: UInt16) throws(SocketAddressError) {
        let name = host == "localhost" ? "127.0.0.1" : host
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            storage = .v4(v4.s_addr, port)
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            storage = .v6(withUnsafeBytes(of: &v6) { Array($0) }, port)
            return
        }
        throw SocketAddressError(text: host, reason: "not a numeric IPv4/IPv6 address")
    }

    /// Resolves a host name with getaddrinfo (blocking: call off the event loop).
    public static func resolve(host: String, port: UInt16) throws(SocketAddressError) -> SocketAddress {
        if let numeric = try? SocketAddress(host: host, port: port) { return numeric }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SocketAddressError(text: host, reason: rc == 0 ? "no address" : String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(result) }
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let address = SocketAddress(sockaddr: info.pointee.ai_addr) { return address }
            cursor = info.pointee.ai_next
        }
        throw SocketAddressError(text: host, reason: "no IPv4/IPv6 address")
    }

    init?(sockaddr pointer: UnsafePointer<sockaddr>?) {
        guard let pointer else { return nil }
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET:
            let sin = UnsafeRawPointer(pointer).load(as: sockaddr_in.self)
            storage = .v4(sin.sin_addr.s_addr, UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            var sin6 = UnsafeRawPointer(pointer).load(as: sockaddr_in6.self)
            storage = .v6(withUnsafeBytes(of: &sin6.sin6_addr) { Array($0) }, UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }

    var family: Int32 {
        switch storage {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    /// Calls `body` with this address as a C sockaddr.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch storage {
        case .v4(let address, let port):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr.s_addr = address
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let bytes, let port):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    public var description: String {
        switch storage {
        case .v4(let address, let port):
            var a = in_addr(s_addr: address)
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &a, &text, socklen_t(text.count))
            return "\(cString(text)):\(port)"
        case .v6(let bytes, let port):
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            bytes.withUnsafeBytes { _ = inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
            return "[\(cString(text))]:\(port)"
        }
    }
}

private func cString(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A host:port that could not be parsed or resolved.
public struct SocketAddressError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public let reason: String
    public var description: String { "bad address '\(text)': \(reason)" }
}

/// Socket helpers. Every descriptor is non-blocking and close-on-exec.
enum Socket {
    /// A listening TCP socket. With `reusePort`, several loops may each bind one
    /// to the same port and the kernel spreads connections across them.
    static func listen(on address: SocketAddress, backlog: Int32 = 1024, reusePort: Bool) throws(SystemError) -> Int32 {
        let fd = try syscallChecked("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            _ = try syscallChecked("bind \(address)") { address.withSockaddr { bind(fd, $0, $1) } }
            _ = try syscallChecked("listen \(address)") { Glibc.listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The next pending connection, or nil when none is waiting.
    static func accept(_ listener: Int32) throws(SystemError) -> (fd: Int32, peer: SocketAddress?)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let fd = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SystemError) -> Int32? in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(SystemError) -> Int32? in
                try syscall("accept4") { accept4(listener, address, &length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)) }
            }
        }
        guard let fd else { return nil }
        try? setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let peer = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0) }
        }
        return (fd, peer)
    }

    /// Starts a non-blocking connect; completion is signalled by writability,
    /// then `connectResult` tells whether it worked.
    static func startConnect(to address: SocketAddress) throws(SystemError) -> Int32 {
        let fd = try syscallChecked("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        try? setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let rc = address.withSockaddr { connect(fd, $0, $1) }
        if rc != 0 && errno != EINPROGRESS && errno != EINTR {
            let error = SystemError("connect \(address)", errno: errno)
            close(fd)
            throw error
        }
        return fd
    }

    /// The outcome of a non-blocking connect once the socket is writable.
    static func connectResult(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error
    }

    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(fd, $0, &length) == 0 ? SocketAddress(sockaddr: $0) : nil
            }
        }
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SystemError) {
        var v = value
        _ = try syscallChecked("setsockopt(\(name))") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }
}
