#if canImport(Glibc)
internal import Glibc
#endif
internal import COpenSSL

/// One TLS connection over a non-blocking socket: an OpenSSL `SSL` reading and writing the
/// socket directly (`SSL_set_fd`).
///
/// Threading: owned and used by one event-loop thread; not `Sendable`. OpenSSL's error
/// queue is per thread, so every call must happen on that thread.
///
/// Lifecycle: `handshake()` until `.done`, then `read`/`write` until `read` returns
/// `.closed` or a call throws, then optionally `shutdown()`. A throw from OpenSSL or the
/// socket ends the session (later calls throw too): the caller closes the connection. The
/// session does not own the descriptor and never closes it; close it once no further call
/// will be made.
///
/// Non-blocking contract: `.wantRead`/`.wantWrite` name the readiness to wait for before
/// repeating the *same* call. Either call may want either direction: TLS 1.3 `read` may
/// need to write (a KeyUpdate reply), and `write` may need to read. Read-ahead is off, so
/// the session takes one record at a time off the socket: with a read buffer of at least
/// `TLSSession.maximumRecordPayload` bytes, no received data waits inside the session once
/// `read` returns, and level-triggered readiness of the socket tells whether more is there
/// (also right after the handshake). With a smaller buffer, read until `.wantRead`.
public final class TLSSession {
    /// The most application data one TLS record carries: a `read` buffer at least this
    /// large never leaves received data waiting inside the session.
    public static let maximumRecordPayload = 16 * 1024

    /// What a `handshake()` call achieved.
    public enum Progress: Equatable {
        case done, wantRead, wantWrite
    }

    /// What a `read` call achieved. `.closed` is the end of the peer's data: a clean
    /// close_notify, or EOF without one (see `peerClosedWithoutCloseNotify`).
    public enum ReadResult: Equatable {
        case bytes(Int), wantRead, wantWrite, closed
    }

    /// What a `write` call achieved. `.wrote(n)` may be less than asked (partial write).
    public enum WriteResult: Equatable {
        case wrote(Int), wantRead, wantWrite
    }

    private enum State {
        case handshaking
        case established
        /// The peer's data ended; `cleanly` if it sent close_notify.
        case inputClosed(cleanly: Bool)
        /// OpenSSL reported a fatal error; no further call may reach it.
        case failed
    }

    /// The `SSL`; owned, freed in `deinit`. It holds its own reference to the `SSL_CTX`.
    private let handle: OpaquePointer
    private let context: TLSContext
    private var state = State.handshaking

    /// Binds a new TLS session to `fileDescriptor`, a connected non-blocking stream
    /// socket, on the server or client side as `context` was configured. A client session
    /// also sets SNI and the name or IP its server's certificate must match.
    ///
    /// - Throws: `TLSError` if OpenSSL cannot allocate or configure the session.
    public init(context: TLSContext, fileDescriptor: Int32) throws(TLSError) {
        let ssl = try checkOpenSSL(SSL_new(context.handle), "creating an OpenSSL SSL session")
        do throws(TLSError) {
            try checkOpenSSL(SSL_set_fd(ssl, fileDescriptor), "binding the TLS session to socket \(fileDescriptor)")
            switch context.configuration.role {
            case .server:
                SSL_set_accept_state(ssl)
            case .client(_, let serverName):
                SSL_set_connect_state(ssl)
                try Self.expectServer(named: serverName, on: ssl)
            }
        } catch {
            SSL_free(ssl)
            throw error
        }
        self.handle = ssl
        self.context = context
    }

    deinit {
        SSL_free(handle)
    }

    /// Advances the handshake as far as the socket allows.
    ///
    /// Returns `.done` once the handshake is complete (and on every later call). Data the
    /// peer sent right behind its last handshake message is still on the socket.
    /// - Throws: `TLSError` when the handshake fails: an untrusted or expired certificate,
    ///   a name or IP mismatch, a missing required client certificate, no common protocol
    ///   version (below TLS 1.2) or cipher, no ALPN agreement on "h2", or a peer that
    ///   closed the connection or the socket failing. The failing side sends an alert when
    ///   OpenSSL detected the failure; a client whose server did not select h2 sends none.
    public func handshake() throws(TLSError) -> Progress {
        switch state {
        case .handshaking: break
        case .established, .inputClosed: return .done
        case .failed: throw TLSError(handshakeOperation, reason: "the session already failed")
        }
        ERR_clear_error()
        errno = 0
        let result = SSL_do_handshake(handle)
        let savedErrno = errno
        if result == 1 {
            try requireNegotiatedH2()
            state = .established
            return .done
        }
        switch try outcome(of: result, errno: savedErrno, operation: handshakeOperation) {
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .closed:
            state = .failed
            throw TLSError(handshakeOperation, reason: "the peer closed the connection during the handshake")
        }
    }

    /// Decrypts the next record into `buffer` (not empty): one record's data per call, and
    /// when `buffer` is smaller than the record, the rest waits for the next call.
    ///
    /// Returns `.closed` once the peer's data has ended, on this and every later call.
    /// - Throws: `TLSError` if called before the handshake is done or after a failure, on a
    ///   fatal alert from the peer (e.g. it rejected our certificate after a TLS 1.3
    ///   handshake completed on our side), corrupt records, or a socket error such as
    ///   ECONNRESET.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> ReadResult {
        precondition(!buffer.isEmpty, "TLSSession.read needs a non-empty buffer")
        switch state {
        case .handshaking: throw TLSError("TLS read", reason: "the handshake is not complete")
        case .failed: throw TLSError("TLS read", reason: "the session already failed")
        case .inputClosed: return .closed
        case .established: break
        }
        ERR_clear_error()
        errno = 0
        var count = 0
        let result = SSL_read_ex(handle, buffer.baseAddress, buffer.count, &count)
        let savedErrno = errno
        if result == 1 { return .bytes(count) }
        switch try outcome(of: Int32(result), errno: savedErrno, operation: "TLS read") {
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .closed(let cleanly):
            state = .inputClosed(cleanly: cleanly)
            return .closed
        }
    }

    /// Encrypts and sends a prefix of `bytes`; `.wrote(n)` says how long.
    ///
    /// After `.wantRead`/`.wantWrite`, the next `write` must repeat the same bytes (it may
    /// pass them from another address, and append more). Writing after the peer's clean
    /// close_notify is allowed (half-close).
    /// - Throws: `TLSError` if called before the handshake is done, after `shutdown()`, after
    ///   the peer's data ended without close_notify, after a failure, or when the socket
    ///   fails (e.g. EPIPE once the peer has gone).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) -> WriteResult {
        switch state {
        case .handshaking: throw TLSError("TLS write", reason: "the handshake is not complete")
        case .failed: throw TLSError("TLS write", reason: "the session already failed")
        case .inputClosed(cleanly: false):
            throw TLSError("TLS write", reason: "the peer closed the connection without close_notify")
        case .established, .inputClosed(cleanly: true): break
        }
        if SSL_get_shutdown(handle) & SSL_SENT_SHUTDOWN != 0 {
            throw TLSError("TLS write", reason: "shutdown() already sent close_notify")
        }
        if bytes.isEmpty { return .wrote(0) }
        ERR_clear_error()
        errno = 0
        var count = 0
        let result = SSL_write_ex(handle, bytes.baseAddress, bytes.count, &count)
        let savedErrno = errno
        if result == 1 { return .wrote(count) }
        switch try outcome(of: Int32(result), errno: savedErrno, operation: "TLS write") {
        case .wantRead: return .wantRead
        case .wantWrite: return .wantWrite
        case .closed:
            state = .failed
            throw TLSError("TLS write", reason: "the peer closed the connection")
        }
    }

    /// Sends close_notify if the socket takes it now; never blocks and never throws.
    ///
    /// Best effort: does nothing before the handshake completes, after a failure, after the
    /// peer vanished without close_notify, or on a second call, and does not wait for the
    /// peer's close_notify. The peer's `read` then returns `.closed`; our `read` may still
    /// drain what the peer sent before its own close.
    public func shutdown() {
        switch state {
        case .established, .inputClosed(cleanly: true): break
        case .handshaking, .failed, .inputClosed(cleanly: false): return
        }
        guard SSL_get_shutdown(handle) & SSL_SENT_SHUTDOWN == 0 else { return }
        ERR_clear_error()
        // 0 or 1: close_notify sent. < 0: the socket would block or has failed, and by
        // this method's contract there is nothing more to do either way.
        _ = SSL_shutdown(handle)
        ERR_clear_error()
    }

    /// The ALPN protocol agreed in the handshake: "h2" once it is done, else nil.
    public var negotiatedALPN: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(handle, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The negotiated protocol version, e.g. "TLSv1.3" (before the handshake completes,
    /// the version being attempted).
    public var protocolVersion: String {
        String(cString: SSL_get_version(handle))
    }

    /// The peer's verified certificate identity once the handshake is done: the server's on
    /// a client, the client's on a server that asked for one (mutual TLS). Nil when there
    /// was no certificate or it did not verify.
    public var peerIdentity: TLSPeerIdentity? {
        switch state {
        case .established, .inputClosed: break
        case .handshaking, .failed: return nil
        }
        guard SSL_get_verify_result(handle) == Int(X509_V_OK),
              let certificate = SSL_get0_peer_certificate(handle) else { return nil }
        return TLSPeerIdentity(certificate: certificate)
    }

    /// True once `read` returned `.closed` because the peer's data ended without a
    /// close_notify alert (a bare TCP FIN). HTTP/2 framing makes truncation visible to
    /// the layer above, so the transport may treat it as an ordinary EOF.
    public var peerClosedWithoutCloseNotify: Bool {
        if case .inputClosed(cleanly: false) = state { return true }
        return false
    }

    // MARK: - Internals

    private var handshakeOperation: String {
        switch context.configuration.role {
        case .server: return "TLS handshake with a client"
        case .client(_, let serverName): return "TLS handshake with server \(serverName)"
        }
    }

    /// Client only: SNI (for a host name) and the name or IP the server certificate must
    /// match, checked by OpenSSL during verification.
    private static func expectServer(named serverName: String, on ssl: OpaquePointer) throws(TLSError) {
        if isIPAddressLiteral(serverName) {
            // RFC 6066: SNI carries host names only, never IP literals.
            try checkOpenSSL(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName),
                             "setting the expected server IP address \(serverName)")
            return
        }
        // SSL_set_tlsext_host_name is a macro over SSL_ctrl; OpenSSL copies the name.
        let sniSet = serverName.withCString { name in
            SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: name)) == 1
        }
        try checkOpenSSL(sniSet, "setting SNI server name \(serverName)")
        SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        try checkOpenSSL(SSL_set1_host(ssl, serverName), "setting the expected server host name \(serverName)")
    }

    private static func isIPAddressLiteral(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET, text, &address) == 1 || inet_pton(AF_INET6, text, &address) == 1
    }

    /// Both sides insist on h2: OpenSSL completes a client handshake whose server ignored
    /// ALPN, so the client checks here. (A server normally rejects in its callbacks; this
    /// also covers it.)
    private func requireNegotiatedH2() throws(TLSError) {
        let checks: Bool
        switch context.configuration.role {
        case .client: checks = true
        case .server: checks = context.configuration.negotiatesApplicationProtocol
        }
        let negotiated = negotiatedALPN
        guard checks, negotiated != TLSApplicationProtocols.h2 else { return }
        if case .server = context.configuration.role, context.configuration.acceptsHTTP11,
           negotiated == TLSApplicationProtocols.http11 { return }
        state = .failed
        let peer: String
        if case .client = context.configuration.role { peer = "server did not select" } else { peer = "client did not offer" }
        throw TLSError(handshakeOperation, reason: "\(peer) ALPN protocol h2 (negotiated: \(negotiatedALPN ?? "none"))")
    }

    private enum Outcome {
        case wantRead, wantWrite
        case closed(cleanly: Bool)
    }

    /// The one place `SSL_get_error` is interpreted, right after a failed
    /// `SSL_do_handshake`/`SSL_read_ex`/`SSL_write_ex`. Retryable conditions and end of
    /// input come back; anything else marks the session failed and throws.
    private func outcome(of result: Int32, errno savedErrno: Int32, operation: String) throws(TLSError) -> Outcome {
        let code = SSL_get_error(handle, result)
        switch code {
        case SSL_ERROR_WANT_READ:
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .closed(cleanly: true)
        case SSL_ERROR_SSL where ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING:
            // OpenSSL 3 reports a FIN without close_notify this way. The connection is over;
            // the SSL may not be used again, so it is not shut down either.
            ERR_clear_error()
            return .closed(cleanly: false)
        case SSL_ERROR_SYSCALL:
            if ERR_peek_error() == 0 && savedErrno == 0 {
                return .closed(cleanly: false) // the pre-OpenSSL 3 form of the same EOF
            }
            state = .failed
            throw TLSError(operation, reason: savedErrno == 0 ? nil : "\(String(cString: strerror(savedErrno))) (errno \(savedErrno))")
        case SSL_ERROR_SSL:
            state = .failed
            let verifyResult = SSL_get_verify_result(handle)
            let verification = verifyResult == Int(X509_V_OK) ? nil : String(cString: X509_verify_cert_error_string(verifyResult))
            throw TLSError(operation, certificateVerificationFailure: verification)
        default:
            state = .failed
            throw TLSError(operation, reason: "unexpected SSL_get_error code \(code)")
        }
    }
}

@available(*, unavailable, message: "a TLSSession belongs to one event-loop thread")
extension TLSSession: Sendable {}
