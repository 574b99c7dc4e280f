import Foundation
import GRPC
import H2
import TetherScheduler
import TetherWire

/// The web dashboard, on the server's port (HTTP/1.1, and h2 over TLS): pages under
/// `/ui/`, a JSON API under `/api/`, and a live feed of server-sent events at
/// `/api/events`.
///
/// Access: the login page (`/ui/login`) and static assets (`/ui/assets/…`) are public;
/// everything else needs a session (`DashboardSessions`): a page without one redirects to
/// the login page, an API call gets 401, an agent token cannot log in (403). Viewer
/// sessions read; operator and admin sessions may also act (`DashboardAction`): a viewer's
/// action gets 403. Every action, allowed or refused for the role, is recorded in the
/// audit log (`ControlService.record`) with the session's token and the peer; admins
/// read it at `/ui/audit` (`/api/audit`). A request
/// that is not a GET must also carry the session's CSRF token in `x-csrf-token` and, if
/// the browser says where it comes from (`origin`, `sec-fetch-site`), come from this
/// origin; the session cookie is `SameSite=Strict` and `HttpOnly`, and `Secure` (with the
/// `__Host-` prefix) over TLS. Every response carries a strict Content-Security-Policy
/// (scripts and styles from files of this server only), `nosniff`, no referrer and no
/// framing.
///
/// The API answers with protobuf JSON (`jsonString`, compact, every field printed) of the
/// same messages `ControlService` returns, by calling its handlers: one implementation,
/// whose store reads are async (off the event loop).
///
/// Handlers run on the connection's event loop and must not block (see `HTTPHandler`).
struct Dashboard: Sendable {
    let control: ControlService
    let sessions: DashboardSessions
    let feed: CommitFeed

    static let cookieName = "tether_session"
    /// Over TLS: a `__Host-` cookie is sent only over HTTPS, only for this host and path /.
    static let secureCookieName = "__Host-tether_session"
    static let csrfHeader = "x-csrf-token"
    /// Most runs a grid shows.
    static let maxGridRuns = 50

    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    static let securityHeaders = [
        HTTPHeader("content-security-policy", contentSecurityPolicy),
        HTTPHeader("x-content-type-options", "nosniff"),
        HTTPHeader("referrer-policy", "no-referrer"),
        HTTPHeader("x-frame-options", "DENY"),
        HTTPHeader("cross-origin-opener-policy", "same-origin"),
    ]

    static let jsonOptions = FeedState.jsonOptions

    /// Whether `path` is the dashboard's: `/`, `/ui…` and `/api/…`.
    static func serves(_ path: String) -> Bool {
        path == "/" || path == "/ui" || path.hasPrefix("/ui/") || path.hasPrefix("/api/")
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        var response = await route(request)
        if !response.headers.contains(where: { $0.name == "cache-control" }) {
            response.headers.append(HTTPHeader("cache-control", "no-store"))
        }
        response.headers += Self.securityHeaders
        return response
    }

    private func route(_ request: HTTPRequest) async -> HTTPResponse {
        guard let parts = Self.pathComponents(request.path) else { return Self.error(400, "malformed path") }
        let method = request.method == "HEAD" ? "GET" : request.method
        switch parts.first {
        case nil:
            return method == "GET" ? Self.redirect("/ui/") : Self.methodNotAllowed(request, allowed: ["GET"])
        case "ui":
            return page(request, method: method, Array(parts.dropFirst()))
        default:
            return await api(request, method: method, parts)
        }
    }

    // MARK: Pages

    /// Pages the dashboard's script draws, all from one HTML shell.
    static func isPage(_ parts: [String]) -> Bool {
        switch parts.count {
        case 0: true
        case 1: parts[0] == "dags" || parts[0] == "agents" || parts[0] == "audit"
        case 2: ["dags", "runs", "agents"].contains(parts[0])
        case 3: parts[0] == "dags" && parts[2] == "versions"
        default: false
        }
    }

    private func page(_ request: HTTPRequest, method: String, _ parts: [String]) -> HTTPResponse {
        guard method == "GET" else { return Self.methodNotAllowed(request, allowed: ["GET"]) }
        if parts.first == "assets" {
            guard parts.count == 2, let asset = DashboardAssets.named(parts[1]) else { return Self.error(404, "no such asset") }
            return HTTPResponse(status: 200, headers: [HTTPHeader("content-type", asset.contentType),
                                                       HTTPHeader("cache-control", "no-cache")], body: asset.bytes)
        }
        if parts == ["login"] { return Self.html(DashboardAssets.loginPage) }
        guard Self.isPage(parts) else { return Self.error(404, "no such page: \(request.path)") }
        guard currentSession(request) != nil else {
            return Self.redirect("/ui/login?next=" + Self.percentEncoded(request.path))
        }
        return Self.html(DashboardAssets.appPage)
    }

    // MARK: API

    private func api(_ request: HTTPRequest, method: String, _ parts: [String]) async -> HTTPResponse {
        guard parts.first == "api" else { return Self.error(404, "no such path: \(request.path)") }
        let path = Array(parts.dropFirst())
        if path == ["session"] {
            switch method {
            case "POST": return login(request)
            case "GET", "DELETE": break
            default: return Self.methodNotAllowed(request, allowed: ["GET", "POST", "DELETE"])
            }
        }
        guard let session = currentSession(request) else {
            return Self.error(401, "not logged in: POST a token to /api/session (the login page does)")
        }
        guard DashboardAction.read.isPermitted(for: session.role) else { return Self.error(403, "a \(session.role.rawValue) token may not use the dashboard") }
        let write = Self.auditedWrite(method: method, path)
        if method != "GET" {
            guard Self.isSameOrigin(request) else { return Self.error(403, "cross-origin request refused") }
            guard let csrf = request.header(Self.csrfHeader), TokenStore.constantTimeEqual(csrf, session.csrfToken) else {
                return Self.error(403, "missing or wrong \(Self.csrfHeader) header")
            }
            // Logging out changes nothing but the session: any reader may.
            guard DashboardAction.operate.isPermitted(for: session.role) || (method == "DELETE" && path == ["session"]) else {
                let refusal = GRPCStatus(code: .permissionDenied, message: "a \(session.role.rawValue) token may not change anything")
                if let write { await record(write, session, request, thrown: refusal) }
                return Self.error(refusal)
            }
        }
        do {
            let response = try await respond(request, method: method, path, session: session)
            if let write { await record(write, session, request, thrown: nil) }
            return response
        } catch {
            let status = ControlService.status(forThrown: error)
            if let write { await record(write, session, request, thrown: status) }
            return Self.error(status)
        }
    }

    /// The RPC a dashboard action makes and what it acts on, for the audit log; nil for
    /// a request that is no action (reads, logout, unknown paths).
    static func auditedWrite(method: String, _ path: [String]) -> (method: String, target: String)? {
        guard method == "POST", path.count == 3 else { return nil }
        let rpc: String
        switch (path[0], path[2]) {
        case ("dags", "trigger"): rpc = ControlV1.ControlService.triggerRun.path
        case ("dags", "pause"): rpc = ControlV1.ControlService.pauseDag.path
        case ("dags", "unpause"): rpc = ControlV1.ControlService.unpauseDag.path
        case ("runs", "cancel"): rpc = ControlV1.ControlService.cancelRun.path
        default: return nil
        }
        return (ControlAccess.methodName(rpc), (path[0] == "dags" ? "dag:" : "run:") + path[1])
    }

    /// Records a dashboard action in the audit log.
    private func record(_ write: (method: String, target: String), _ session: DashboardSessions.Session, _ request: HTTPRequest,
                        thrown: (any Error)?) async {
        // The token's description as it is now; a token deleted meanwhile is named by id alone.
        let token = control.tokens.record(tokenID: session.tokenID)
            ?? TokenRecord(tokenID: session.tokenID, role: session.role, description: "", createdAtMilliseconds: 0,
                           expiresAtMilliseconds: 0, revokedAtMilliseconds: 0)
        await control.record(caller: token, method: write.method, target: write.target, summary: "from the dashboard",
                             peer: request.peer.map { "\($0)" } ?? "", surface: .dashboard, thrown: thrown)
    }

    /// Agents connected or not: the overview shows the gone ones as down, with why.
    private static let allAgents: ControlV1.ListAgentsRequest = {
        var request = ControlV1.ListAgentsRequest()
        request.includeDisconnected = true
        return request
    }()

    /// Answers an API request of a session allowed to make it.
    private func respond(_ request: HTTPRequest, method: String, _ path: [String], session: DashboardSessions.Session) async throws -> HTTPResponse {
        let query = Self.queryItems(request.query)
        do {
            switch (method, path.count, path.first ?? "") {
            case ("GET", 1, "session"):
                return Self.json(200, JSONText.object(members: [
                    ("csrfToken", .string(session.csrfToken)), ("role", .string(session.role.rawValue)),
                    ("expiresAtUnixUs", .integer(session.expiresAt(sessions.configuration).millisecondsSinceEpoch &* 1000)),
                ]))
            case ("DELETE", 1, "session"):
                sessions.logout(session.id)
                var response = Self.json(200, "{}")
                response.headers.append(HTTPHeader("set-cookie", Self.cookie(request, value: "", maxAge: 0)))
                return response
            case ("GET", 1, "events"):
                // HEAD gets the head alone, not a feed slot.
                return request.method == "HEAD" ? HTTPResponse(status: 200, headers: [HTTPHeader("content-type", "text/event-stream; charset=utf-8")])
                    : events(session)
            case ("GET", 1, "dags"):
                var list = ControlV1.ListDagsRequest()
                list.pageSize = UInt32(ControlService.maxPageSize)
                list.pageToken = query["page_token"] ?? ""
                return try Self.json(await control.listDags(list))
            case ("GET", 2, "dags"):
                var get = ControlV1.GetDagRequest()
                get.dagID = path[1]
                get.version = UInt32(query["version"] ?? "0") ?? 0
                return try Self.json(await control.getDag(get))
            case ("GET", 3, "dags") where path[2] == "versions":
                var list = ControlV1.ListDagVersionsRequest()
                list.dagID = path[1]
                list.pageSize = UInt32(ControlService.maxPageSize)
                list.pageToken = query["page_token"] ?? ""
                return try Self.json(await control.listDagVersions(list))
            case ("GET", 3, "dags") where path[2] == "grid":
                let runs = min(max(Int(query["runs"] ?? "") ?? 25, 1), Self.maxGridRuns)
                return Self.json(200, try await grid(dagID: path[1], runs: runs))
            case ("GET", 1, "runs"):
                var list = ControlV1.ListRunsRequest()
                list.dagID = query["dag"] ?? ""
                list.pageSize = UInt32(min(Int(query["limit"] ?? "") ?? 100, ControlService.maxPageSize))
                list.pageToken = query["page_token"] ?? ""
                return try Self.json(await control.listRuns(list))
            case ("GET", 2, "runs"):
                var get = ControlV1.GetRunRequest()
                get.runID = path[1]
                return try Self.json(await control.getRun(get))
            case ("GET", 1, "agents"):
                return try Self.json(await control.listAgents(Self.allAgents))
            case ("GET", 1, "audit"):
                guard DashboardAction.readAudit.isPermitted(for: session.role) else {
                    return Self.error(403, "a \(session.role.rawValue) token may not read the audit log")
                }
                var list = ControlV1.ListAuditEntriesRequest()
                list.pageSize = UInt32(min(Int(query["limit"] ?? "") ?? 100, ControlService.maxPageSize))
                list.pageToken = query["page_token"] ?? ""
                list.method = query["method"] ?? ""
                list.tokenID = query["token"] ?? ""
                return try Self.json(await control.listAuditEntries(list))
            case ("GET", 2, "agents"):
                guard let agent = try await control.listAgents(Self.allAgents).agents.first(where: { $0.name == path[1] }) else {
                    return Self.error(404, "no connected agent '\(path[1])'")
                }
                return try Self.json(agent)
            case ("POST", 3, "dags") where path[2] == "trigger":
                var trigger = ControlV1.TriggerRunRequest()
                trigger.dagID = path[1]
                trigger.note = "triggered from the dashboard"
                return try Self.json(await control.triggerRun(trigger))
            case ("POST", 3, "dags") where path[2] == "pause" || path[2] == "unpause":
                var response = ControlV1.PauseDagResponse()
                response.dag = try await control.setPaused(path[1], path[2] == "pause")
                return try Self.json(response)
            case ("POST", 3, "runs") where path[2] == "cancel":
                var cancel = ControlV1.CancelRunRequest()
                cancel.runID = path[1]
                cancel.reason = "cancelled from the dashboard"
                return try Self.json(await control.cancelRun(cancel))
            default:
                return Self.error(404, "no such API: \(method) \(request.path)")
            }
        }
    }

    /// A DAG with its latest version, and its newest `runs` runs with their task
    /// instances: `{"dag": GetDagResponse, "runs": [GetRunResponse, …]}`, newest run first.
    private func grid(dagID: String, runs: Int) async throws -> String {
        var get = ControlV1.GetDagRequest()
        get.dagID = dagID
        let dag = try await control.getDag(get)
        var list = ControlV1.ListRunsRequest()
        list.dagID = dagID
        list.pageSize = UInt32(runs)
        var columns: [String] = []
        for run in try await control.listRuns(list).runs {
            var getRun = ControlV1.GetRunRequest()
            getRun.runID = run.runID
            // A run that went away between the two reads is left out.
            guard let column = try? await control.getRun(getRun) else { continue }
            columns.append(try column.jsonString(options: Self.jsonOptions))
        }
        return JSONText.object(members: [
            ("dag", .json(try dag.jsonString(options: Self.jsonOptions))),
            ("runs", .json("[" + columns.joined(separator: ",") + "]")),
        ])
    }

    /// `text/event-stream` of `CommitFeed`'s events until the client goes, the feed drops
    /// it (too slow) or stops, or the session ends (then one `logout` event).
    private func events(_ session: DashboardSessions.Session) -> HTTPResponse {
        // Checked here to answer 503; the slot itself is taken inside the stream, whose
        // end always frees it.
        guard feed.subscriberCount < feed.limits.maxSubscribers else {
            return Self.error(503, "too many live feeds are open (\(feed.limits.maxSubscribers)); close another dashboard tab")
        }
        let feed = self.feed, sessions = self.sessions, sessionID = session.id
        return .stream(headers: [HTTPHeader("content-type", "text/event-stream; charset=utf-8"),
                                 HTTPHeader("cache-control", "no-store")]) { writer in
            guard let subscriber = feed.subscribe() else {
                try await writer.write(FeedState.sse(event: "busy", id: nil, data: "{}"))
                return
            }
            defer { feed.unsubscribe(subscriber) }
            try await writer.write("retry: 2000\n: tether live feed\n\n")
            while let bytes = await subscriber.next() {
                guard sessions.isLive(sessionID) else {
                    try await writer.write(FeedState.sse(event: "logout", id: nil, data: "{}"))
                    return
                }
                try await writer.write(bytes)
            }
        }
    }

    // MARK: Sessions

    private func login(_ request: HTTPRequest) -> HTTPResponse {
        guard Self.isSameOrigin(request) else { return Self.error(403, "cross-origin request refused") }
        // JSON only: a cross-site HTML form cannot send it, so it cannot log a browser in.
        guard request.header("content-type")?.lowercased().hasPrefix("application/json") == true else {
            return Self.error(415, "send {\"token\": \"...\"} as application/json")
        }
        // A token is short: parse at most a few KiB on the event loop.
        guard request.body.count <= 8_192, let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
              let secret = object["token"] as? String, !secret.isEmpty, secret.utf8.count <= 4096 else {
            return Self.error(400, "send {\"token\": \"...\"} as application/json")
        }
        let session: DashboardSessions.Session
        do {
            session = try sessions.login(secret: secret.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            switch error {
            case .unknownToken: return Self.error(401, "unknown, expired or revoked token")
            case .notPermitted(let role): return Self.error(403, "a \(role.rawValue) token may not use the dashboard; use a viewer, operator or admin token")
            }
        }
        var response = Self.json(200, JSONText.object(members: [
            ("csrfToken", .string(session.csrfToken)), ("role", .string(session.role.rawValue)),
            ("expiresAtUnixUs", .integer(session.expiresAt(sessions.configuration).millisecondsSinceEpoch &* 1000)),
        ]))
        response.headers.append(HTTPHeader("set-cookie", Self.cookie(request, value: session.id,
                                                                     maxAge: sessions.configuration.lifetime.milliseconds / 1000)))
        return response
    }

    /// The live session the request's cookie names, if any.
    private func currentSession(_ request: HTTPRequest) -> DashboardSessions.Session? {
        guard let id = Self.cookieValue(request, named: request.isSecure ? Self.secureCookieName : Self.cookieName) else { return nil }
        return sessions.session(id)
    }

    /// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
    /// request carries it), Secure over TLS.
    static func cookie(_ request: HTTPRequest, value: String, maxAge: Int64) -> String {
        let name = request.isSecure ? secureCookieName : cookieName
        return "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (request.isSecure ? "; Secure" : "")
    }

    /// The value of cookie `name`, from every `cookie` field (HTTP/2 may split them).
    static func cookieValue(_ request: HTTPRequest, named name: String) -> String? {
        for header in request.headers where header.name == "cookie" {
            for pair in header.value.split(separator: ";") {
                let trimmed = pair.trimmingCharacters(in: .whitespaces)
                guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals] == name else { continue }
                return String(trimmed[trimmed.index(after: equals)...])
            }
        }
        return nil
    }

    /// False when the browser says the request comes from another site: an `origin` other
    /// than this server's, or `sec-fetch-site` other than same-origin (or none: typed by
    /// the user). Clients that send neither (curl, scripts) pass; the CSRF token still
    /// applies to them.
    static func isSameOrigin(_ request: HTTPRequest) -> Bool {
        if let site = request.header("sec-fetch-site"), site != "same-origin", site != "none" { return false }
        guard let origin = request.header("origin") else { return true }
        guard let host = request.header("host") else { return false }
        return origin == (request.isSecure ? "https://" : "http://") + host
    }

    // MARK: Responses

    static func html(_ bytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [HTTPHeader("content-type", "text/html; charset=utf-8")], body: bytes)
    }

    static func json(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: [HTTPHeader("content-type", "application/json")], body: Array(text.utf8))
    }

    static func json(_ message: some WireMessage) throws -> HTTPResponse {
        json(200, try message.jsonString(options: jsonOptions))
    }

    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        json(status, JSONText.object(members: [("error", .string(message))]))
    }

    /// A handler's error as HTTP: its gRPC status mapped to the nearest HTTP status.
    static func error(_ thrown: any Error) -> HTTPResponse {
        guard let status = thrown as? GRPCStatus else { return error(500, "\(thrown)") }
        let code: Int = switch status.code {
        case .invalidArgument, .outOfRange: 400
        case .unauthenticated: 401
        case .permissionDenied: 403
        case .notFound: 404
        case .alreadyExists, .failedPrecondition, .aborted: 409
        case .resourceExhausted: 429
        case .unavailable: 503
        case .deadlineExceeded: 504
        case .unimplemented: 501
        default: 500
        }
        return error(code, status.message)
    }

    static func redirect(_ location: String) -> HTTPResponse {
        HTTPResponse(status: 303, headers: [HTTPHeader("location", location)])
    }

    static func methodNotAllowed(_ request: HTTPRequest, allowed: [String]) -> HTTPResponse {
        var response = error(405, "\(request.method) is not allowed on \(request.path)")
        response.headers.append(HTTPHeader("allow", (allowed.contains("GET") ? allowed + ["HEAD"] : allowed).joined(separator: ", ")))
        return response
    }

    // MARK: URLs

    /// The path's segments, percent-decoded; nil for a segment that decodes to nothing
    /// sensible (bad escapes, `/`, NUL, `.` or `..`).
    static func pathComponents(_ path: String) -> [String]? {
        var parts: [String] = []
        for raw in path.split(separator: "/") {
            guard let part = String(raw).removingPercentEncoding, part != ".", part != "..",
                  !part.contains("/"), !part.contains("\0") else { return nil }
            parts.append(part)
        }
        return parts
    }

    /// `a=1&b=x%20y` as a dictionary (the first value of a repeated name wins).
    static func queryItems(_ query: String?) -> [String: String] {
        var items: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let halves = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            let name = decode(halves[0])
            if items[name] == nil { items[name] = halves.count > 1 ? decode(halves[1]) : "" }
        }
        return items
    }

    static func percentEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}
