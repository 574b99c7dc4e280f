import Foundation
import GRPC
import H2
import Synchronization
import Testing
@testable import TetherServer
import TetherScheduler
import TetherTestSupport
import TetherWire

/// The dashboard's routes, sessions, cookies, CSRF and live feed, over HTTP/1.1 (curl)
/// against a server in this process; the session table and the feed's bounds directly.
@Suite struct DashboardTests {
    struct Reply: CustomStringConvertible {
        var status: Int
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
        var description: String { "\(status) \(headers.map { "\($0.0): \($0.1)" }) \(body)" }
    }

    /// `curl -i` of `url`: status, header fields (names lower case) and body.
    static func curl(_ url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil,
                     extra: [String] = []) async throws -> Reply {
        var arguments = ["-sS", "-i", "--max-time", "10", "-X", method]
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let body { arguments += ["--data-binary", body] }
        let all = arguments + extra + [url]
        let result = try await onThreadOfItsOwn { try runProcess(URL(fileURLWithPath: "/usr/bin/curl"), all) }
        #expect(result.status == 0, "curl \(url): \(result.stderr)")
        guard let split = result.stdout.range(of: "\r\n\r\n") else { return Reply(status: 0, headers: [], body: result.stdout) }
        var lines = result.stdout[..<split.lowerBound].split(separator: "\r\n")
        let status = Int(lines.removeFirst().split(separator: " ").dropFirst().first ?? "") ?? 0
        let headers = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return Reply(status: status, headers: headers, body: String(result.stdout[split.upperBound...]))
    }

    /// Logs in with `secret`: the reply, the session cookie ("name=value") and CSRF token.
    static func login(_ base: String, secret: String = ServerHarness.adminSecret,
                      extra: [String] = []) async throws -> (reply: Reply, cookie: String, csrf: String) {
        let reply = try await curl(base + "/api/session", method: "POST", headers: ["content-type": "application/json"],
                                   body: #"{"token": "\#(secret)"}"#, extra: extra)
        let cookie = reply.header("set-cookie")?.split(separator: ";").first.map(String.init) ?? ""
        let object = try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]
        return (reply, cookie, object?["csrfToken"] as? String ?? "")
    }

    static func expectSecurityHeaders(_ reply: Reply, _ what: String) {
        let policy = reply.header("content-security-policy") ?? ""
        #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'")
                && policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe-inline"), "\(what): \(policy)")
        #expect(reply.header("x-content-type-options") == "nosniff", "\(what)")
        #expect(reply.header("referrer-policy") == "no-referrer", "\(what)")
        #expect(reply.header("x-frame-options") == "DENY", "\(what)")
    }

    @Test func pagesRedirectToLoginAndAPICallsAre401WithoutASession() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        let page = try await Self.curl(base + "/ui/dags")
        #expect(page.status == 303 && page.header("location") == "/ui/login?next=/ui/dags", "\(page)")
        Self.expectSecurityHeaders(page, "redirect")
        let root = try await Self.curl(base + "/")
        #expect(root.status == 303 && root.header("location") == "/ui/")
        for path in ["/api/dags", "/api/runs", "/api/agents", "/api/events", "/api/session", "/api/dags/x/grid"] {
            let reply = try await Self.curl(base + path)
            #expect(reply.status == 401, "\(path): \(reply)")
            Self.expectSecurityHeaders(reply, path)
        }
        let write = try await Self.curl(base + "/api/dags/x/trigger", method: "POST")
        #expect(write.status == 401)
        // Public: the login page and the static files, under the same headers.
        let login = try await Self.curl(base + "/ui/login")
        #expect(login.status == 200 && login.header("content-type") == "text/html; charset=utf-8" && login.body.contains("login.js"))
        Self.expectSecurityHeaders(login, "login page")
        #expect(!login.body.contains("<script>") && !login.body.contains("style="), "no inline script or style")
        let script = try await Self.curl(base + "/ui/assets/dashboard.js")
        #expect(script.status == 200 && script.header("content-type") == "text/javascript; charset=utf-8")
        Self.expectSecurityHeaders(script, "asset")
        #expect(try await Self.curl(base + "/ui/assets/nothing.js").status == 404)
        #expect(try await Self.curl(base + "/ui/nowhere/at/all/really").status == 404)
        #expect(try await Self.curl(base + "/ui/%2e%2e/x").status == 400)
        #expect(try await Self.curl(base + "/healthz").body == "ok\n", "the probes are untouched")
        await harness.stop()
    }

    @Test func unknownTokenIs401AgentTokenIs403AndOnlyJSONFromThisOriginLogsIn() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        #expect(try await Self.login(base, secret: "tether_000000000000_nope").reply.status == 401)
        let agentSecret = try await harness.createToken(.agent, agentName: "agent-1")
        let agent = try await Self.login(base, secret: agentSecret)
        #expect(agent.reply.status == 403 && agent.cookie.isEmpty, "\(agent.reply)")
        // An HTML form (from any site) cannot log a browser in: form bodies are refused.
        let form = try await Self.curl(base + "/api/session", method: "POST",
                                       headers: ["content-type": "application/x-www-form-urlencoded"],
                                       body: "token=\(ServerHarness.adminSecret)")
        #expect(form.status == 415 && form.header("set-cookie") == nil)
        let crossSite = try await Self.login(base, extra: ["-H", "origin: https://evil.example"])
        #expect(crossSite.reply.status == 403 && crossSite.cookie.isEmpty)
        let sameSite = try await Self.login(base, extra: ["-H", "origin: \(base)", "-H", "sec-fetch-site: same-origin"])
        #expect(sameSite.reply.status == 200 && !sameSite.cookie.isEmpty)
        await harness.stop()
    }

    @Test func loginSetsAnHttpOnlyStrictSessionCookieThatOpensTheAPIAndPages() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        let (reply, cookie, csrf) = try await Self.login(base)
        #expect(reply.status == 200)
        let setCookie = try #require(reply.header("set-cookie"))
        #expect(setCookie.hasPrefix("tether_session=") && setCookie.contains("; HttpOnly") && setCookie.contains("; SameSite=Strict")
                && setCookie.contains("; Path=/") && !setCookie.contains("Secure"), "\(setCookie)")
        #expect(cookie.count > "tether_session=".count + 40 && csrf.count >= 43 && !cookie.contains(csrf))
        let dags = try await Self.curl(base + "/api/dags", headers: ["cookie": cookie])
        #expect(dags.status == 200 && dags.header("content-type") == "application/json" && dags.body.contains(#""dags":[]"#), "\(dags)")
        let page = try await Self.curl(base + "/ui/dags", headers: ["cookie": cookie])
        #expect(page.status == 200 && page.body.contains("dashboard.js"))
        let session = try await Self.curl(base + "/api/session", headers: ["cookie": cookie])
        #expect(session.status == 200 && session.body.contains(csrf))
        // The API answers with ControlService's messages in protobuf JSON.
        _ = try await harness.apply("dag_id: shown\ntasks:\n  - {id: a, entrypoint: e}\n")
        let run = try await harness.trigger("shown")
        let grid = try await Self.curl(base + "/api/dags/shown/grid?runs=5", headers: ["cookie": cookie])
        #expect(grid.status == 200 && grid.body.contains(#""runId":"\#(run.runID)""#) && grid.body.contains(#""taskId":"a""#), "\(grid)")
        let missing = try await Self.curl(base + "/api/runs/nope-1", headers: ["cookie": cookie])
        #expect(missing.status == 404 && missing.body.contains("unknown run"), "\(missing)")
        await harness.stop()
    }

    @Test func overTLSTheSessionCookieIsSecureAndHostPrefixed() async throws {
        let certificates = try TestCertificates.make()
        let scratch = try ScratchDirectory()
        let tokenFile = scratch.path("admin.token")
        try ServerHarness.adminSecret.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        var configuration = TetherServer.Configuration(listen: try SocketAddress(parsing: "127.0.0.1:0"),
                                                       dataDirectory: scratch.url.appendingPathComponent("data"))
        configuration.tlsCertificateFile = certificates.serverCert
        configuration.tlsKeyFile = certificates.serverKey
        configuration.bootstrapTokenFile = tokenFile
        configuration.synchronous = .normal
        let server = try TetherServer(configuration: configuration)
        let address = try server.start()
        let base = "https://localhost:\(address.port)"
        let tls = ["--cacert", certificates.caCert, "--resolve", "localhost:\(address.port):127.0.0.1"]
        for version in ["--http1.1", "--http2"] {
            let (reply, cookie, _) = try await Self.login(base, extra: tls + [version])
            let setCookie = reply.header("set-cookie") ?? ""
            #expect(reply.status == 200 && setCookie.hasPrefix("__Host-tether_session=") && setCookie.contains("; Secure")
                    && setCookie.contains("; HttpOnly") && setCookie.contains("; SameSite=Strict"), "\(version): \(reply)")
            let dags = try await Self.curl(base + "/api/dags", headers: ["cookie": cookie], extra: tls + [version])
            #expect(dags.status == 200, "\(version): \(dags)")
            // The plaintext cookie's name means nothing over TLS.
            let plainName = cookie.replacingOccurrences(of: "__Host-tether_session", with: "tether_session")
            #expect(try await Self.curl(base + "/api/dags", headers: ["cookie": plainName], extra: tls + [version]).status == 401)
        }
        await server.shutdown()
    }

    @Test func everyWriteNeedsTheSessionsCSRFToken() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        _ = try await harness.apply("dag_id: guarded\ntasks:\n  - {id: a, entrypoint: e}\n")
        let (_, cookie, csrf) = try await Self.login(base)
        let other = try await Self.login(base)
        let refusals: [[String: String]] = [["cookie": cookie], ["cookie": cookie, "x-csrf-token": "wrong"],
                                            ["cookie": cookie, "x-csrf-token": other.csrf]]
        for headers in refusals {
            for (method, path) in [("POST", "/api/dags/guarded/pause"), ("POST", "/api/dags/guarded/trigger"),
                                   ("POST", "/api/runs/guarded-1/cancel"), ("DELETE", "/api/session")] {
                let reply = try await Self.curl(base + path, method: method, headers: headers)
                #expect(reply.status == 403 && reply.body.contains("x-csrf-token"), "\(method) \(path) \(headers): \(reply)")
            }
        }
        var request = ControlV1.GetDagRequest()
        request.dagID = "guarded"
        let before: ControlV1.GetDagResponse = try await harness.control(ControlV1.ControlService.getDag, request)
        #expect(before.dag?.paused == false, "nothing changed")
        // From another site even the right token is refused.
        let crossSite = try await Self.curl(base + "/api/dags/guarded/pause", method: "POST",
                                            headers: ["cookie": cookie, "x-csrf-token": csrf, "sec-fetch-site": "cross-site"])
        #expect(crossSite.status == 403)
        let paused = try await Self.curl(base + "/api/dags/guarded/pause", method: "POST", headers: ["cookie": cookie, "x-csrf-token": csrf])
        #expect(paused.status == 200 && paused.body.contains(#""paused":true"#), "\(paused)")
        let triggered = try await Self.curl(base + "/api/dags/guarded/trigger", method: "POST", headers: ["cookie": cookie, "x-csrf-token": csrf])
        #expect(triggered.status == 200 && triggered.body.contains(#""runId":"guarded-1""#), "\(triggered)")
        let cancelled = try await Self.curl(base + "/api/runs/guarded-1/cancel", method: "POST", headers: ["cookie": cookie, "x-csrf-token": csrf])
        #expect(cancelled.status == 200 && cancelled.body.contains("RUN_STATE_CANCELLED"), "\(cancelled)")
        let again = try await Self.curl(base + "/api/runs/guarded-1/cancel", method: "POST", headers: ["cookie": cookie, "x-csrf-token": csrf])
        #expect(again.status == 409, "cancelling a finished run: \(again)")
        await harness.stop()
    }

    @Test func logoutAndARevokedTokenEndTheSession() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        let (_, cookie, csrf) = try await Self.login(base)
        let logout = try await Self.curl(base + "/api/session", method: "DELETE", headers: ["cookie": cookie, "x-csrf-token": csrf])
        #expect(logout.status == 200 && (logout.header("set-cookie") ?? "").contains("Max-Age=0"), "\(logout)")
        #expect(try await Self.curl(base + "/api/dags", headers: ["cookie": cookie]).status == 401)
        #expect(try await Self.curl(base + "/ui/", headers: ["cookie": cookie]).status == 303)

        var create = ControlV1.CreateTokenRequest()
        create.role = .admin
        let created: ControlV1.CreateTokenResponse = try await harness.control(ControlV1.ControlService.createToken, create)
        let second = try await Self.login(base, secret: created.secret)
        #expect(try await Self.curl(base + "/api/dags", headers: ["cookie": second.cookie]).status == 200)
        var revoke = ControlV1.RevokeTokenRequest()
        revoke.tokenID = created.token!.tokenID
        let _: ControlV1.RevokeTokenResponse = try await harness.control(ControlV1.ControlService.revokeToken, revoke)
        #expect(try await Self.curl(base + "/api/dags", headers: ["cookie": second.cookie]).status == 401)
        await harness.stop()
    }

    /// The live feed streams a run's and its tasks' changes as they commit.
    @Test func eventsStreamCarriesRunAndTaskChangesAsTheyCommit() async throws {
        let harness = try ServerHarness()
        let base = "http://\(harness.address)"
        _ = try await harness.apply("dag_id: watched\ntasks:\n  - {id: first, entrypoint: e}\n  - {id: second, entrypoint: e, depends_on: [first]}\n")
        let (_, cookie, _) = try await Self.login(base)
        let stream = try StreamReader(["-sS", "-N", "-i", "-H", "cookie: \(cookie)", base + "/api/events"])
        defer { stream.stop() }
        #expect(try await stream.wait(for: "event: stats", within: .seconds(10)), "\(stream.text)")
        #expect(stream.text.contains("content-type: text/event-stream"))
        let run = try await harness.trigger("watched")
        #expect(try await stream.wait(for: #""runId":"\#(run.runID)","dagId":"watched""#, within: .seconds(10)), "\(stream.text)")
        #expect(try await stream.wait(for: #""taskId":"first","state":"TASK_STATE_QUEUED""#, within: .seconds(10)), "\(stream.text)")
        #expect(stream.text.contains("event: task\ndata: {\"cursor\""))
        await harness.stop()
    }

    // MARK: Sessions and feed bounds, directly

    static func sessions(_ clock: ManualClock, _ configuration: DashboardSessions.Configuration = .init()) throws
        -> (DashboardSessions, ScratchDirectory) {
        let scratch = try ScratchDirectory()
        let tokens = try TokenStore(path: scratch.path("tokens.db"))
        try tokens.installBootstrap(secret: ServerHarness.adminSecret, now: clock.now().millisecondsSinceEpoch)
        return (DashboardSessions(tokens: tokens, clock: clock, configuration: configuration), scratch)
    }

    @Test func sessionsExpireWhenIdleAndAtTheirLifetime() throws {
        let clock = ManualClock()
        var configuration = DashboardSessions.Configuration()
        configuration.idleTimeout = .seconds(60)
        configuration.lifetime = .seconds(150)
        let (sessions, _) = try Self.sessions(clock, configuration)
        let idle = try sessions.login(secret: ServerHarness.adminSecret)
        clock.advance(milliseconds: 59_000)
        #expect(sessions.session(idle.id) != nil, "used within the idle timeout")
        clock.advance(milliseconds: 59_000)
        #expect(sessions.session(idle.id) != nil, "each use restarts the idle timeout")
        clock.advance(milliseconds: 60_000)
        #expect(sessions.session(idle.id) == nil, "idle for 60 s")

        let busy = try sessions.login(secret: ServerHarness.adminSecret)
        for _ in 0..<4 {
            clock.advance(milliseconds: 30_000)
            #expect(sessions.session(busy.id) != nil)
        }
        clock.advance(milliseconds: 30_000)
        #expect(sessions.session(busy.id) == nil, "past its lifetime, however busy")
        #expect(!sessions.isLive(busy.id))
        #expect(throws: DashboardSessions.LoginError.unknownToken) { try sessions.login(secret: "tether_0123456789ab_nope") }
    }

    @Test func theSessionTableIsBoundedAndDropsTheLeastRecentlyUsed() throws {
        let clock = ManualClock()
        var configuration = DashboardSessions.Configuration()
        configuration.maxSessions = 3
        let (sessions, _) = try Self.sessions(clock, configuration)
        var opened: [DashboardSessions.Session] = []
        for _ in 0..<3 {
            opened.append(try sessions.login(secret: ServerHarness.adminSecret))
            clock.advance(milliseconds: 1_000)
        }
        _ = sessions.session(opened[0].id)   // the oldest is used again: the second is now least recent
        let fourth = try sessions.login(secret: ServerHarness.adminSecret)
        #expect(sessions.count == 3)
        #expect(sessions.session(opened[1].id) == nil)
        #expect(sessions.session(opened[0].id) != nil && sessions.session(opened[2].id) != nil && sessions.session(fourth.id) != nil)
        #expect(Set(opened.map(\.id) + [fourth.id]).count == 4 && Set(opened.map(\.csrfToken)).count == 3)
    }

    @Test func theFeedRefusesSubscribersPastItsLimitAndDropsASlowOne() async throws {
        var limits = CommitFeed.Limits()
        limits.maxSubscribers = 2
        limits.maxBufferedBytes = 1_000
        let feed = CommitFeed(clock: ManualClock(), limits: limits)
        let fast = try #require(feed.subscribe())
        let slow = try #require(feed.subscribe())
        #expect(feed.subscribe() == nil, "a third is refused")
        let event = [UInt8](repeating: 0x61, count: 400)
        feed.publish(event)
        #expect(await fast.next() == event)
        feed.publish(event)
        #expect(await fast.next() == event)
        feed.publish(event)   // slow now holds 1,200 bytes of 1,000: dropped, its buffer freed
        #expect(slow.isClosed)
        #expect(await slow.next() == nil)
        #expect(await fast.next() == event)
        #expect(feed.subscriberCount == 2, "a dropped subscriber keeps its slot until its stream ends")
        feed.unsubscribe(slow)
        #expect(feed.subscribe() != nil)
        await feed.stop()
        #expect(await fast.next() == nil, "stopping the feed ends every stream")
    }
}

/// A child process (curl -N) whose output is collected as it comes, for waiting on
/// a streamed response's text.
final class StreamReader: Sendable {
    private let process: Process
    private let collected = Mutex("")

    init(_ curlArguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = curlArguments
        let pipe = Pipe.closingOnExec()
        process.standardOutput = pipe
        process.standardError = pipe
        try SpawnGuard.run { try process.run() }
        self.process = process
        let handle = pipe.fileHandleForReading
        Thread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                self.collected.withLock { $0 += String(decoding: chunk, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n") }
            }
        }.start()
    }

    var text: String { collected.withLock { $0 } }

    /// Whether `needle` appeared in the output within `limit`; waits on a thread of its own.
    func wait(for needle: String, within limit: Duration) async throws -> Bool {
        try await onThreadOfItsOwn { self.waitBlocking(for: needle, within: limit) }
    }

    private func waitBlocking(for needle: String, within limit: Duration) -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if text.contains(needle) { return true }
            usleep(20_000)
        }
        return text.contains(needle)
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
