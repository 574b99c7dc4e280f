/// The agent's half of the lease contract: how long each of its leases is known to
/// stand, so that a task never runs past the moment the server may give it to another
/// agent (invariant 7).
///
/// The server keeps a lease for a TTL past the last heartbeat that named it, and answers
/// each heartbeat with a `HeartbeatAck` once its leases are renewed. So once the ack of a
/// heartbeat sent at `t` arrives, every lease that heartbeat named stands until at least
/// `t + TTL` by any clock that runs at the server's rate: the server received it after `t`.
/// A grant stands at least as long as the newest acknowledgement before it (the server
/// sends in order, so it granted after renewing). The Welcome acknowledges the Hello.
///
/// From the last confirmation a lease is given `TTL - margin - grace - period`, where the
/// margin is a tenth of the TTL, `grace` the SIGTERM-to-SIGKILL time of a lease-loss stop
/// (at most a quarter of the TTL) and `period` how often the agent checks. When that runs
/// out the task is stopped, and it is dead by `TTL - margin` past the confirmation. A
/// grant that arrives after its budget ran out (the agent was stopped or starved while it
/// sat in the socket) is never started.
///
/// Time is `ContinuousClock` (CLOCK_BOOTTIME): it keeps counting while the machine is
/// suspended and never jumps with the wall clock. Pure and not thread-safe: the owner
/// serializes calls and passes the time in.
struct LeaseDeadlines {
    typealias Instant = ContinuousClock.Instant

    /// The TTL the server announced; nil until a Welcome says it (or if it says 0).
    private(set) var ttl: Duration?
    /// The configured SIGTERM-to-SIGKILL grace of tasks.
    let killGrace: Duration

    private var nextHeartbeatID: UInt64 = 1
    /// Heartbeats of this stream not acknowledged yet: when each was sent and what it named.
    private var unacknowledged: [UInt64: (sentAt: Instant, leaseIDs: [String])] = [:]
    private var helloSentAt: Instant?
    /// The send time of the newest acknowledged heartbeat (or Hello).
    private var lastConfirmation: Instant?
    /// Each held lease's last confirmation.
    private var confirmed: [String: Instant] = [:]

    init(killGrace: Duration) {
        self.killGrace = killGrace
    }

    /// How often the owner should call `overdue`; before a Welcome, often enough that the
    /// first check after one comes well within a short TTL's margin.
    var checkPeriod: Duration {
        guard let ttl else { return .milliseconds(100) }
        return min(.seconds(1), max(.milliseconds(10), ttl / 40))
    }

    /// SIGTERM to SIGKILL when a lease is lost.
    var lossGrace: Duration {
        guard let ttl else { return killGrace }
        return min(killGrace, ttl / 4)
    }

    /// How long past its last confirmation a lease may run before it is stopped.
    var budget: Duration? {
        ttl.map { $0 - $0 / 10 - lossGrace - checkPeriod }
    }

    /// A new stream: its Hello goes out now. Heartbeat ids start again at 1.
    mutating func helloSent(at now: Instant) {
        helloSentAt = now
        nextHeartbeatID = 1
        unacknowledged = [:]
    }

    /// The Welcome answered the Hello: the TTL, and which resumed leases stand.
    mutating func welcomed(ttl: Duration?, confirmedLeaseIDs: [String]) {
        self.ttl = ttl.flatMap { $0 > .zero ? $0 : nil }
        guard let helloSentAt else { return }
        lastConfirmation = helloSentAt
        for leaseID in confirmedLeaseIDs { confirmed[leaseID] = helloSentAt }
    }

    /// A heartbeat naming `leaseIDs` goes out now; returns its id.
    mutating func heartbeatSent(naming leaseIDs: [String], at now: Instant) -> UInt64 {
        defer { nextHeartbeatID += 1 }
        unacknowledged[nextHeartbeatID] = (now, leaseIDs)
        return nextHeartbeatID
    }

    /// The server renewed what heartbeat `id` named. Earlier unacknowledged ones are
    /// dropped (their acks cannot come after a later one on an ordered stream).
    mutating func acknowledged(heartbeat id: UInt64) {
        guard let (sentAt, leaseIDs) = unacknowledged[id] else { return }
        unacknowledged = unacknowledged.filter { $0.key > id }
        lastConfirmation = max(lastConfirmation ?? sentAt, sentAt)
        for leaseID in leaseIDs where confirmed[leaseID] != nil {
            confirmed[leaseID] = max(confirmed[leaseID]!, sentAt)
        }
    }

    /// A grant arrived now. Returns nil if it may start (it is then tracked), or why not.
    mutating func granted(_ leaseID: String, at now: Instant) -> String? {
        guard let budget else {
            // A server that announced no TTL: nothing to measure against.
            confirmed[leaseID] = now
            return nil
        }
        guard let lastConfirmation else { return "no lease confirmation from the server yet" }
        let age = lastConfirmation.duration(to: now)
        guard age < budget else {
            return "the grant arrived \(Self.text(age)) after the server last confirmed this agent's leases; "
                + "the lease may already be gone (the limit is \(Self.text(budget)))"
        }
        confirmed[leaseID] = lastConfirmation
        return nil
    }

    /// When the server may give the lease's task to another agent, less the margin: the
    /// lease keeper's SIGKILL deadline. Nil for a lease not tracked or with no TTL known.
    func hardDeadline(of leaseID: String) -> Instant? {
        guard let ttl, let at = confirmed[leaseID] else { return nil }
        return at + (ttl - ttl / 10)
    }

    /// The lease's task has ended (or was never started): stop tracking it.
    mutating func ended(_ leaseID: String) {
        confirmed[leaseID] = nil
    }

    /// Leases whose budget has run out at `now`, with how long ago each was confirmed.
    func overdue(at now: Instant) -> [(leaseID: String, age: Duration)] {
        guard let budget else { return [] }
        return confirmed.compactMap { leaseID, at in
            let age = at.duration(to: now)
            return age >= budget ? (leaseID, age) : nil
        }.sorted { $0.leaseID < $1.leaseID }
    }

    /// "12.3 s".
    static func text(_ duration: Duration) -> String {
        "\(Double(duration.wholeMilliseconds) / 1000) s"
    }
}

extension Duration {
    /// Whole milliseconds, rounded toward zero (for APIs that take milliseconds).
    var wholeMilliseconds: Int64 { components.seconds &* 1000 &+ components.attoseconds / 1_000_000_000_000_000 }
    /// Whole nanoseconds, rounded toward zero.
    var wholeNanoseconds: Int64 { components.seconds &* 1_000_000_000 &+ components.attoseconds / 1_000_000_000 }
}
