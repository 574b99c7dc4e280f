/// Where a client connects, from a URL: `https://host[:port]` (TLS) or `http://host[:port]`
/// (plaintext h2c). The port defaults to `defaultPort`.
public struct GRPCTarget: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var usesTLS: Bool

    public init(usesTLS: Bool, host: String, port: UInt16) {
        self.usesTLS = usesTLS
        self.host = host
        self.port = port
    }

    /// - Throws: `GRPCTargetError` naming what is wrong with `url`.
    public init(url: String, defaultPort: UInt16) throws(GRPCTargetError) {
        let rest: Substring
        if url.hasPrefix("https://") {
            usesTLS = true
            rest = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            usesTLS = false
            rest = url.dropFirst(7)
        } else {
            throw GRPCTargetError(url: url, reason: "must start with https:// (or http:// for plaintext h2c)")
        }
        var authority = rest
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@") else {
            throw GRPCTargetError(url: url, reason: "is not scheme://host[:port] (no path or user)")
        }
        if authority.hasPrefix("[") {  // [IPv6]:port
            guard let close = authority.firstIndex(of: "]") else { throw GRPCTargetError(url: url, reason: "has an unclosed [") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { throw GRPCTargetError(url: url, reason: "has text after the host") }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw GRPCTargetError(url: url, reason: "has a bad IPv6 address")
            }
            port = try Self.port(after.isEmpty ? nil : after.dropFirst(), url: url, defaultPort: defaultPort)
        } else {
            let colon = authority.firstIndex(of: ":")
            host = String(authority[..<(colon ?? authority.endIndex)])
            guard !host.isEmpty, host.utf8.allSatisfy(Self.isHostNameByte) else {
                throw GRPCTargetError(url: url, reason: "has a bad host (only a name or an address; no path, user or query)")
            }
            port = try Self.port(colon.map { authority[authority.index(after: $0)...] }, url: url, defaultPort: defaultPort)
        }
    }

    /// A DNS name's or an IPv4 address's bytes: ASCII letters, digits, `.` and `-`.
    private static func isHostNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    private static func port(_ text: Substring?, url: String, defaultPort: UInt16) throws(GRPCTargetError) -> UInt16 {
        guard let text else { return defaultPort }
        guard let port = UInt16(text), port > 0 else { throw GRPCTargetError(url: url, reason: "has a bad port '\(text)'") }
        return port
    }

    public var description: String {
        "\(usesTLS ? "https" : "http")://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }
}

public struct GRPCTargetError: Error, Hashable, Sendable, CustomStringConvertible {
    public let url: String
    public let reason: String
    public var description: String { "server URL '\(url)' \(reason)" }
}
