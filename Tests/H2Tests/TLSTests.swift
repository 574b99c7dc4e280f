import Foundation
import Testing
@testable import H2
import COpenSSL
import TetherTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where `openSSLRunsNoCleanupAtProcessExit`'s forked process reports a cleanup: a C handler
/// captures nothing.
nonisolated(unsafe) private var openSSLCleanupProbe: Int32 = -1

/// Both TLS sides in one thread over a non-blocking `socketpair`, driven alternately by hand
/// (no event loop, no sleeps): every wait is a bounded number of turns.
@Suite struct TLSTests {
    let certificates: TestCertificates

    init() throws {
        signal(SIGPIPE, SIG_IGN) // as the event loop does: a write to a closed peer is EPIPE, not death
        certificates = try TestCertificates.make()
    }

    var server: TLSConfiguration {
        .server(certificateChainFile: certificates.serverCert, privateKeyFile: certificates.serverKey)
    }

    var client: TLSConfiguration {
        .client(caFile: certificates.caCert, serverName: "localhost")
    }

    // MARK: - Handshake and data

    @Test func handshakeNegotiatesH2OverTLS13AndIdentifiesTheServer() throws {
        let pair = try TLSPair(client: client, server: server)
        let outcome = pair.handshake()
        try #require(outcome.client == .done && outcome.server == .done, "\(outcome)")
        for session in [pair.client, pair.server] {
            #expect(session.protocolVersion == "TLSv1.3")
            #expect(session.negotiatedALPN == "h2")
        }
        #expect(pair.client.peerIdentity == TLSPeerIdentity(subjectCommonName: "localhost",
                                                            subjectAlternativeNames: ["localhost", "127.0.0.1"]))
        #expect(pair.server.peerIdentity == nil) // no client CA configured: no certificate asked for
        #expect(try pair.client.handshake() == .done) // idempotent once done
    }

    @Test func handshakeNegotiatesH2OverTLS12WithAServerCappedAt12() throws {
        var cappedServer = server
        cappedServer.maximumProtocolVersion = .tls12
        let pair = try TLSPair(client: client, server: cappedServer)
        let outcome = pair.handshake()
        try #require(outcome.client == .done && outcome.server == .done, "\(outcome)")
        #expect(pair.client.protocolVersion == "TLSv1.2")
        #expect(pair.client.negotiatedALPN == "h2")
        #expect(pair.server.negotiatedALPN == "h2")
    }

    @Test func bytesWrittenOnEitherSideAreReadOnTheOther() throws {
        let pair = try TLSPair(client: client, server: server)
        try #require(pair.handshake().bothDone)
        let request = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let response = Array("settings".utf8)
        #expect(try pair.transfer(request, from: pair.client, to: pair.server).received == request)
        #expect(try pair.transfer(response, from: pair.server, to: pair.client).received == response)
    }

    @Test func oneMebibyteMovesBothWaysThroughPartialWritesAndWantWrite() throws {
        let pair = try TLSPair(client: client, server: server)
        try #require(pair.handshake().bothDone)
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for (from, to) in [(pair.client, pair.server), (pair.server, pair.client)] {
            let transfer = try pair.transfer(payload, from: from, to: to)
            #expect(transfer.received == payload)
            // The socket buffer is far smaller than 1 MiB, so the writer had to stop and resume.
            #expect(transfer.wantWrites > 0)
            #expect(transfer.partialWrites > 0)
        }
    }

    /// The contract the level-triggered event loop relies on: bytes the peer sent right
    /// behind its Finished are not swallowed by the handshake (no read-ahead), so the socket
    /// still reports them readable.
    @Test func dataSentRightBehindTheHandshakeStaysVisibleOnTheSocket() throws {
        let pair = try TLSPair(client: client, server: server)
        #expect(try pair.client.handshake() == .wantRead)   // ClientHello
        #expect(try pair.server.handshake() == .wantRead)   // ServerHello ... server Finished
        #expect(try pair.client.handshake() == .done)       // client Finished: a TLS 1.3 client is done first
        let early = Array("HEADERS".utf8)
        #expect(try pair.transfer(early, from: pair.client, to: nil).sent == early.count)
        #expect(try pair.server.handshake() == .done)
        #expect(isReadable(pair.sockets.server))
        var buffer = [UInt8](repeating: 0, count: 64)
        let result = try buffer.withUnsafeMutableBytes { buffer throws(TLSError) in try pair.server.read(into: buffer) }
        #expect(result == .bytes(early.count))
        #expect(Array(buffer[..<early.count]) == early)
    }

    /// Same contract in steady state: reading with a buffer of one full record, nothing
    /// received waits inside the session while the socket looks empty.
    @Test func noReceivedDataHidesInTheSessionWhenReadingWholeRecords() throws {
        let pair = try TLSPair(client: client, server: server)
        try #require(pair.handshake().bothDone)
        let payload = [UInt8](repeating: 0x5A, count: 100_000) // 7 records, fits the socket buffer
        #expect(try pair.transfer(payload, from: pair.client, to: nil).sent == payload.count)
        var buffer = [UInt8](repeating: 0, count: TLSSession.maximumRecordPayload)
        var received = 0
        while received < payload.count {
            try #require(isReadable(pair.sockets.server), "\(payload.count - received) bytes hidden in the session")
            let result = try buffer.withUnsafeMutableBytes { buffer throws(TLSError) in try pair.server.read(into: buffer) }
            guard case .bytes(let count) = result else { Issue.record("read returned \(result)"); return }
            received += count
        }
        #expect(!isReadable(pair.sockets.server))
    }

    private func isReadable(_ fd: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 1
    }

    // MARK: - ALPN

    @Test func serverRejectsAClientOfferingNoALPN() throws {
        var noALPN = client
        noALPN.offeredApplicationProtocols = []
        let outcome = try TLSPair(client: noALPN, server: server).handshake()
        let serverError = try #require(outcome.server.error)
        #expect(serverError.description.contains("no application protocol"))
        #expect(serverError.description.contains("client offered no ALPN"))
        #expect(outcome.client.error?.description.contains("no application protocol") == true) // the alert
    }

    @Test func serverRejectsAClientOfferingOnlyHTTP11() throws {
        var http11 = client
        http11.offeredApplicationProtocols = ["http/1.1"]
        let outcome = try TLSPair(client: http11, server: server).handshake()
        #expect(outcome.server.error?.description.contains("no application protocol") == true)
        #expect(outcome.client.error?.description.contains("no application protocol") == true)
    }

    @Test func serverAcceptingHTTP11SelectsItForAClientWithoutH2() throws {
        var http11 = client
        http11.offeredApplicationProtocols = ["http/1.1"]
        var both = server
        both.acceptsHTTP11 = true
        let pair = try TLSPair(client: http11, server: both)
        let outcome = pair.handshake()
        #expect(outcome.server == .done)
        #expect(pair.server.negotiatedALPN == "http/1.1")
    }

    @Test func serverAcceptingHTTP11StillPrefersH2() throws {
        var http11First = client
        http11First.offeredApplicationProtocols = ["http/1.1", "h2"]
        var both = server
        both.acceptsHTTP11 = true
        let pair = try TLSPair(client: http11First, server: both)
        #expect(pair.handshake().bothDone)
        #expect(pair.server.negotiatedALPN == "h2")
    }

    @Test func serverAcceptingHTTP11RejectsAClientOfferingNeither() throws {
        var other = client
        other.offeredApplicationProtocols = ["spdy/3"]
        var both = server
        both.acceptsHTTP11 = true
        let outcome = try TLSPair(client: other, server: both).handshake()
        #expect(outcome.server.error?.description.contains("no application protocol") == true)
        #expect(outcome.client.error?.description.contains("no application protocol") == true)
        var none = client
        none.offeredApplicationProtocols = []
        let withoutALPN = try TLSPair(client: none, server: both).handshake()
        #expect(withoutALPN.server.error?.description.contains("client offered no ALPN") == true)
    }

    @Test func clientRejectsAServerThatDoesNotSelectH2() throws {
        var notH2 = server
        notH2.negotiatesApplicationProtocol = false
        let outcome = try TLSPair(client: client, server: notH2).handshake()
        let clientError = try #require(outcome.client.error)
        #expect(clientError.reason == "server did not select ALPN protocol h2 (negotiated: none)")
    }

    // MARK: - Server verification

    @Test func clientRejectsAServerCertificateForAnotherHost() throws {
        let wrongHost = TLSConfiguration.server(certificateChainFile: certificates.wrongHostServerCert,
                                                privateKeyFile: certificates.wrongHostServerKey)
        let outcome = try TLSPair(client: client, server: wrongHost).handshake()
        let clientError = try #require(outcome.client.error)
        #expect(clientError.certificateVerificationFailure == "hostname mismatch")
        #expect(clientError.description.contains("TLS handshake with server localhost"))
        #expect(outcome.server.error != nil) // it received the client's alert
    }

    @Test func clientRejectsAServerSignedByAnUnknownCA() throws {
        let trustsOtherCA = TLSConfiguration.client(caFile: certificates.otherCACert, serverName: "localhost")
        let outcome = try TLSPair(client: trustsOtherCA, server: server).handshake()
        let clientError = try #require(outcome.client.error)
        #expect(clientError.certificateVerificationFailure == "unable to get local issuer certificate")
    }

    @Test func clientChecksAnIPAddressServerNameAgainstTheCertificateIPs() throws {
        let byIP = TLSConfiguration.client(caFile: certificates.caCert, serverName: "127.0.0.1")
        #expect(try TLSPair(client: byIP, server: server).handshake().bothDone)

        let otherIP = TLSConfiguration.client(caFile: certificates.caCert, serverName: "127.0.0.2")
        let outcome = try TLSPair(client: otherIP, server: server).handshake()
        #expect(outcome.client.error?.certificateVerificationFailure == "IP address mismatch")
    }

    // MARK: - Protocol versions

    /// OpenSSL 3 can still speak TLS 1.1 once the security level is lowered to 0 (test-only
    /// knob), so the refusal below is the client's minimum version at work, not a server
    /// that cannot handshake at all: this control proves the 1.1 server is a real one.
    @Test func aTLS11ServerIsRealWhenTheClientAlsoAllowsTLS11() throws {
        var legacyClient = client
        legacyClient.minimumProtocolVersion = .tls11
        let pair = try TLSPair(client: legacyClient, server: tls11Server)
        try #require(pair.handshake().bothDone)
        #expect(pair.client.protocolVersion == "TLSv1.1")
    }

    @Test func clientRefusesATLS11Server() throws {
        let outcome = try TLSPair(client: client, server: tls11Server).handshake()
        // Our client offers only 1.3 and 1.2 (supported_versions), so an OpenSSL server capped
        // at 1.1 finds no common version and alerts; the client fails with that alert.
        let serverError = try #require(outcome.server.error)
        #expect(serverError.description.contains("unsupported protocol"))
        #expect(outcome.client.error?.description.contains("alert protocol version") == true)
    }

    /// A genuinely old server ignores supported_versions and answers with a 1.1 ServerHello
    /// (OpenSSL only does that through deprecated fixed-version methods, so it is written by
    /// hand here): the client must refuse it rather than go along.
    @Test func clientRefusesATLS11ServerHello() throws {
        let sockets = try SocketPair()
        let session = try TLSSession(context: TLSContext(client), fileDescriptor: sockets.client)
        #expect(try session.handshake() == .wantRead) // ClientHello sent, left unread
        let body: [UInt8] = [0x03, 0x02]                            // server_version TLS 1.1
            + [UInt8](repeating: 0x42, count: 32)                   // random (no downgrade sentinel)
            + [0x00]                                                // empty session id
            + [0xC0, 0x09]                                          // ECDHE-ECDSA-AES128-SHA
            + [0x00]                                                // no compression
        let message: [UInt8] = [0x02, 0x00, 0x00, UInt8(body.count)] + body // ServerHello
        let record: [UInt8] = [0x16, 0x03, 0x02, 0x00, UInt8(message.count)] + message
        #expect(Glibc.write(sockets.server, record, record.count) == record.count)
        let error = #expect(throws: TLSError.self) { _ = try session.handshake() }
        #expect(error?.description.contains("unsupported protocol") == true)
    }

    @Test func serverRefusesATLS11Client() throws {
        var legacyClient = client
        legacyClient.minimumProtocolVersion = .tls11
        legacyClient.maximumProtocolVersion = .tls11
        let outcome = try TLSPair(client: legacyClient, server: server).handshake()
        let serverError = try #require(outcome.server.error)
        #expect(serverError.description.contains("unsupported protocol"))
        #expect(outcome.client.error != nil)
    }

    private var tls11Server: TLSConfiguration {
        var legacy = server
        legacy.minimumProtocolVersion = .tls11
        legacy.maximumProtocolVersion = .tls11
        return legacy
    }

    // MARK: - Mutual TLS

    @Test func serverRequiringAClientCertificateRejectsAClientWithoutOne() throws {
        let pair = try TLSPair(client: client, server: mutualTLSServer(clientCA: certificates.caCert))
        let outcome = pair.handshake()
        let serverError = try #require(outcome.server.error)
        #expect(serverError.description.contains("peer did not return a certificate"))
        // TLS 1.3: the client finished first and learns of the rejection on its next read.
        #expect(outcome.client == .done)
        var buffer = [UInt8](repeating: 0, count: 64)
        let error = #expect(throws: TLSError.self) {
            _ = try buffer.withUnsafeMutableBytes { buffer throws(TLSError) in try pair.client.read(into: buffer) }
        }
        #expect(error?.description.contains("certificate required") == true)
    }

    @Test func serverRejectsAClientCertificateFromAnUnknownCA() throws {
        let outcome = try TLSPair(client: mutualTLSClient, server: mutualTLSServer(clientCA: certificates.otherCACert))
            .handshake()
        let serverError = try #require(outcome.server.error)
        #expect(serverError.certificateVerificationFailure == "unable to get local issuer certificate")
    }

    @Test func serverSeesTheVerifiedClientIdentityOverMutualTLS() throws {
        let pair = try TLSPair(client: mutualTLSClient, server: mutualTLSServer(clientCA: certificates.caCert))
        try #require(pair.handshake().bothDone)
        #expect(pair.server.peerIdentity == TLSPeerIdentity(subjectCommonName: "agent-eu-1",
                                                            subjectAlternativeNames: ["agent-eu-1"]))
        #expect(pair.client.peerIdentity?.subjectCommonName == "localhost")
    }

    private func mutualTLSServer(clientCA: String) -> TLSConfiguration {
        .server(certificateChainFile: certificates.serverCert, privateKeyFile: certificates.serverKey,
                clientCAFile: clientCA, requireClientCertificate: true)
    }

    private var mutualTLSClient: TLSConfiguration {
        .client(caFile: certificates.caCert, serverName: "localhost",
                certificateChainFile: certificates.clientCert, privateKeyFile: certificates.clientKey)
    }

    // MARK: - Process exit

    /// By default OpenSSL frees its state in an `atexit` handler, which races threads still
    /// ending at exit: tether-echo died of "double free or corruption" after SIGTERM about
    /// once in 2,100 runs. A forked copy of this process exits at once and must run no
    /// OpenSSL cleanup.
    @Test func openSSLRunsNoCleanupAtProcessExit() throws {
        _ = try TLSContext(client) // OpenSSL initialized as the transport does it
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        fflush(nil)
        let pid = fork()
        if pid == 0 {
            close(fds[0])
            openSSLCleanupProbe = fds[1]
            _ = OPENSSL_atexit { _ = write(openSSLCleanupProbe, "c", 1) }
            exit(0)
        }
        close(fds[1])
        try #require(pid > 0, "fork: \(String(cString: strerror(errno)))")
        var status: Int32 = 0, waited: pid_t = 0
        for _ in 0..<1_000 where waited == 0 { // at most 10 s
            waited = waitpid(pid, &status, WNOHANG)
            if waited == 0 { usleep(10_000) }
        }
        if waited == 0 {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        #expect(waited == pid, "the forked process did not exit within 10 s")
        var byte: UInt8 = 0
        #expect(read(fds[0], &byte, 1) == 0, "OpenSSL ran its exit-time cleanup")
    }

    // MARK: - Configuration errors

    @Test func aMissingCertificateFileIsNamedInTheError() throws {
        let missing = certificates.directory.appendingPathComponent("no-such-cert.pem").path
        let error = #expect(throws: TLSError.self) {
            try TLSContext(.server(certificateChainFile: missing, privateKeyFile: certificates.serverKey))
        }
        #expect(error?.operation == "loading certificate chain from \(missing)")
        #expect(error?.description.contains("No such file or directory") == true)
    }

    @Test func aGarbageKeyFileIsNamedInTheError() throws {
        let garbage = try temporaryFile(named: "garbage.key", contents: "-----BEGIN PRIVATE KEY-----\nnot base64!\n")
        defer { try? FileManager.default.removeItem(atPath: garbage) }
        let error = #expect(throws: TLSError.self) {
            try TLSContext(.server(certificateChainFile: certificates.serverCert, privateKeyFile: garbage))
        }
        #expect(error?.operation == "loading private key from \(garbage)")
        #expect(error?.openSSLErrors.isEmpty == false)
    }

    @Test func aGarbageCAFileIsNamedInTheError() throws {
        let garbage = try temporaryFile(named: "garbage-ca.pem", contents: "this is not PEM\n")
        defer { try? FileManager.default.removeItem(atPath: garbage) }
        let error = #expect(throws: TLSError.self) {
            try TLSContext(.client(caFile: garbage, serverName: "localhost"))
        }
        #expect(error?.operation == "loading CA certificates from \(garbage)")
    }

    @Test func aKeyThatDoesNotMatchTheCertificateIsRejected() throws {
        let error = #expect(throws: TLSError.self) {
            try TLSContext(.server(certificateChainFile: certificates.serverCert, privateKeyFile: certificates.clientKey))
        }
        #expect(error?.description.contains("key values mismatch") == true)
    }

    @Test func requiringClientCertificatesWithoutAClientCAIsAConfigurationError() throws {
        let error = #expect(throws: TLSError.self) {
            try TLSContext(.server(certificateChainFile: certificates.serverCert, privateKeyFile: certificates.serverKey,
                                   requireClientCertificate: true))
        }
        #expect(error?.reason == "requireClientCertificate needs a clientCAFile")
    }

    private func temporaryFile(named name: String, contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: - Closing

    @Test func afterShutdownThePeerReadsClosed() throws {
        let pair = try TLSPair(client: client, server: server)
        try #require(pair.handshake().bothDone)
        let last = Array("last words".utf8)
        _ = try pair.transfer(last, from: pair.client, to: pair.server)
        pair.client.shutdown()
        pair.client.shutdown() // idempotent
        #expect(try pair.readUntilSettled(pair.server) == .closed)
        #expect(try pair.readUntilSettled(pair.server) == .closed) // and stays closed
        #expect(pair.server.peerClosedWithoutCloseNotify == false)
        // Writing after our own close_notify is a usage error.
        let error = #expect(throws: TLSError.self) {
            _ = try last.withUnsafeBytes { bytes throws(TLSError) in try pair.client.write(bytes) }
        }
        #expect(error?.reason == "shutdown() already sent close_notify")
        // The server may still answer (half-close) and then close in turn.
        #expect(try pair.transfer(last, from: pair.server, to: pair.client).received == last)
        pair.server.shutdown()
        #expect(try pair.readUntilSettled(pair.client) == .closed)
    }

    @Test func peerEOFWithoutCloseNotifyReadsClosedAndIsFlagged() throws {
        let pair = try TLSPair(client: client, server: server)
        try #require(pair.handshake().bothDone)
        #expect(Glibc.shutdown(pair.sockets.client, Int32(SHUT_WR)) == 0) // a bare FIN
        #expect(try pair.readUntilSettled(pair.server) == .closed)
        #expect(pair.server.peerClosedWithoutCloseNotify)
        #expect(try pair.readUntilSettled(pair.server) == .closed)
        pair.server.shutdown() // a no-op on a truncated connection; must not crash or block
    }

    @Test func peerEOFDuringTheHandshakeIsAnError() throws {
        let pair = try TLSPair(client: client, server: server)
        #expect(try pair.client.handshake() == .wantRead) // ClientHello sent
        #expect(Glibc.shutdown(pair.sockets.server, Int32(SHUT_WR)) == 0)
        let error = #expect(throws: TLSError.self) { _ = try pair.client.handshake() }
        #expect(error?.reason == "the peer closed the connection during the handshake")
    }

    @Test func readAndWriteBeforeTheHandshakeCompletesAreUsageErrors() throws {
        let pair = try TLSPair(client: client, server: server)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(throws: TLSError.self) {
            _ = try buffer.withUnsafeMutableBytes { buffer throws(TLSError) in try pair.client.read(into: buffer) }
        }
        #expect(throws: TLSError.self) {
            _ = try buffer.withUnsafeBytes { bytes throws(TLSError) in try pair.server.write(bytes) }
        }
    }

    // MARK: - ALPN wire format

    @Test func alpnListParsingFindsH2AndStopsAtMalformedLengths() {
        func find(_ bytes: [UInt8]) -> Range<Int>? {
            bytes.withUnsafeBufferPointer { TLSApplicationProtocols.range(of: "h2", in: $0) }
        }
        let list = TLSApplicationProtocols.wireFormat(["http/1.1", "h2"])!
        #expect(find(list) == 10..<12)
        #expect(find(TLSApplicationProtocols.wireFormat(["http/1.1"])!) == nil)
        #expect(find([]) == nil)
        #expect(find([5, 0x68, 0x32]) == nil)          // length runs past the end
        #expect(find([0, 2, 0x68, 0x32]) == nil)       // empty name is malformed
        #expect(TLSApplicationProtocols.wireFormat([""]) == nil)
        #expect(TLSApplicationProtocols.wireFormat([String(repeating: "x", count: 256)]) == nil)
    }
}

// MARK: - Driving both sides by hand

/// A connected AF_UNIX stream socketpair, both ends non-blocking; closes both in deinit.
/// (Also drives HTTPConnectProxyTests.)
final class SocketPair {
    let client: Int32
    let server: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        client = fds[0]
        server = fds[1]
    }

    deinit {
        close(client)
        close(server)
    }
}

/// How one side's handshake ended within the turn budget.
private enum HandshakeOutcome: Equatable, CustomStringConvertible {
    case done, pending
    case failed(TLSError)

    var error: TLSError? {
        if case .failed(let error) = self { return error }
        return nil
    }

    static func == (lhs: HandshakeOutcome, rhs: HandshakeOutcome) -> Bool {
        switch (lhs, rhs) {
        case (.done, .done), (.pending, .pending): return true
        case (.failed(let a), .failed(let b)): return a.description == b.description
        default: return false
        }
    }

    var description: String {
        switch self {
        case .done: return "done"
        case .pending: return "pending"
        case .failed(let error): return "failed: \(error)"
        }
    }
}

/// A client and a server session over one `SocketPair`, each with its own context.
private final class TLSPair {
    let sockets: SocketPair
    let client: TLSSession
    let server: TLSSession

    init(client clientConfiguration: TLSConfiguration, server serverConfiguration: TLSConfiguration) throws {
        sockets = try SocketPair()
        client = try TLSSession(context: TLSContext(clientConfiguration), fileDescriptor: sockets.client)
        server = try TLSSession(context: TLSContext(serverConfiguration), fileDescriptor: sockets.server)
    }

    /// Alternates the two handshakes until each is done or failed (a side that already
    /// finished stays so), or `turns` run out.
    func handshake(turns: Int = 50) -> (client: HandshakeOutcome, server: HandshakeOutcome, bothDone: Bool) {
        var outcomes: [HandshakeOutcome] = [.pending, .pending]
        let sessions = [client, server]
        for _ in 0..<turns where outcomes.contains(.pending) {
            for index in sessions.indices where outcomes[index] == .pending {
                do throws(TLSError) {
                    if try sessions[index].handshake() == .done { outcomes[index] = .done }
                } catch {
                    outcomes[index] = .failed(error)
                }
            }
        }
        return (outcomes[0], outcomes[1], outcomes[0] == .done && outcomes[1] == .done)
    }

    struct Transfer {
        var sent = 0
        var received: [UInt8] = []
        var wantWrites = 0
        var partialWrites = 0
    }

    /// Moves `payload` from `sender` to `receiver`: each turn writes until the socket is full
    /// (or all is sent), then reads until the receiver has nothing more. With no receiver,
    /// only writes, and the bytes stay on the socket.
    func transfer(_ payload: [UInt8], from sender: TLSSession, to receiver: TLSSession?,
                  turns: Int = 10_000) throws -> Transfer {
        var transfer = Transfer()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<turns {
            writing: while transfer.sent < payload.count {
                let result = try payload.withUnsafeBytes { bytes throws(TLSError) in
                    try sender.write(UnsafeRawBufferPointer(rebasing: bytes[transfer.sent...]))
                }
                switch result {
                case .wrote(let count):
                    if transfer.sent + count < payload.count { transfer.partialWrites += 1 }
                    transfer.sent += count
                case .wantWrite:
                    transfer.wantWrites += 1
                    break writing
                case .wantRead:
                    break writing
                }
            }
            guard let receiver else {
                if transfer.sent == payload.count { break } else { continue }
            }
            reading: while true {
                let result = try buffer.withUnsafeMutableBytes { buffer throws(TLSError) in try receiver.read(into: buffer) }
                switch result {
                case .bytes(let count): transfer.received += buffer[..<count]
                case .wantRead, .wantWrite: break reading
                case .closed: Issue.record("unexpected close"); return transfer
                }
            }
            if transfer.received.count == payload.count { break }
        }
        return transfer
    }

    /// Reads until something other than `.wantRead` comes back, within a few turns; data
    /// read on the way is discarded.
    func readUntilSettled(_ session: TLSSession, turns: Int = 20) throws -> TLSSession.ReadResult {
        var buffer = [UInt8](repeating: 0, count: 1024)
        var result = TLSSession.ReadResult.wantRead
        for _ in 0..<turns {
            result = try buffer.withUnsafeMutableBytes { buffer throws(TLSError) in try session.read(into: buffer) }
            if case .bytes = result { continue }
            if result != .wantRead { break }
        }
        return result
    }
}
