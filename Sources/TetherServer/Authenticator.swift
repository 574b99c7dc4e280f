import GRPC
import TetherScheduler

/// Checks the `authorization: Bearer <secret>` metadata of a call against the token store.
struct Authenticator: Sendable {
    let tokens: TokenStore
    let clock: any SchedulerClock

    /// The caller's token, if its role is one of `roles`.
    /// - Throws: UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a token
    ///   of another role.
    @discardableResult
    func require(_ roles: Set<TokenRole>, _ context: GRPCServerContext) throws(GRPCStatus) -> TokenRecord {
        guard let header = context.head.metadata.firstString(forKey: "authorization") else {
            throw GRPCStatus(code: .unauthenticated, message: "missing 'authorization: Bearer <token>' metadata")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw GRPCStatus(code: .unauthenticated, message: "authorization metadata must be 'Bearer <token>'")
        }
        guard let token = tokens.authenticate(secret: String(parts[1]), now: clock.now().millisecondsSinceEpoch) else {
            throw GRPCStatus(code: .unauthenticated, message: "unknown, expired or revoked token")
        }
        guard roles.contains(token.role) else {
            throw GRPCStatus(code: .permissionDenied, message: "a \(token.role.rawValue) token may not call this service")
        }
        return token
    }
}
