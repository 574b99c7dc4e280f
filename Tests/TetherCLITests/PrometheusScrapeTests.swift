import Foundation
import Testing
import TetherTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A real Prometheus (Debian's `prometheus`, which Scripts/bootstrap installs) scraping a
/// live `tether server` with an admin token, queried through its HTTP API.
@Suite struct PrometheusScrapeTests {
    static let prometheus = URL(fileURLWithPath: "/usr/bin/prometheus")
    static let curl = URL(fileURLWithPath: "/usr/bin/curl")

    @Test func prometheusScrapesTheServerAndPromQLReturnsTheDispatchHistogramAndQueueDepth() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            try cluster.startAgent("eu-1", labels: ["region": "eu-west"], entrypoints: ["work": ["/bin/true"]])
            try cluster.apply("""
                dag_id: scraped
                tasks:
                  - {id: runs, entrypoint: work}
                  - {id: waits, entrypoint: work, queue: nobody-serves}
                """)
            let runID = try cluster.trigger("scraped")
            try cluster.wait(for: runID) { $0.tasks.first { $0.id == "runs" }?.state == "TASK_STATE_SUCCESS" }

            let port = try Self.freePort()
            let config = cluster.scratch.path("prometheus.yml")
            try """
                global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
                scrape_configs:
                  - job_name: tether
                    authorization: {credentials_file: \(cluster.scratch.path("admin.token"))}
                    static_configs: [{targets: ["127.0.0.1:\(cluster.port)"]}]
                """.write(toFile: config, atomically: true, encoding: .utf8)
            // Its log lines start "ts=<time>Z ..."; it serves queries once /-/ready says so.
            let server = try ChildProcess(Self.prometheus, [
                "--config.file=\(config)", "--storage.tsdb.path=\(cluster.scratch.path("prometheus-data"))",
                "--web.listen-address=127.0.0.1:\(port)",
            ], readyPrefix: "ts=")
            defer { server.stop() }
            let api = "http://127.0.0.1:\(port)"

            // The target is up (the token was accepted), and the histogram and the queue depth arrived.
            var last = ""
            let scraped = cluster.eventually(.seconds(60)) {
                last = (try? Self.query(api, #"up{job="tether"}"#).description) ?? last
                return (try? Self.query(api, #"up{job="tether"}"#)) == [[:]: 1]
                    && (try? Self.query(api, "tether_dispatch_latency_seconds_count"))?.values.first.map { $0 >= 1 } == true
            }
            #expect(scraped, "Prometheus never scraped the server: up = \(last); its output: \(server.recentOutput)")
            let buckets = try Self.query(api, "tether_dispatch_latency_seconds_bucket")
            #expect(buckets[["le": "+Inf"]] == 1, "\(buckets)")
            #expect(buckets.count == 19, "18 bounds and +Inf: \(buckets.keys)")
            let median = try Self.query(api, "histogram_quantile(0.5, tether_dispatch_latency_seconds_bucket)")
            #expect(median.count == 1, "a quantile PromQL can compute from the histogram: \(median)")
            let depth = try Self.query(api, "tether_queue_depth")
            #expect(depth == [["queue": "nobody-serves"]: 1], "\(depth)")
            let agents = try Self.query(api, "tether_agents_connected")
            #expect(agents == [["queue": "default", "region": "eu-west"]: 1], "\(agents)")
            #expect(try Self.query(api, #"tether_task_attempts_total{outcome="succeeded"}"#).values.first == 1)
        }
    }

    /// An instant PromQL query through `/api/v1/query`: each series' labels (without
    /// `__name__`, `job` and `instance`) -> its value. NaN values are left out.
    static func query(_ api: String, _ promQL: String) throws -> [[String: String]: Double] {
        let result = try runProcess(curl, ["-sS", "--max-time", "10", "\(api)/api/v1/query", "--data-urlencode", "query=\(promQL)"])
        guard result.status == 0,
              let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
              object["status"] as? String == "success",
              let data = object["data"] as? [String: Any], let series = data["result"] as? [[String: Any]] else {
            throw ClusterError("query \(promQL): \(result)")
        }
        var values: [[String: String]: Double] = [:]
        for one in series {
            var labels = one["metric"] as? [String: String] ?? [:]
            for name in ["__name__", "job", "instance"] { labels[name] = nil }
            guard let pair = one["value"] as? [Any], pair.count == 2, let text = pair[1] as? String,
                  let value = Double(text), !value.isNaN else { continue }
            values[labels] = value
        }
        return values
    }

    /// A loopback port nothing listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw ClusterError("no free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
