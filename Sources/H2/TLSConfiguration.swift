internal import COpenSSL

/// How one side of a TLS connection proves who it is and checks its peer.
///
/// A plain value: nothing is read from disk until `TLSContext.init`, which is where a
/// missing or unreadable file is reported. The transport's fixed policy is not
/// configurable here: TLS 1.2 or newer, ALPN "h2" required on both sides (a server may
/// accept "http/1.1" too: `acceptsHTTP11`), peer
/// certificates verified, no renegotiation, no session resumption.
public struct TLSConfiguration: Sendable {
    enum Role: Sendable, Equatable {
        case server(clientCAFile: String?, requireClientCertificate: Bool)
        case client(caFile: String?, serverName: String)
    }

    let role: Role
    let certificateChainFile: String?
    let privateKeyFile: String?

    /// Server: also selects ALPN `http/1.1` for a client that offers it but not `h2` (h2 is
    /// always preferred), for an `HTTP2Server` that serves HTTP/1.1 too (one with an
    /// `HTTPHandler`). A client offering neither, or no ALPN at all, still gets the fatal
    /// `no_application_protocol` alert.
    public var acceptsHTTP11 = false

    // Test-only knobs: internal, so nothing outside H2 can weaken the policy above.

    /// Client: the ALPN names offered; empty sends no ALPN extension at all.
    var offeredApplicationProtocols: [String] = [TLSApplicationProtocols.h2]
    /// Server: whether it selects "h2" and rejects clients that do not offer it. `false`
    /// ignores ALPN entirely, standing in for a server that does not speak HTTP/2.
    var negotiatesApplicationProtocol = true
    /// The protocol versions this side accepts.
    var minimumProtocolVersion = TLSProtocolVersion.tls12
    var maximumProtocolVersion = TLSProtocolVersion.tls13

    /// A server presenting the certificate chain in `certificateChainFile` (PEM: leaf
    /// first, then any intermediates; sent exactly as given) with the key in
    /// `privateKeyFile` (PEM).
    ///
    /// With `clientCAFile`, the server asks for a client certificate and verifies any it
    /// gets against those CAs; `requireClientCertificate` makes the handshake fail
    /// without one (mutual TLS), and needs `clientCAFile`.
    public static func server(certificateChainFile: String, privateKeyFile: String,
                              clientCAFile: String? = nil, requireClientCertificate: Bool = false) -> TLSConfiguration {
        TLSConfiguration(role: .server(clientCAFile: clientCAFile, requireClientCertificate: requireClientCertificate),
                         certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
    }

    /// A client that verifies the server against the CAs in `caFile` (PEM), or the
    /// system's default trust store when `caFile` is nil.
    ///
    /// `serverName` is the host name the server's certificate must match (and is sent as
    /// SNI), or an IPv4/IPv6 literal without brackets, which the certificate must list as
    /// an IP address (no SNI is sent for IPs). `certificateChainFile` (leaf first, then
    /// intermediates) and `privateKeyFile`, both or neither, are presented when the server
    /// asks (mutual TLS).
    public static func client(caFile: String?, serverName: String,
                              certificateChainFile: String? = nil, privateKeyFile: String? = nil) -> TLSConfiguration {
        TLSConfiguration(role: .client(caFile: caFile, serverName: serverName),
                         certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
    }

    private init(role: Role, certificateChainFile: String?, privateKeyFile: String?) {
        self.role = role
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }
}

/// TLS protocol versions, for the version bounds a context enforces.
enum TLSProtocolVersion: Comparable, Sendable {
    case tls11, tls12, tls13

    var openSSLValue: Int {
        switch self {
        case .tls11: return Int(TLS1_1_VERSION)
        case .tls12: return Int(TLS1_2_VERSION)
        case .tls13: return Int(TLS1_3_VERSION)
        }
    }
}

/// ALPN protocol lists in their wire form: each name preceded by its one-byte length.
enum TLSApplicationProtocols {
    static let h2 = "h2"
    static let http11 = "http/1.1"

    /// `names` in wire form; nil if a name is empty or longer than 255 bytes.
    static func wireFormat(_ names: [String]) -> [UInt8]? {
        var wire: [UInt8] = []
        for name in names {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else { return nil }
            wire.append(UInt8(bytes.count))
            wire.append(contentsOf: bytes)
        }
        return wire
    }

    /// Where `name` sits in the wire-form `list` a peer sent, or nil if it is absent.
    /// Stops at the first malformed length, so untrusted input cannot read past `list`.
    static func range(of name: String, in list: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        let wanted = Array(name.utf8)
        var index = 0
        while index < list.count {
            let length = Int(list[index])
            let start = index + 1
            guard length > 0, start + length <= list.count else { return nil }
            if length == wanted.count, list[start..<start + length].elementsEqual(wanted) {
                return start..<start + length
            }
            index = start + length
        }
        return nil
    }
}
