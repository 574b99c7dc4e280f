/// Server URLs as the CLI and agents take them: `https://host[:port]`, or `http://` for
/// plaintext h2c (parsed by `GRPCTarget`).
public enum ServerURL {
    /// What a URL without a port means, for the CLI and agents alike, and where
    /// `tether server` listens by default.
    public static let defaultPort: UInt16 = 7443
}
