import Synchronization

/// What a server's connections have done since it started: connections accepted and open,
/// HTTP/2 streams and HTTP/1.1 requests, bytes read and written. For metrics; of these the
/// transport itself reads only the open connections (its `maxConnections` check).
///
/// Bytes are the connection's own (HTTP/2 frames, HTTP/1.1 heads and bodies), after TLS
/// decryption and before encryption, counted where each read or write returns.
///
/// Cost: one relaxed atomic add per read or write system call (or TLS record) and per
/// stream or request; no lock, no allocation. Any thread may read; a reading is not a
/// consistent snapshot across counters.
public final class HTTPServerCounters: Sendable {
    private let accepted = Atomic<Int>(0)
    private let open = Atomic<Int>(0)
    private let streamsBegun = Atomic<Int>(0)
    private let streamsOpen = Atomic<Int>(0)
    private let requests = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    private let sent = Atomic<Int>(0)

    public init() {}

    /// Connections accepted (HTTP/2 and HTTP/1.1, counted once each, whatever became of them).
    public var connectionsAccepted: Int { accepted.load(ordering: .relaxed) }
    /// Connections open right now.
    public var connectionsOpen: Int { open.load(ordering: .relaxed) }
    /// HTTP/2 streams peers opened (gRPC calls, and plain HTTP requests over HTTP/2).
    public var streamsOpened: Int { streamsBegun.load(ordering: .relaxed) }
    /// HTTP/2 streams open right now.
    public var streamsOpenNow: Int { streamsOpen.load(ordering: .relaxed) }
    /// HTTP/1.1 requests read.
    public var http1Requests: Int { requests.load(ordering: .relaxed) }
    /// Bytes read from peers.
    public var bytesReceived: Int { received.load(ordering: .relaxed) }
    /// Bytes written to peers.
    public var bytesSent: Int { sent.load(ordering: .relaxed) }

    /// Counts a new connection unless `limit` are open already; returns whether it did.
    func reserveConnection(limit: Int) -> Bool {
        guard open.add(1, ordering: .relaxed).newValue <= limit else {
            open.subtract(1, ordering: .relaxed)
            return false
        }
        accepted.add(1, ordering: .relaxed)
        return true
    }

    func connectionClosed() { open.subtract(1, ordering: .relaxed) }

    func streamOpened() {
        streamsBegun.add(1, ordering: .relaxed)
        streamsOpen.add(1, ordering: .relaxed)
    }

    func streamsClosed(_ count: Int) {
        if count > 0 { streamsOpen.subtract(count, ordering: .relaxed) }
    }

    func requestRead() { requests.add(1, ordering: .relaxed) }

    func didReceive(_ count: Int) { received.add(count, ordering: .relaxed) }

    func didSend(_ count: Int) { sent.add(count, ordering: .relaxed) }
}
