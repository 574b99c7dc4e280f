import CoreMetrics
import Foundation
import H2
import Prometheus
internal import Synchronization
import TetherScheduler
import TetherStore

/// The server's metrics, as `GET /metrics` serves them (Prometheus text format 0.0.4).
///
/// Instruments fed by events are swift-metrics types (`Timer`, `Recorder`, `Counter`) whose
/// handlers are swift-prometheus collectors in this server's own registry (not the process's
/// global `MetricsSystem`: one process may run several servers, as the tests do):
/// - `tether_dispatch_latency_seconds` (histogram): a task's readiness -> its grant, per
///   grant, on the scheduler's millisecond clock. It includes the time a task waited for a
///   free slot.
/// - `tether_task_attempts_total{outcome}`: attempts that ended, by final outcome, counted
///   once their end is committed. Seeded at start from the store, so it carries on across
///   restarts rather than starting from 0.
/// - `tether_store_commit_duration_seconds` (histogram), `tether_store_commit_batch_size`
///   (histogram of changes per commit), `tether_store_commits_failed_total`: the state
///   database's group commit.
///
/// State is read when scraped, never kept beside the state it describes:
/// - `tether_queue_depth{queue}`: ready tasks waiting for a grant.
/// - `tether_leases_active`: live leases.
/// - `tether_agents_connected{queue,region}`: connected agents; one serving several queues
///   counts once in each; `region` is the agent's `region` label ("" without one).
/// - the transport's `tether_http_connections_open`, `tether_http_connections_total`,
///   `tether_http2_streams_open`, `tether_http2_streams_total`, `tether_http1_requests_total`,
///   `tether_http_received_bytes_total`, `tether_http_sent_bytes_total` (`HTTPServerCounters`;
///   these start from 0 with the process), and the `process_*` metrics (`ProcessMetrics`).
///
/// No label carries a run, task or lease: series grow with queues, regions and outcomes only.
///
/// Thread-safe. Event instruments are fed from the commit thread; scrapes are serialized.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let dispatchLatency: CoreMetrics.Timer
    private let attempts: [AttemptOutcome: CoreMetrics.Counter]
    private let commitDuration: CoreMetrics.Timer
    private let commitBatchSize: CoreMetrics.Recorder
    private let failedCommits: CoreMetrics.Counter
    private let scrape: Mutex<ScrapedState>
    private let transport: HTTPServerCounters

    static let dispatchLatencyBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2_500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3_600),
    ]
    static let commitDurationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2_500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2_500), .seconds(5),
    ]
    static let commitBatchSizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    /// The outcomes `tether_task_attempts_total` has a series for, from the start.
    static let finalOutcomes = AttemptOutcome.allCases.filter { $0 != .running }

    /// - Parameters:
    ///   - transport: the server's transport counters, read at each scrape.
    ///   - finishedAttempts: attempts already ended, by outcome, as the store holds them.
    init(transport: HTTPServerCounters, finishedAttempts: [AttemptOutcome: Int]) {
        self.transport = transport
        let registry = self.registry
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
        dispatchLatency = CoreMetrics.Timer(
            label: "tether_dispatch_latency_seconds", dimensions: [],
            handler: registry.makeDurationHistogram(
                descriptor: descriptor("tether_dispatch_latency_seconds",
                                       "Time from a task becoming ready to its lease being granted (millisecond clock)."),
                buckets: Self.dispatchLatencyBuckets))
        var attempts: [AttemptOutcome: CoreMetrics.Counter] = [:]
        for outcome in Self.finalOutcomes {
            let counter = CoreMetrics.Counter(
                label: "tether_task_attempts_total", dimensions: [("outcome", outcome.rawValue)],
                handler: registry.makeCounter(
                    descriptor: descriptor("tether_task_attempts_total", "Task attempts ended, by outcome, since the data dir was made."),
                    labels: [("outcome", outcome.rawValue)]))
            if let seed = finishedAttempts[outcome], seed > 0 { counter.increment(by: Int64(seed)) }
            attempts[outcome] = counter
        }
        self.attempts = attempts
        commitDuration = CoreMetrics.Timer(
            label: "tether_store_commit_duration_seconds", dimensions: [],
            handler: registry.makeDurationHistogram(
                descriptor: descriptor("tether_store_commit_duration_seconds",
                                       "State database commits: BEGIN to the end of COMMIT (fsync included)."),
                buckets: Self.commitDurationBuckets))
        commitBatchSize = CoreMetrics.Recorder(
            label: "tether_store_commit_batch_size", dimensions: [], aggregate: true,
            handler: registry.makeValueHistogram(
                descriptor: descriptor("tether_store_commit_batch_size", "Scheduler changes written by one state database commit."),
                buckets: Self.commitBatchSizeBuckets))
        failedCommits = CoreMetrics.Counter(
            label: "tether_store_commits_failed_total", dimensions: [],
            handler: registry.makeCounter(descriptor: descriptor(
                "tether_store_commits_failed_total", "State database commits that failed (a full disk, an I/O error).")))
        scrape = Mutex(ScrapedState(registry: registry))
    }

    // MARK: Events

    /// Grants just delivered (after their commit): their dispatch latency. Commit thread.
    func delivered(_ effects: [SchedulerEffect]) {
        for case .grant(let grant) in effects {
            let milliseconds = max(0, grant.grantedAt.millisecondsSinceEpoch - grant.readyAt.millisecondsSinceEpoch)
            dispatchLatency.recordNanoseconds(milliseconds * 1_000_000)
        }
    }

    /// A commit batch of the state database (`SQLiteSchedulerStore.observeCommits`).
    func committed(_ batch: GroupCommitBatch) {
        commitDuration.recordNanoseconds(Int64(batch.duration.components.seconds) * 1_000_000_000
                                         + batch.duration.components.attoseconds / 1_000_000_000)
        commitBatchSize.record(batch.size)
        if !batch.committed { failedCommits.increment() }
    }

    /// Attempts whose end was just committed, by outcome.
    func attemptsEnded(_ outcomes: [AttemptOutcome: Int]) {
        for (outcome, count) in outcomes { attempts[outcome]?.increment(by: Int64(count)) }
    }

    // MARK: Scrapes

    /// What the scheduler and the agent sessions hold now, read once per scrape.
    struct Snapshot: Sendable {
        var readyTasksByQueue: [String: Int] = [:]
        var activeLeases = 0
        /// Connected agents by (queue, region).
        var agentsByQueueAndRegion: [[String]: Int] = [:]
    }

    /// Reads the scheduler (under its lock, briefly) and the sessions.
    static func snapshot(_ scheduler: SchedulerService, _ sessions: AgentSessions) -> Snapshot {
        var snapshot = scheduler.read { scheduler in
            Snapshot(readyTasksByQueue: scheduler.readyTasksByQueue, activeLeases: scheduler.activeLeaseCount)
        }
        for session in sessions.all {
            let region = session.hello.labels["region"] ?? ""
            for queue in Set(session.hello.queues) { snapshot.agentsByQueueAndRegion[[queue, region], default: 0] += 1 }
        }
        return snapshot
    }

    /// The exposition: gauges set from `snapshot`, transport and process counters brought up
    /// to date, then every metric in the registry. One scrape at a time.
    func exposition(_ snapshot: Snapshot) -> [UInt8] {
        scrape.withLock { state in
            state.update(snapshot, transport: transport)
            var buffer: [UInt8] = []
            buffer.reserveCapacity(state.lastSize + 1024)
            registry.emit(into: &buffer)
            state.lastSize = buffer.count
            return buffer
        }
    }

    /// The content type of `exposition`'s bytes.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// The collectors a scrape sets: gauges whose series are the label sets found, and counters
/// that follow a count kept elsewhere. Under `ServerMetrics.scrape` only.
private struct ScrapedState: ~Copyable {
    var queueDepth: LabeledGauges
    var agentsConnected: LabeledGauges
    let leasesActive: Prometheus.Gauge
    let connectionsOpen: Prometheus.Gauge
    let streamsOpen: Prometheus.Gauge
    var connectionsTotal: FollowingCounter
    var streamsTotal: FollowingCounter
    var http1Requests: FollowingCounter
    var bytesReceived: FollowingCounter
    var bytesSent: FollowingCounter
    var process: ProcessMetrics
    var lastSize = 0

    init(registry: PrometheusCollectorRegistry) {
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
        queueDepth = LabeledGauges(registry, descriptor("tether_queue_depth", "Ready tasks waiting for a grant, by queue."))
        agentsConnected = LabeledGauges(registry, descriptor(
            "tether_agents_connected", "Connected agents by queue served and region label; an agent counts once per queue."))
        leasesActive = registry.makeGauge(descriptor: descriptor("tether_leases_active", "Live task leases."))
        connectionsOpen = registry.makeGauge(descriptor: descriptor(
            "tether_http_connections_open", "Open client connections (HTTP/2 and HTTP/1.1)."))
        streamsOpen = registry.makeGauge(descriptor: descriptor("tether_http2_streams_open", "Open HTTP/2 streams (calls)."))
        connectionsTotal = FollowingCounter(registry.makeCounter(descriptor: descriptor(
            "tether_http_connections_total", "Client connections accepted since the server started.")))
        streamsTotal = FollowingCounter(registry.makeCounter(descriptor: descriptor(
            "tether_http2_streams_total", "HTTP/2 streams (calls) opened by clients since the server started.")))
        http1Requests = FollowingCounter(registry.makeCounter(descriptor: descriptor(
            "tether_http1_requests_total", "HTTP/1.1 requests read since the server started.")))
        bytesReceived = FollowingCounter(registry.makeCounter(descriptor: descriptor(
            "tether_http_received_bytes_total", "Bytes read from clients (after TLS decryption) since the server started.")))
        bytesSent = FollowingCounter(registry.makeCounter(descriptor: descriptor(
            "tether_http_sent_bytes_total", "Bytes written to clients (before TLS encryption) since the server started.")))
        process = ProcessMetrics(registry)
    }

    mutating func update(_ snapshot: ServerMetrics.Snapshot, transport: HTTPServerCounters) {
        queueDepth.set(Dictionary(uniqueKeysWithValues: snapshot.readyTasksByQueue.map { ([$0.key], Double($0.value)) }),
                       labelNames: ["queue"])
        agentsConnected.set(snapshot.agentsByQueueAndRegion.mapValues(Double.init), labelNames: ["queue", "region"])
        leasesActive.set(to: Double(snapshot.activeLeases))
        connectionsOpen.set(to: Double(transport.connectionsOpen))
        streamsOpen.set(to: Double(transport.streamsOpenNow))
        connectionsTotal.follow(transport.connectionsAccepted)
        streamsTotal.follow(transport.streamsOpened)
        http1Requests.follow(transport.http1Requests)
        bytesReceived.follow(transport.bytesReceived)
        bytesSent.follow(transport.bytesSent)
        process.update()
    }
}

/// A gauge family whose series are the label sets the last scrape found: each set to its
/// value, and a series no longer found (a queue nobody serves any more) removed from the
/// registry, so the family never outgrows what exists.
struct LabeledGauges {
    private let registry: PrometheusCollectorRegistry
    private let descriptor: MetricNameDescriptor
    private var gauges: [[String]: Prometheus.Gauge] = [:]

    init(_ registry: PrometheusCollectorRegistry, _ descriptor: MetricNameDescriptor) {
        self.registry = registry
        self.descriptor = descriptor
    }

    /// Sets the series of each label value list (in `labelNames`' order) and drops the rest.
    mutating func set(_ values: [[String]: Double], labelNames: [String]) {
        for (labels, gauge) in gauges where values[labels] == nil {
            registry.unregisterGauge(gauge)
            gauges[labels] = nil
        }
        for (labels, value) in values {
            if gauges[labels] == nil {
                gauges[labels] = registry.makeGauge(descriptor: descriptor, labels: Array(zip(labelNames, labels)))
            }
            gauges[labels]!.set(to: value)
        }
    }
}

/// A Prometheus counter that follows a count kept elsewhere (the transport's atomics): each
/// scrape adds what the count grew by since the last.
struct FollowingCounter {
    let counter: Prometheus.Counter
    private var last = 0

    init(_ counter: Prometheus.Counter) { self.counter = counter }

    mutating func follow(_ count: Int) {
        if count > last { counter.increment(by: Int64(count - last)) }
        last = count
    }
}
