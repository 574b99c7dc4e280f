#if canImport(Glibc)
internal import Glibc
#endif
internal import COpenSSL

/// Who a verified peer certificate names: what authorization decisions are made on.
public struct TLSPeerIdentity: Sendable, Equatable {
    /// The subject's first common name (CN), if it has one.
    public let subjectCommonName: String?
    /// The subjectAltName entries of DNS and IP types, in certificate order; IPs in their
    /// usual text form ("127.0.0.1", "::1"). Other types (email, URI) are left out.
    public let subjectAlternativeNames: [String]

    public init(subjectCommonName: String?, subjectAlternativeNames: [String]) {
        self.subjectCommonName = subjectCommonName
        self.subjectAlternativeNames = subjectAlternativeNames
    }

    /// Reads `certificate` (an `X509 *` borrowed from the session, not retained).
    init(certificate: OpaquePointer) {
        self.init(subjectCommonName: Self.commonName(of: certificate),
                  subjectAlternativeNames: Self.alternativeNames(of: certificate))
    }

    private static func commonName(of certificate: OpaquePointer) -> String? {
        guard let subject = X509_get_subject_name(certificate) else { return nil }
        let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(subject, index),
              let value = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&utf8, value)
        guard length >= 0, let utf8 else { return nil }
        defer { CRYPTO_free(utf8, nil, 0) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    private static func alternativeNames(of certificate: OpaquePointer) -> [String] {
        guard let decoded = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) else { return [] }
        let names = OpaquePointer(decoded) // GENERAL_NAMES *, owned here
        defer { GENERAL_NAMES_free(names) }
        var result: [String] = []
        for index in 0..<OPENSSL_sk_num(names) {
            guard let name = OPENSSL_sk_value(names, index)?.assumingMemoryBound(to: GENERAL_NAME.self).pointee else { continue }
            switch name.type {
            case GEN_DNS:
                if let value = name.d.dNSName { result.append(String(decoding: contents(of: value), as: UTF8.self)) }
            case GEN_IPADD:
                if let value = name.d.iPAddress, let text = ipAddressText(contents(of: value)) { result.append(text) }
            default:
                continue
            }
        }
        return result
    }

    private static func contents(of string: UnsafeMutablePointer<ASN1_STRING>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: ASN1_STRING_get0_data(string), count: Int(ASN1_STRING_length(string)))
    }

    /// An iPAddress SAN (4 or 16 bytes in network order) as text.
    private static func ipAddressText(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return nil
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(family, bytes.baseAddress, &text, socklen_t(text.count)) != nil else { return nil }
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
