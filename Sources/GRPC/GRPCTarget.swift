/// Where a client connects, from a URL: `https://host[:port]` (TLS) or `http://host[:port]`
/// (plaintext h2c). The port defaults to `defaultPort`.
public struct GRPCTarget: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var usesTLS: Bool

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
            throw GRPCTargetError(url: url, reason: "expected scheme://host[:port] with no path or user")
        }
        if authority.hasPrefix("[") {  // [IPv6]:port
            guard let close = authority.firstIndex(of: "]") else { throw GRPCTargetError(url: url, reason: "unclosed [") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            port = try Self.port(after.isEmpty ? nil : after.dropFirst(), url: url, defaultPort: defaultPort)
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = try Self.port(authority[authority.index(after: colon)...], url: url, defaultPort: defaultPort)
        } else {
            host = String(authority)
            port = defaultPort
        }
        guard !host.isEmpty else { throw GRPCTargetError(url: url, reason: "empty host") }
    }

    private static func port(_ text: Substring?, url: String, defaultPort: UInt16) throws(GRPCTargetError) -> UInt16 {
        guard let text else { return defaultPort }
        guard let port = UInt16(text), port > 0 else { throw GRPCTargetError(url: url, reason: "bad port '\(text)'") }
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
