internal import CNGHTTP2
internal import COpenSSL

/// Versions of the C libraries the transport runs on, as loaded at run time.
public enum LinkedLibraries {
    /// libnghttp2's version, e.g. "1.52.0".
    public static var nghttp2: String {
        guard let info = nghttp2_version(0) else { return "unknown" }
        return String(cString: info.pointee.version_str)
    }

    /// OpenSSL's version text, e.g. "OpenSSL 3.0.17 1 Jul 2025".
    public static var openSSL: String {
        String(cString: OpenSSL_version(Int32(OPENSSL_VERSION)))
    }
}
