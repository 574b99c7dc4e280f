import GRPC
import TetherScheduler

/// Checks an `authorization: Bearer <secret>` header (gRPC metadata or an HTTP header field)
/// against the token store.
struct Authenticator: Sendable {
    let tokens: TokenStore
    let clock: any SchedulerClock

    /// Why a caller was refused: gRPC answers UNAUTHENTICATED / PERMISSION_DENIED, HTTP 401 / 403.
    enum Refusal: Error, Equatable {
        /// No valid token.
        case unauthenticated(String)
        /// A valid token of a role that may not do this.
        case permissionDenied(TokenRecord)
    }

    /// The caller's token, if `authorization` (the header's value, nil when absent) holds
    /// a valid one whose role is one of `roles`.
    func authenticate(authorization: String?, _ roles: Set<TokenRole>, what: String) throws(Refusal) -> TokenRecord {
        guard let authorization else {
            throw .unauthenticated("missing 'authorization: Bearer <token>' \(what)")
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw .unauthenticated("authorization \(what) must be 'Bearer <token>'")
        }
        guard let token = tokens.authenticate(secret: String(parts[1]), now: clock.now().millisecondsSinceEpoch) else {
            throw .unauthenticated("unknown, expired or revoked token")
        }
        guard roles.contains(token.role) else {
            throw .permissionDenied(token)
        }
        return token
    }

    /// The caller's token, if its role is one of `roles`.
    /// - Throws: UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a token
    ///   of another role.
    @discardableResult
    func require(_ roles: Set<TokenRole>, _ context: GRPCServerContext) throws(GRPCStatus) -> TokenRecord {
        do {
            return try authenticate(authorization: context.head.metadata.firstString(forKey: "authorization"), roles, what: "metadata")
        } catch {
            throw Self.status(error, method: context.head.path.method)
        }
    }

    /// The caller's token, if its role may make a call that needs `access`
    /// (`ControlAccess`). Throws as `require(_:_:)` does.
    @discardableResult
    func require(_ access: ControlAccess, _ context: GRPCServerContext) throws(GRPCStatus) -> TokenRecord {
        try require(Self.roles(satisfying: access.least), context)
    }

    /// The roles that may make a call needing `least`.
    static func roles(satisfying least: TokenRole) -> Set<TokenRole> {
        Set(TokenRole.allCases.filter { $0.satisfies(least) })
    }

    /// A refusal as the gRPC status the caller gets.
    static func status(_ refusal: Refusal, method: String) -> GRPCStatus {
        switch refusal {
        case .unauthenticated(let message):
            GRPCStatus(code: .unauthenticated, message: message)
        case .permissionDenied(let token):
            GRPCStatus(code: .permissionDenied,
                       message: "a \(token.role.rawValue) token may not call \(method)")
        }
    }
}
