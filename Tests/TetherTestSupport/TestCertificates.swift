public import Foundation

/// Throwaway PKI for TLS tests, made with the `openssl` command: EC P-256 keys, certificates
/// valid for one day, PEM files in a fresh temporary directory.
///
/// - `caCert`: the test CA, which signs everything below except `otherCACert`.
/// - `serverCert`/`serverKey`: CN=localhost, SAN DNS:localhost and IP:127.0.0.1, serverAuth.
/// - `clientCert`/`clientKey`: CN=agent-eu-1, SAN DNS:agent-eu-1, clientAuth.
/// - `wrongHostServerCert`/`wrongHostServerKey`: SAN DNS:wrong.example only.
/// - `otherCACert`: a second, unrelated CA that signs nothing here.
///
/// Generated once per test process (`make()` returns the same set every time); the files are
/// read-only for tests and left in the temporary directory.
public struct TestCertificates: Sendable {
    public let directory: URL
    public let caCert: String
    public let serverCert: String
    public let serverKey: String
    public let clientCert: String
    public let clientKey: String
    public let otherCACert: String
    public let wrongHostServerCert: String
    public let wrongHostServerKey: String

    /// The process-wide set, generated on first use.
    /// - Throws: `TestCertificatesError` if `openssl` is missing or fails; `ProcessRunError`.
    public static func make() throws -> TestCertificates {
        try generated.get()
    }

    private static let generated = onShortLivedThread { Result { () throws -> TestCertificates in try generate() } }

    /// Runs `body` on a thread of its own and waits for it.
    /// Foundation's `Process.run` forms a weak reference to the calling thread's `RunLoop`;
    /// on a pool thread that run loop lives to process exit, and LeakSanitizer cannot follow
    /// Swift's encoded side-table pointer to it, so it reports a leak. A thread that exits
    /// takes its run loop, and the side table, with it.
    private static func onShortLivedThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        nonisolated(unsafe) var result: T?
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            result = body()
            finished.signal()
        }
        thread.start()
        finished.wait()
        return result!
    }

    private static let openssl = URL(fileURLWithPath: "/usr/bin/openssl")

    private static func generate() throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tether-test-certificates-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

        try makeCA(named: "Tether Test CA", key: path("ca.key"), cert: path("ca.pem"), in: directory)
        try makeCA(named: "Unrelated Test CA", key: path("other-ca.key"), cert: path("other-ca.pem"), in: directory)
        try makeLeaf(commonName: "localhost", subjectAltName: "DNS:localhost,IP:127.0.0.1", usage: "serverAuth",
                     key: path("server.key"), cert: path("server.pem"), caKey: path("ca.key"), caCert: path("ca.pem"),
                     serial: 2, in: directory)
        try makeLeaf(commonName: "agent-eu-1", subjectAltName: "DNS:agent-eu-1", usage: "clientAuth",
                     key: path("client.key"), cert: path("client.pem"), caKey: path("ca.key"), caCert: path("ca.pem"),
                     serial: 3, in: directory)
        try makeLeaf(commonName: "wrong.example", subjectAltName: "DNS:wrong.example", usage: "serverAuth",
                     key: path("wrong-host.key"), cert: path("wrong-host.pem"), caKey: path("ca.key"),
                     caCert: path("ca.pem"), serial: 4, in: directory)

        return TestCertificates(
            directory: directory, caCert: path("ca.pem"),
            serverCert: path("server.pem"), serverKey: path("server.key"),
            clientCert: path("client.pem"), clientKey: path("client.key"),
            otherCACert: path("other-ca.pem"),
            wrongHostServerCert: path("wrong-host.pem"), wrongHostServerKey: path("wrong-host.key"))
    }

    private static func makeCA(named name: String, key: String, cert: String, in directory: URL) throws {
        let config = directory.appendingPathComponent("\(URL(fileURLWithPath: cert).lastPathComponent).cnf")
        try """
        [req]
        distinguished_name = dn
        prompt = no
        [dn]
        CN = \(name)
        [ca]
        basicConstraints = critical,CA:TRUE
        keyUsage = critical,keyCertSign,cRLSign
        subjectKeyIdentifier = hash
        """.write(to: config, atomically: true, encoding: .utf8)
        try generateKey(key, in: directory)
        try openssl(["req", "-x509", "-new", "-key", key, "-config", config.path, "-extensions", "ca",
                     "-days", "1", "-sha256", "-out", cert], in: directory)
    }

    private static func makeLeaf(commonName: String, subjectAltName: String, usage: String,
                                 key: String, cert: String, caKey: String, caCert: String,
                                 serial: Int, in directory: URL) throws {
        let extensions = directory.appendingPathComponent("\(URL(fileURLWithPath: cert).lastPathComponent).ext")
        try """
        basicConstraints = critical,CA:FALSE
        keyUsage = critical,digitalSignature
        extendedKeyUsage = \(usage)
        subjectAltName = \(subjectAltName)
        authorityKeyIdentifier = keyid
        """.write(to: extensions, atomically: true, encoding: .utf8)
        let request = directory.appendingPathComponent("\(URL(fileURLWithPath: cert).lastPathComponent).csr").path
        try generateKey(key, in: directory)
        try openssl(["req", "-new", "-key", key, "-subj", "/CN=\(commonName)", "-out", request], in: directory)
        try openssl(["x509", "-req", "-in", request, "-CA", caCert, "-CAkey", caKey, "-set_serial", "\(serial)",
                     "-days", "1", "-sha256", "-extfile", extensions.path, "-out", cert], in: directory)
    }

    private static func generateKey(_ key: String, in directory: URL) throws {
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key], in: directory)
    }

    private static func openssl(_ arguments: [String], in directory: URL) throws {
        let result = try runProcess(openssl, arguments, cwd: directory)
        guard result.status == 0 else {
            throw TestCertificatesError(command: "openssl " + arguments.joined(separator: " "),
                                        status: result.status, stderr: result.stderr)
        }
    }
}

/// An `openssl` command that failed while making `TestCertificates`.
public struct TestCertificatesError: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let stderr: String
    public var description: String { "\(command) exited with \(status): \(stderr)" }
}
