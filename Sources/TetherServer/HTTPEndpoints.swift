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
        // Routes for people and scrapers (the dashboard, /metrics) come with an access level
        // of their own here, checked in `handle` before the route runs; none is public.
    }

    struct Route: Sendable {
        let methods: [String]
        let access: Access
        let run: @Sendable (HTTPRequest) async -> HTTPResponse
    }

    private let routes: [String: Route]
    private let dashboard: Dashboard?

    init(readiness: Readiness, dashboard: Dashboard? = nil) {
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
        case .unauthenticated: break
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
