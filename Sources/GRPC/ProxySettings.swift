internal import H2

/// An HTTP CONNECT proxy that `GRPCClient` tunnels its connection through: a plain-HTTP
/// proxy (TLS to the target runs end to end inside the tunnel; TLS to the proxy itself is
/// not supported), with optional Basic credentials.
///
/// `fromEnvironment` reads the usual variables:
/// - TLS targets use `https_proxy`, else `HTTPS_PROXY`; h2c targets use `http_proxy`, else
///   `HTTP_PROXY` (the same split curl, Go and Python make by the target's scheme). The
///   lower-case name wins when both are set, as in curl and Python; an empty value counts
///   as unset.
/// - The URL is `[http://][user[:password]@]host[:port][/]`. User and password are
///   percent-decoded. Without a port the proxy is on 80, the http scheme's own default (as
///   Go and Python read such a URL; curl alone assumes 1080). `https://` and other schemes
///   are rejected.
/// - `no_proxy`, else `NO_PROXY`: a comma-separated list of targets reached directly. An
///   entry is `*` (everything), a host name (matching itself and its subdomains on dot
///   boundaries; a leading `.` or `*.` is ignored, so `.example.com` also matches
///   `example.com`, as in curl), an IP literal (matching that address exactly; no CIDR
///   ranges), any of these with `:port` to match that port only, or `[IPv6]:port`.
///   Matching ignores case and a trailing dot. Loopback and local names are NOT exempt
///   unless listed (curl does the same): list `localhost,127.0.0.1,::1` to exempt them.
public struct ProxySettings: Sendable, Hashable {
    /// The proxy's host name or IP literal (IPv6 without brackets).
    public var host: String
    public var port: Int
    /// Basic credentials sent with the CONNECT when `username` is set.
    public var username: String?
    public var password: String?

    /// The port of a proxy URL that names none: 80, the http scheme's default.
    public static let defaultPort = 80

    public init(host: String, port: Int = ProxySettings.defaultPort, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
    }

    /// Parses a proxy URL, `[http://][user[:password]@]host[:port][/]`.
    /// - Throws: `ProxySettingsError` for another scheme (https:// included), a path, a bad
    ///   host, port or percent-encoding. The message never repeats the password.
    public init(url text: String) throws(ProxySettingsError) {
        var rest = Substring(text.trimmingWhitespace)
        if let separator = rest.firstRange(of: "://") {
            let scheme = rest[..<separator.lowerBound].lowercased()
            switch scheme {
            case "http": break
            case "https":
                throw ProxySettingsError("https:// proxy URLs are not supported: the client speaks plain HTTP to the "
                                         + "proxy (TLS to the target still runs end to end inside the tunnel); use http://")
            default:
                throw ProxySettingsError("unsupported proxy scheme '\(scheme)://': only http:// proxies are supported")
            }
            rest = rest[separator.upperBound...]
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        guard rest[authorityEnd...] == "" || rest[authorityEnd...] == "/" else {
            throw ProxySettingsError("a proxy URL has no path or query: '\(rest[authorityEnd...])'")
        }
        var authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            let colon = userInfo.firstIndex(of: ":")
            let badEncoding = ProxySettingsError("bad percent-encoding in the proxy URL's user or password")
            guard let user = percentDecoded(userInfo[..<(colon ?? userInfo.endIndex)]) else { throw badEncoding }
            username = user
            if let colon {
                guard let password = percentDecoded(userInfo[userInfo.index(after: colon)...]) else { throw badEncoding }
                self.password = password
            }
        }
        guard let (host, port) = splitHostPort(authority) else {
            throw ProxySettingsError("bad proxy host '\(authority)': expected host[:port]")
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ isHostByte($0) }) else {
            throw ProxySettingsError("bad proxy host '\(host)'")
        }
        self.host = host
        if let port {
            guard let number = Int(port), (1...65535).contains(number) else {
                throw ProxySettingsError("bad proxy port '\(port)': expected 1-65535")
            }
            self.port = number
        } else {
            self.port = Self.defaultPort
        }
    }

    /// The proxy `environment` names for `target` ("host:port", "[IPv6]:port"), or nil when
    /// none is set or NO_PROXY exempts the target. See the type's documentation for the
    /// variables and their forms.
    /// - Throws: `ProxySettingsError`, naming the variable, when the proxy URL is bad (even
    ///   for an exempt target, so a broken setting is never silent), or when `target` is not
    ///   host:port.
    public static func fromEnvironment(_ environment: [String: String], target: String,
                                       tls: Bool) throws(ProxySettingsError) -> ProxySettings? {
        let names = tls ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]
        guard let (name, value) = firstSet(names, in: environment) else { return nil }
        let proxy: ProxySettings
        do {
            proxy = try ProxySettings(url: value)
        } catch {
            throw ProxySettingsError("\(name): \(error)")
        }
        guard let (host, port) = splitHostPort(Substring(target)), let port, let portNumber = Int(port), !host.isEmpty else {
            throw ProxySettingsError("bad target '\(target)': expected HOST:PORT")
        }
        if let (_, list) = firstSet(["no_proxy", "NO_PROXY"], in: environment),
           bypasses(list, host: host, port: portNumber) {
            return nil
        }
        return proxy
    }

    /// Whether the NO_PROXY-style `list` exempts `host` (no brackets) on `port`.
    static func bypasses(_ list: String, host: String, port: Int) -> Bool {
        let target = normalized(host)
        let targetIP = canonicalIP(target)
        for item in list.split(separator: ",") {
            let entry = item.trimmingWhitespace.lowercased()
            if entry.isEmpty { continue }
            if entry == "*" { return true }
            guard let (entryHost, entryPort) = splitHostPort(Substring(entry)) else { continue }
            if let entryPort, Int(entryPort) != port { continue }
            if let targetIP {
                if canonicalIP(normalized(entryHost)) == targetIP { return true }
                continue
            }
            var name = normalized(entryHost)
            if name.hasPrefix("*.") { name.removeFirst(2) } else if name.hasPrefix(".") { name.removeFirst() }
            if name.isEmpty { continue }
            if target == name || target.hasSuffix("." + name) { return true }
        }
        return false
    }

    private static func firstSet(_ names: [String], in environment: [String: String]) -> (String, String)? {
        for name in names {
            if let value = environment[name], !value.trimmingWhitespace.isEmpty { return (name, value) }
        }
        return nil
    }

    /// Lower case, without a trailing dot.
    private static func normalized(_ host: String) -> String {
        var host = host.lowercased()
        if host.hasSuffix(".") { host.removeLast() }
        return host
    }

    /// One spelling per IPv4/IPv6 address ("0:0::1" and "::1" agree), or nil for a name.
    private static func canonicalIP(_ host: String) -> String? {
        guard host != "localhost", let address = try? SocketAddress(host: host, port: 0) else { return nil }
        return address.description
    }
}

/// A proxy setting that cannot be used, and why.
public struct ProxySettingsError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 literal (several colons, no
/// port) split into host (no brackets) and port text; nil if brackets do not close.
private func splitHostPort(_ text: Substring) -> (host: String, port: Substring?)? {
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return nil }
        let host = String(text[text.index(after: text.startIndex)..<close])
        let after = text[text.index(after: close)...]
        if after.isEmpty { return (host, nil) }
        guard after.hasPrefix(":") else { return nil }
        return (host, after.dropFirst())
    }
    let colons = text.count { $0 == ":" }
    guard colons == 1, let colon = text.firstIndex(of: ":") else { return (String(text), nil) }
    return (String(text[..<colon]), text[text.index(after: colon)...])
}

/// Letters, digits, '.', '-', '_' for names; ':' and '%' for IPv6 literals and zones.
private func isHostByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "%"):
        return true
    default:
        return false
    }
}

/// `%XX` sequences decoded as UTF-8; nil for a malformed escape or invalid UTF-8.
private func percentDecoded(_ text: Substring) -> String? {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let byte = iterator.next() {
        guard byte == UInt8(ascii: "%") else {
            bytes.append(byte)
            continue
        }
        guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
        bytes.append(high << 4 | low)
    }
    return String(validating: bytes, as: UTF8.self)
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

private extension StringProtocol {
    var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
