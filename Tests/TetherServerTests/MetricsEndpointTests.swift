import Foundation
import GRPC
import Testing
import TetherServer
import TetherTestSupport
import TetherWire

/// `GET /metrics`: who may read it, and what it says about queues, leases, agents, dispatch,
/// outcomes, commits and the transport, over HTTP/1.1 and h2c.
@Suite struct MetricsEndpointTests {
    static let twoQueues = """
        dag_id: metered
        tasks:
          - id: served
            entrypoint: work
            queue: eu-work
          - id: stranded
            entrypoint: work
            queue: nobody-serves
        """

    /// The samples of an exposition: "name{labels}" (as written) -> value.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// `/metrics` of `harness` with `secret` as bearer token, over HTTP/1.1 or (`h2`) h2c.
    static func scrape(_ harness: ServerHarness, secret: String? = ServerHarness.adminSecret,
                       h2: Bool = false) async throws -> (status: Int, body: String, version: String) {
        try await HTTPEndpointTests.get("http://\(harness.address)/metrics",
                                        [h2 ? "--http2-prior-knowledge" : "--http1.1"]
                                            + (secret.map { ["-H", "authorization: Bearer \($0)"] } ?? []))
    }

    @Test func metricsNeedAnAdminToken401WithoutOrWithAWrongOne403ForAnAgentToken() async throws {
        let h = try ServerHarness()
        let agentToken = try await h.createToken(.agent, agentName: "eu-1")
        let viewerToken = try await h.createToken(.viewer), operatorToken = try await h.createToken(.operator)
        for h2 in [false, true] {
            for (role, secret) in [("viewer", viewerToken), ("operator", operatorToken)] {
                let refused = try await Self.scrape(h, secret: secret, h2: h2)
                #expect(refused.status == 403 && refused.body.contains("\(role) token"), "\(refused)")
            }
            let missing = try await Self.scrape(h, secret: nil, h2: h2)
            #expect(missing.status == 401 && missing.body.contains("Bearer"), "\(missing)")
            #expect(try await Self.scrape(h, secret: "tether_000000000000_wrong", h2: h2).status == 401)
            let agent = try await Self.scrape(h, secret: agentToken, h2: h2)
            #expect(agent.status == 403 && agent.body.contains("agent token"), "\(agent)")
            let admin = try await Self.scrape(h, h2: h2)
            #expect(admin.status == 200 && admin.version == (h2 ? "2" : "1.1"))
            #expect(admin.body.contains("# TYPE tether_dispatch_latency_seconds histogram"))
        }
        await h.stop()
    }

    @Test func metricsUnauthenticatedServesMetricsWithoutAToken() async throws {
        let h = try ServerHarness(metricsUnauthenticated: true)
        let open = try await Self.scrape(h, secret: nil)
        #expect(open.status == 200 && open.body.contains("tether_leases_active 0"), "\(open)")
        let head = try await HTTPEndpointTests.get("http://\(h.address)/metrics", ["-sI"]).body.lowercased()   // HEAD
        #expect(head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "\(head)")
        await h.stop()
    }

    @Test func metricsReadQueueDepthLeasesAndAgentsFromStateAndCountDispatchOutcomesAndCommits() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(Self.twoQueues)
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"], queues: ["eu-work", "shared"],
                                             labels: ["region": "eu-west"])
        _ = try await agent.welcome()
        let other = try await h.connectAgent("us-1", entrypoints: ["work"], queues: ["shared"])
        _ = try await other.welcome()
        _ = try await h.trigger("metered")
        let grant = try await agent.grant()
        var metrics = Self.samples(try await Self.scrape(h).body)
        #expect(metrics["tether_queue_depth{queue=\"nobody-serves\"}"] == 1)
        #expect(metrics["tether_queue_depth{queue=\"eu-work\"}"] == nil, "nothing waits there: no series")
        #expect(metrics["tether_leases_active"] == 1)
        #expect(metrics["tether_agents_connected{queue=\"eu-work\",region=\"eu-west\"}"] == 1)
        #expect(metrics["tether_agents_connected{queue=\"shared\",region=\"eu-west\"}"] == 1)
        #expect(metrics["tether_agents_connected{queue=\"shared\",region=\"\"}"] == 1)
        #expect(metrics["tether_dispatch_latency_seconds_count"] == 1)
        #expect(metrics["tether_dispatch_latency_seconds_bucket{le=\"+Inf\"}"] == 1)
        #expect((metrics["tether_store_commit_batch_size_count"] ?? 0) >= 1)
        #expect((metrics["tether_store_commit_duration_seconds_count"] ?? 0) >= 1)
        #expect(metrics["tether_task_attempts_total{outcome=\"succeeded\"}"] == 0)

        try await agent.report(grant, .succeeded, sequence: 1)
        _ = try await agent.ack()   // sent after the commit that counted it
        await other.close()
        _ = await other.endStatus()
        metrics = Self.samples(try await Self.scrape(h, h2: true).body)
        #expect(metrics["tether_task_attempts_total{outcome=\"succeeded\"}"] == 1)
        #expect(metrics["tether_task_attempts_total{outcome=\"failed\"}"] == 0)
        #expect(metrics["tether_leases_active"] == 0)
        #expect(metrics["tether_agents_connected{queue=\"shared\",region=\"\"}"] == nil, "us-1 left: its series is gone")
        #expect((metrics["tether_http2_streams_total"] ?? 0) >= 5)   // calls above, the h2 scrape itself
        #expect((metrics["tether_http1_requests_total"] ?? 0) >= 1)
        #expect((metrics["tether_http_received_bytes_total"] ?? 0) > 0 && (metrics["tether_http_sent_bytes_total"] ?? 0) > 0)
        #expect((metrics["tether_http_connections_open"] ?? 0) >= 2)   // the harness's client and curl
        #expect((metrics["process_resident_memory_bytes"] ?? 0) > 0 && (metrics["process_open_fds"] ?? 0) > 0)
        await agent.close()
        await h.stop()
    }

    @Test func taskOutcomeTotalsCarryOnAcrossARestart() async throws {
        let h = try ServerHarness()
        _ = try await h.apply(AgentServiceTests.chain)
        let agent = try await h.connectAgent("eu-1", entrypoints: ["work"])
        _ = try await agent.welcome()
        _ = try await h.trigger("chain")
        try await agent.report(try await agent.grant(), .succeeded, sequence: 1)
        try await agent.report(try await agent.grant(), .failed, sequence: 2)
        #expect(try await agent.ack().sequence >= 1)
        while try await agent.ack().sequence < 2 {}
        await agent.close()
        await h.stop()

        let restarted = try ServerHarness(restarting: h)
        let metrics = Self.samples(try await Self.scrape(restarted).body)
        #expect(metrics["tether_task_attempts_total{outcome=\"succeeded\"}"] == 1)
        #expect(metrics["tether_task_attempts_total{outcome=\"failed\"}"] == 1)
        #expect(metrics["tether_dispatch_latency_seconds_count"] == 0, "histograms start afresh with the process")
        await restarted.stop()
    }
}
