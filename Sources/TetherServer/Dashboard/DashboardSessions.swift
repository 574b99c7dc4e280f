internal import Synchronization
import TetherScheduler
import TetherWire

/// What a dashboard session may do: the one place that says which role may read and
/// which may act (it follows `ControlAccess`: the actions the dashboard offers are
/// operator calls).
enum DashboardAction: Sendable {
    /// Read pages, the JSON API and the live feed: viewers and up.
    case read
    /// Trigger and cancel runs, pause and unpause DAGs: operators and admins.
    case operate
    /// Read the audit log (`/api/audit`, `/ui/audit`): whom `ListAuditEntries` admits (admins).
    case readAudit

    /// Whether a session opened with a token of `role` may do this. Agent tokens may not
    /// log in at all.
    func isPermitted(for role: TokenRole) -> Bool {
        switch self {
        case .read: role.satisfies(.viewer)
        case .operate: role.satisfies(.operator)
        case .readAudit: role.satisfies(ControlAccess.of(ControlV1.ControlService.listAuditEntries).least)
        }
    }
}

/// The dashboard's login sessions, in memory: a browser exchanges a token for a random
/// session id (its cookie) and a CSRF token (sent back in a header on every request
/// that is not a GET). A session ends at logout, after `idleTimeout` without a request,
/// `lifetime` after login, or as soon as the token it was opened with is revoked or
/// expires. A server restart ends them all.
///
/// At most `maxSessions` exist: a login past that replaces the session that was used
/// least recently, so logins cannot grow memory.
///
/// Thread-safe.
final class DashboardSessions: Sendable {
    struct Configuration: Sendable {
        var lifetime: Duration = .seconds(12 * 3600)
        var idleTimeout: Duration = .seconds(3600)
        var maxSessions = 1_024
    }

    struct Session: Sendable, Equatable {
        let id: String
        let csrfToken: String
        let tokenID: String
        let role: TokenRole
        let createdAt: Instant
        var lastUsedAt: Instant

        /// When it ends if it is not used again (the sooner of idle and absolute expiry).
        func expiresAt(_ configuration: Configuration) -> Instant {
            min(createdAt.adding(milliseconds: configuration.lifetime.milliseconds),
                lastUsedAt.adding(milliseconds: configuration.idleTimeout.milliseconds))
        }
    }

    /// Why a login was refused.
    enum LoginError: Error, Equatable {
        /// Unknown, expired or revoked token: 401.
        case unknownToken
        /// A token whose role may not use the dashboard (an agent's): 403.
        case notPermitted(TokenRole)
    }

    let configuration: Configuration
    let tokens: TokenStore
    private let clock: any SchedulerClock
    private let sessions = Mutex<[String: Session]>([:])

    init(tokens: TokenStore, clock: any SchedulerClock, configuration: Configuration = Configuration()) {
        self.tokens = tokens
        self.clock = clock
        self.configuration = configuration
    }

    /// Opens a session for the bearer of `secret`.
    func login(secret: String) throws(LoginError) -> Session {
        let now = clock.now()
        guard let token = tokens.authenticate(secret: secret, now: now.millisecondsSinceEpoch) else { throw .unknownToken }
        guard DashboardAction.read.isPermitted(for: token.role) else { throw .notPermitted(token.role) }
        let session = Session(id: Self.randomToken(), csrfToken: Self.randomToken(), tokenID: token.tokenID, role: token.role,
                              createdAt: now, lastUsedAt: now)
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expiresAt(configuration) > now }
            if sessions.count >= configuration.maxSessions,
               let oldest = sessions.values.min(by: { $0.lastUsedAt < $1.lastUsedAt }) {
                sessions[oldest.id] = nil
            }
            sessions[session.id] = session
        }
        return session
    }

    /// The live session `id` names, marked as used now (and so is its token: `TokenStore.markUsed`);
    /// nil (and the session forgotten) if it expired or its token is no longer active.
    func session(_ id: String) -> Session? {
        let now = clock.now()
        let found = sessions.withLock { sessions -> Session? in
            guard var session = sessions[id] else { return nil }
            guard session.expiresAt(configuration) > now else {
                sessions[id] = nil
                return nil
            }
            session.lastUsedAt = now
            sessions[id] = session
            return session
        }
        guard let found else { return nil }
        guard tokens.markUsed(tokenID: found.tokenID, now: now.millisecondsSinceEpoch) else {
            logout(id)
            return nil
        }
        return found
    }

    /// Whether session `id` is still live, without counting as use (a live feed checks
    /// this while it streams, so an open page alone does not keep a session alive).
    func isLive(_ id: String) -> Bool {
        let now = clock.now()
        guard let session = sessions.withLock({ $0[id] }), session.expiresAt(configuration) > now else { return false }
        return tokens.isActive(tokenID: session.tokenID, now: now.millisecondsSinceEpoch)
    }

    func logout(_ id: String) {
        sessions.withLock { _ = $0.removeValue(forKey: id) }
    }

    var count: Int { sessions.withLock { $0.count } }

    /// 32 random bytes, URL-safe base64 without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * UInt32($1.offset)) }
            let characters = chunk.count + 1
            for position in 0..<characters { out.append(alphabet[Int((value >> (18 - 6 * UInt32(position))) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
