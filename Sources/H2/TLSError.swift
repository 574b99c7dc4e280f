internal import COpenSSL

/// A failed TLS operation: what this layer was doing, and why OpenSSL (or this layer's
/// policy) refused.
///
/// Only the TLS layer creates these, on the thread that made the failing OpenSSL call.
/// Creating one drains that thread's OpenSSL error queue, so the next call starts clean
/// and `SSL_get_error` never sees a stale entry.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    /// What was being done, naming the file or peer involved,
    /// e.g. "loading private key from /etc/tether/server.key".
    public let operation: String
    /// This layer's own explanation, when OpenSSL's queue alone would not say it:
    /// a policy failure ("server did not select ALPN protocol h2"), a peer that closed
    /// mid-handshake, or the errno text of a failed socket call.
    public let reason: String?
    /// Why certificate verification failed (`X509_verify_cert_error_string`), when it did,
    /// e.g. "hostname mismatch" or "unable to get local issuer certificate".
    public let certificateVerificationFailure: String?
    /// OpenSSL's error queue at the failure, oldest first: `ERR_error_string_n` text, plus
    /// the detail OpenSSL attached (such as the `fopen` call) after a colon.
    public let openSSLErrors: [String]

    /// Records a failure and drains the calling thread's OpenSSL error queue into it.
    init(_ operation: String, reason: String? = nil, certificateVerificationFailure: String? = nil) {
        self.operation = operation
        self.reason = reason
        self.certificateVerificationFailure = certificateVerificationFailure
        self.openSSLErrors = TLSError.drainErrorQueue()
    }

    public var description: String {
        var text = "\(operation) failed"
        if let reason { text += ": \(reason)" }
        if let certificateVerificationFailure { text += ": certificate verification failed: \(certificateVerificationFailure)" }
        if !openSSLErrors.isEmpty { text += " [\(openSSLErrors.joined(separator: "; "))]" }
        return text
    }

    private static func drainErrorQueue() -> [String] {
        var entries: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            var data: UnsafePointer<CChar>?
            var flags: Int32 = 0
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { return entries }
            ERR_error_string_n(code, &buffer, buffer.count)
            var entry = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if flags & ERR_TXT_STRING != 0, let data, data.pointee != 0 {
                entry += " (\(String(cString: data)))"
            }
            entries.append(entry)
        }
    }
}

/// The one check every OpenSSL return code in this layer goes through: throws a
/// `TLSError` naming `operation` and carrying OpenSSL's drained error queue.
/// `succeeded` is the call's own success test, since OpenSSL's conventions differ
/// (most return 1; `SSL_CTX_set_alpn_protos` returns 0; constructors return a pointer).
@inline(__always)
func checkOpenSSL(_ succeeded: Bool, _ operation: @autoclosure () -> String) throws(TLSError) {
    if !succeeded { throw TLSError(operation()) }
}

/// `checkOpenSSL` for the common convention: 1 is success, anything else failure.
@inline(__always)
func checkOpenSSL(_ returnCode: Int32, _ operation: @autoclosure () -> String) throws(TLSError) {
    try checkOpenSSL(returnCode == 1, operation())
}

/// `checkOpenSSL` for constructors: a null pointer is failure; returns the non-null handle.
@inline(__always)
func checkOpenSSL(_ handle: OpaquePointer?, _ operation: @autoclosure () -> String) throws(TLSError) -> OpaquePointer {
    guard let handle else { throw TLSError(operation()) }
    return handle
}
