#if canImport(Glibc)
internal import Glibc
#endif

/// A server connection whose protocol is not known yet, on a server that serves HTTP/1.1
/// beside HTTP/2 on one port. Over TLS the handshake's ALPN decides (`h2` -> HTTP/2,
/// `http/1.1` -> HTTP/1.1); in plaintext the first bytes do: the HTTP/2 client preface
/// (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) means HTTP/2, anything else HTTP/1.1.
///
/// The bytes read to decide (at most the preface's 24) are handed on with the descriptor,
/// so nothing is read twice. This runs once per connection, never per request; a client
/// that does not finish its TLS handshake or first bytes within `timeout` is closed.
///
/// Threading: loop thread only.
final class HTTPProtocolDetector: EventLoopSelectable {
    enum DetectedProtocol { case http2, http1 }

    /// The decision, with the descriptor, the TLS session and the bytes already read, which
    /// now belong to the receiver.
    var onDetected: ((DetectedProtocol, Int32, TLSSession?, [UInt8]) -> Void)?
    /// Called once if the connection closes before a decision, with why.
    var onClose: ((String) -> Void)?

    static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let loop: EventLoop
    private var fd: Int32
    private let tls: TLSSession?
    private var registration: EventLoop.RegistrationID?
    private var timer: EventLoop.TimerID?
    private var received: [UInt8] = []
    private let counters: HTTPServerCounters?

    init(loop: EventLoop, fd: Int32, tls: TLSSession?, counters: HTTPServerCounters? = nil) {
        self.loop = loop
        self.fd = fd
        self.tls = tls
        self.counters = counters
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    func start(timeout: Duration) throws(SystemError) {
        loop.preconditionInEventLoop()
        registration = try loop.register(fd, handler: self, write: tls != nil)
        timer = loop.schedule(after: timeout) { [unowned self] in
            self.timer = nil
            self.terminate(self.tls == nil ? "no request within \(timeout)" : "TLS handshake not complete within \(timeout)")
        }
    }

    func eventLoopReadable() { advance() }
    func eventLoopWritable() { advance() }
    func eventLoopHangup() { terminate("peer hung up before sending a request") }

    private func advance() {
        guard fd >= 0 else { return }
        if let tls {
            do {
                switch try tls.handshake() {
                case .done:
                    return decide(tls.negotiatedALPN == TLSApplicationProtocols.http11 ? .http1 : .http2)
                case .wantRead: setInterest(write: false)
                case .wantWrite: setInterest(write: true)
                }
            } catch {
                terminate("TLS handshake failed: \(error)")
            }
            return
        }
        var chunk = [UInt8](repeating: 0, count: Self.http2Preface.count - received.count)
        let rc = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if rc == 0 { return terminate("peer closed the connection before sending a request") }
        if rc < 0 {
            if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { return }
            return terminate("read failed: \(SystemError("read", errno: errno))")
        }
        counters?.didReceive(rc)
        received += chunk[0..<rc]
        if !Self.http2Preface.starts(with: received) { return decide(.http1) }
        if received.count == Self.http2Preface.count { decide(.http2) }
    }

    private func setInterest(write: Bool) {
        guard let registration else { return }
        loop.setInterest(registration, read: true, write: write)
    }

    private func decide(_ detected: DetectedProtocol) {
        let fd = self.fd
        release()
        let onDetected = self.onDetected
        self.onDetected = nil
        onClose = nil
        onDetected?(detected, fd, tls, received)
    }

    /// Stops watching and gives up the descriptor (without closing it).
    private func release() {
        if let registration { loop.unregister(registration) }
        registration = nil
        if let timer { loop.cancelTimer(timer) }
        timer = nil
        fd = -1
    }

    func terminate(_ reason: String) {
        guard fd >= 0 else { return }
        let fd = self.fd
        release()
        Glibc.close(fd)
        onDetected = nil
        let onClose = self.onClose
        self.onClose = nil
        onClose?(reason)
    }
}
