internal import COpenSSL

/// One OpenSSL `SSL_CTX`: certificates, trust anchors and the transport's TLS policy,
/// loaded once per listener or per client configuration and shared by every
/// `TLSSession` made from it.
///
/// Threading: immutable after `init`, so any thread may create sessions from it at the
/// same time (OpenSSL locks the context's reference count). Sessions keep it alive.
public final class TLSContext: @unchecked Sendable {
    let configuration: TLSConfiguration
    /// The `SSL_CTX`; owned, freed in `deinit`.
    let handle: OpaquePointer

    /// Builds the context and loads every file `configuration` names.
    ///
    /// - Throws: `TLSError` naming the file and OpenSSL's reason when a certificate, key
    ///   or CA file is missing or unparsable, or the key does not match the certificate;
    ///   or naming the setting when `configuration` is inconsistent (a client certificate
    ///   without its key; a required client certificate without a client CA file).
    public init(_ configuration: TLSConfiguration) throws(TLSError) {
        Self.initializeOpenSSL
        let isServer: Bool
        if case .server = configuration.role { isServer = true } else { isServer = false }
        let context = try checkOpenSSL(SSL_CTX_new(isServer ? TLS_server_method() : TLS_client_method()),
                                       "creating an OpenSSL SSL_CTX")
        do throws(TLSError) {
            try Self.applyPolicy(configuration, to: context)
            try Self.loadIdentity(configuration, into: context)
            switch configuration.role {
            case .server(let clientCAFile, let requireClientCertificate):
                try Self.configureServer(context, configuration: configuration,
                                         clientCAFile: clientCAFile, requireClientCertificate: requireClientCertificate)
            case .client(let caFile, let serverName):
                try Self.configureClient(context, configuration: configuration, caFile: caFile, serverName: serverName)
            }
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        self.configuration = configuration
        self.handle = context
    }

    deinit {
        SSL_CTX_free(handle)
    }

    /// OpenSSL's process-wide setup, before the first `SSL_CTX` (every OpenSSL object this
    /// layer makes comes from one), so it decides how OpenSSL initializes.
    ///
    /// Without exit-time cleanup (`OPENSSL_INIT_NO_ATEXIT`). By default OpenSSL frees its
    /// global and per-thread state in an `atexit` handler, which races every thread still
    /// running or ending while the process exits: an event loop freeing its last session,
    /// or its thread's error queue (glibc's "double free or corruption"; openssl/openssl
    /// issue 6214). The process is ending: the kernel takes the memory back.
    /// (A failure here shows as `SSL_CTX_new`'s.)
    private static let initializeOpenSSL: Void = { _ = OPENSSL_init_ssl(UInt64(OPENSSL_INIT_NO_ATEXIT), nil) }()

    /// Versions, buffer modes, renegotiation and session caching: the same on both sides.
    private static func applyPolicy(_ configuration: TLSConfiguration, to context: OpaquePointer) throws(TLSError) {
        let minimum = configuration.minimumProtocolVersion, maximum = configuration.maximumProtocolVersion
        try checkOpenSSL(SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, minimum.openSSLValue, nil) == 1,
                         "setting the minimum TLS version")
        try checkOpenSSL(SSL_CTX_ctrl(context, SSL_CTRL_SET_MAX_PROTO_VERSION, maximum.openSSLValue, nil) == 1,
                         "setting the maximum TLS version")
        if minimum < .tls12 {
            // Test-only: TLS 1.0/1.1 sign handshakes with SHA-1/MD5, which OpenSSL 3 refuses
            // at security level 1 and above (Debian's default is 2).
            try checkOpenSSL(SSL_CTX_set_cipher_list(context, "DEFAULT:@SECLEVEL=0"), "allowing legacy TLS ciphers")
        }

        // Small idle connections: buffers are freed while idle. Non-blocking writes: a
        // write may complete part of the data, and may be retried from a moved buffer.
        // No auto chain: the chain file is exactly what is sent, rather than OpenSSL adding
        // certificates from this side's trust store (on a server, the client CA file).
        let mode = Int(SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                       | SSL_MODE_NO_AUTO_CHAIN)
        try checkOpenSSL(SSL_CTX_ctrl(context, SSL_CTRL_MODE, mode, nil) & mode == mode, "setting SSL modes")

        // No read-ahead: OpenSSL takes exactly one record off the socket per read, so a
        // read into a buffer of at least one full record (16 KiB) leaves nothing inside the
        // session and level-triggered readiness stays exact. Read-ahead would save one
        // read() per record but hide bytes from epoll (e.g. data sent right behind the peer's
        // Finished, swallowed by the handshake). SET returns the previous setting; GET checks.
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_READ_AHEAD, 0, nil)
        try checkOpenSSL(SSL_CTX_ctrl(context, SSL_CTRL_GET_READ_AHEAD, 0, nil) == 0, "disabling read-ahead")

        // SSL_CTX_set_options returns the options now in force.
        let options = tether_ssl_options_no_renegotiation_no_ticket()
        try checkOpenSSL(SSL_CTX_set_options(context, options) & options == options,
                         "disabling renegotiation and session tickets")
        // Connections are long-lived: no TLS 1.3 tickets and no server-side session cache,
        // so nothing per connection outlives it.
        try checkOpenSSL(SSL_CTX_set_num_tickets(context, 0), "disabling TLS 1.3 session tickets")
        // SSL_CTRL_SET_SESS_CACHE_MODE returns the previous mode; read it back to check.
        _ = SSL_CTX_ctrl(context, SSL_CTRL_SET_SESS_CACHE_MODE, Int(SSL_SESS_CACHE_OFF), nil)
        try checkOpenSSL(SSL_CTX_ctrl(context, SSL_CTRL_GET_SESS_CACHE_MODE, 0, nil) == Int(SSL_SESS_CACHE_OFF),
                         "disabling the session cache")
    }

    /// The certificate chain and private key this side presents, if any.
    private static func loadIdentity(_ configuration: TLSConfiguration, into context: OpaquePointer) throws(TLSError) {
        switch (configuration.certificateChainFile, configuration.privateKeyFile) {
        case (nil, nil):
            return
        case (let chain?, let key?):
            try checkOpenSSL(SSL_CTX_use_certificate_chain_file(context, chain), "loading certificate chain from \(chain)")
            try checkOpenSSL(SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM), "loading private key from \(key)")
            try checkOpenSSL(SSL_CTX_check_private_key(context),
                             "checking that private key \(key) matches certificate \(chain)")
        case (let chain?, nil):
            throw TLSError("configuring certificate \(chain)", reason: "a certificate chain needs its private key file")
        case (nil, let key?):
            throw TLSError("configuring private key \(key)", reason: "a private key needs its certificate chain file")
        }
    }

    private static func configureServer(_ context: OpaquePointer, configuration: TLSConfiguration,
                                        clientCAFile: String?, requireClientCertificate: Bool) throws(TLSError) {
        if let clientCAFile {
            try checkOpenSSL(SSL_CTX_load_verify_file(context, clientCAFile),
                             "loading client CA certificates from \(clientCAFile)")
            // The CA names sent in CertificateRequest, so a client can pick its certificate.
            let names = try checkOpenSSL(SSL_load_client_CA_file(clientCAFile),
                                         "reading client CA names from \(clientCAFile)")
            SSL_CTX_set_client_CA_list(context, names) // the context takes ownership of `names`
            let mode = SSL_VERIFY_PEER | (requireClientCertificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0)
            SSL_CTX_set_verify(context, mode, nil)
        } else if requireClientCertificate {
            throw TLSError("configuring the TLS server", reason: "requireClientCertificate needs a clientCAFile")
        }
        if configuration.negotiatesApplicationProtocol {
            SSL_CTX_set_client_hello_cb(context, tlsRejectClientHelloWithoutALPN, nil)
            if configuration.acceptsHTTP11 {
                SSL_CTX_set_alpn_select_cb(context, tlsSelectH2OrHTTP11, nil)
            } else {
                SSL_CTX_set_alpn_select_cb(context, tlsSelectH2, nil)
            }
        }
    }

    private static func configureClient(_ context: OpaquePointer, configuration: TLSConfiguration,
                                        caFile: String?, serverName: String) throws(TLSError) {
        guard !serverName.isEmpty else {
            throw TLSError("configuring the TLS client", reason: "serverName is empty")
        }
        if let caFile {
            try checkOpenSSL(SSL_CTX_load_verify_file(context, caFile), "loading CA certificates from \(caFile)")
        } else {
            try checkOpenSSL(SSL_CTX_set_default_verify_paths(context), "loading the system's default CA certificates")
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        let offered = configuration.offeredApplicationProtocols
        if !offered.isEmpty {
            guard let wire = TLSApplicationProtocols.wireFormat(offered) else {
                throw TLSError("configuring ALPN", reason: "invalid protocol name in \(offered)")
            }
            // Unlike most of OpenSSL, SSL_CTX_set_alpn_protos returns 0 on success.
            try checkOpenSSL(SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) == 0, "setting ALPN protocols \(offered)")
        }
    }
}

/// Server ALPN selection: picks "h2" from the client's list, or fails the handshake with a
/// no_application_protocol alert. `offered` lives as long as the handshake, so pointing
/// `selected` into it is what OpenSSL expects.
private func tlsSelectH2(_ ssl: OpaquePointer?,
                         _ selected: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
                         _ selectedLength: UnsafeMutablePointer<UInt8>?,
                         _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32,
                         _ argument: UnsafeMutableRawPointer?) -> Int32 {
    tlsSelect([TLSApplicationProtocols.h2], selected, selectedLength, offered, offeredLength)
}

/// As `tlsSelectH2`, falling back to "http/1.1" when the client offers it but not "h2"
/// (`TLSConfiguration.acceptsHTTP11`).
private func tlsSelectH2OrHTTP11(_ ssl: OpaquePointer?,
                                 _ selected: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
                                 _ selectedLength: UnsafeMutablePointer<UInt8>?,
                                 _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32,
                                 _ argument: UnsafeMutableRawPointer?) -> Int32 {
    tlsSelect([TLSApplicationProtocols.h2, TLSApplicationProtocols.http11], selected, selectedLength, offered, offeredLength)
}

/// The first of `preferred` the client offered, or the fatal alert.
private func tlsSelect(_ preferred: [String],
                       _ selected: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
                       _ selectedLength: UnsafeMutablePointer<UInt8>?,
                       _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32) -> Int32 {
    guard let selected, let selectedLength, let offered else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let list = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
    for name in preferred {
        guard let range = TLSApplicationProtocols.range(of: name, in: list) else { continue }
        selected.pointee = offered + range.lowerBound
        selectedLength.pointee = UInt8(range.count)
        return SSL_TLSEXT_ERR_OK
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// OpenSSL calls the ALPN callback only when the client sent the ALPN extension; this
/// ClientHello callback fails the handshake (no_application_protocol) when it did not,
/// and leaves a readable reason on the error queue for the server's `TLSError`.
private func tlsRejectClientHelloWithoutALPN(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?,
                                             _ argument: UnsafeMutableRawPointer?) -> Int32 {
    var data: UnsafePointer<UInt8>?
    var length = 0
    if SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_application_layer_protocol_negotiation), &data, &length) == 1 {
        return SSL_CLIENT_HELLO_SUCCESS
    }
    alert?.pointee = SSL_AD_NO_APPLICATION_PROTOCOL
    ERR_new()
    ERR_set_debug(nil, 0, "tlsRejectClientHelloWithoutALPN")
    withVaList([]) { ERR_vset_error(ERR_LIB_SSL, SSL_R_NO_APPLICATION_PROTOCOL, "client offered no ALPN; h2 is required", $0) }
    return SSL_CLIENT_HELLO_ERROR
}
