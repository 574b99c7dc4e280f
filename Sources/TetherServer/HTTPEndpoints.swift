import H2
internal import Synchronization

/// The server's plain HTTP surface, on the gRPC port over HTTP/1.1 and HTTP/2 alike:
/// routes by path, each with the methods it answers and who may call it. Unknown paths are
/// 404; a known path with another method is 405 with `Allow` (HEAD is served wherever GET is).
/// `/`, `/ui…` and `/api/…` belong to the dashboard, which checks its own sessions.
///
/// Handlers run on the connection's event loop: they must not block (see `HTTPHandler`).
struct HTTPEndpoints: Sendable {
    /// Who may call a route.
    enum Access: Sendable {
        /// Anyone: liveness and readiness probes (kubelet, load balancers) carry no credentials.
        case unauthenticated
        /// A bearer token (`authorization: Bearer <secret>`) of one of these roles: 401
        /// without a valid one, 403 for another role.
        case token(Set<TokenRole>)
    }

    /// Who may read `/metrics`: admin tokens, or anyone when the operator said so
    /// (`--metrics-unauthenticated`, for a scraper on a trusted network). It is read-only but
    /// names queues and regions and counts agents, so it is not open by default.
    static func metricsAccess(unauthenticated: Bool) -> Access {
        unauthenticated ? .unauthenticated : .token([.admin])
    }

    struct Route: Sendable {
        let methods: [String]
        let access: Access
        let run: @Sendable (HTTPRequest) async -> HTTPResponse
    }

    private let routes: [String: Route]
    private let authenticator: Authenticator
    private let dashboard: Dashboard?

    /// - Parameters:
    ///   - metrics: the `/metrics` exposition, made when asked for (on the request's loop).
    ///   - metricsAccess: who may read it (`metricsAccess(unauthenticated:)`).
    ///   - dashboard: the web dashboard, for `/ui/` and `/api/` (nil: none).
    init(readiness: Readiness, authenticator: Authenticator, metricsAccess: Access, dashboard: Dashboard? = nil,
         metrics: @escaping @Sendable () -> [UInt8]) {
        self.authenticator = authenticator
        self.dashboard = dashboard
        routes = [
            "/healthz": Route(methods: ["GET"], access: .unauthenticated) { _ in
                .text(200, "ok")
            },
            "/readyz": Route(methods: ["GET"], access: .unauthenticated) { _ in
                switch readiness.state {
                case .ready: .text(200, "ready")
                case let state: .text(503, "not ready: \(state)")
                }
            },
            "/metrics": Route(methods: ["GET"], access: metricsAccess) { _ in
                HTTPResponse(status: 200, headers: [HTTPHeader("content-type", ServerMetrics.contentType)], body: metrics())
            },
        ]
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        guard let route = routes[request.path] else {
            if let dashboard, Dashboard.serves(request.path) { return await dashboard.handle(request) }
            return .text(404, "no such path: \(request.path)")
        }
        let method = request.method == "HEAD" ? "GET" : request.method
        guard route.methods.contains(method) else {
            let allowed = route.methods.contains("GET") ? route.methods + ["HEAD"] : route.methods
            return .text(405, "\(request.method) is not allowed on \(request.path)",
                         headers: [HTTPHeader("allow", allowed.joined(separator: ", "))])
        }
        switch route.access {
        case .unauthenticated:
            break
        case .token(let roles):
            do {
                _ = try authenticator.authenticate(authorization: request.header("authorization"), roles, what: "header")
            } catch {
                switch error {
                case .unauthenticated(let message):
                    return .text(401, message, headers: [HTTPHeader("www-authenticate", "Bearer")])
                case .permissionDenied(let token):
                    return .text(403, "a \(token.role.rawValue) token may not \(request.method) \(request.path)")
                }
            }
        }
        return await route.run(request)
    }
}

/// Whether the server should be sent work, as `/readyz` reports it.
final class Readiness: Sendable {
    enum State: Sendable, Equatable, CustomStringConvertible {
        case starting
        case ready
        /// Shutting down: finishing what is in flight, taking nothing new.
        case draining
        /// The state database cannot write (see `TetherServer`): calls that change state fail.
        case storeFailed(String)

        var description: String {
            switch self {
            case .starting: "starting"
            case .ready: "ready"
            case .draining: "draining: the server is shutting down"
            case .storeFailed(let reason): "the state store cannot write: \(reason)"
            }
        }
    }

    private let current = Mutex(State.starting)

    var state: State { current.withLock { $0 } }

    /// Moves to `state`; nothing leaves `.draining`.
    func set(_ state: State) {
        current.withLock { if $0 != .draining { $0 = state } }
    }

    /// The server serves: `.starting` becomes `.ready` (a store that failed already stays failed).
    func started() {
        current.withLock { if $0 == .starting { $0 = .ready } }
    }
}
