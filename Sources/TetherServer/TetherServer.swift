public import Foundation
import GRPC
import TetherWire
internal import Synchronization
public import H2
import TetherScheduler
import TetherSchedulerSQLite
public import TetherStore

/// The orchestration plane's process: one gRPC port (TLS or h2c) serving the agent
/// stream, the operator API, health and server reflection, over a data directory holding
/// the scheduler's state (`state.db`), the tokens (`tokens.db`) and the audit log
/// (`audit.db`, `AuditLog`). The same port answers
/// plain HTTP (HTTP/1.1, and HTTP/2 requests that are not gRPC; `HTTPEndpoints`):
/// `/healthz` and `/readyz` for probes, `/metrics` for Prometheus (`ServerMetrics`), and the
/// web dashboard (`Dashboard`: `/ui/`, `/api/`).
///
/// One server per data directory: `init` takes `DataDirectoryLock` on it before opening
/// either database and `shutdown` releases it. The directory is created 0700 and every
/// file the server makes in it is 0600.
///
/// When the state database cannot write (a full disk, an I/O error), health says
/// NOT_SERVING for the server and both services and calls that change state fail with
/// UNAVAILABLE; the timer task probes the store every `storeProbeInterval` and, once a
/// write commits, the scheduler reloads its state from the store, health is SERVING
/// again and every agent session is ended (UNAVAILABLE) so agents reconnect and resume
/// their leases. Both moments are logged. No restart is needed.
public final class TetherServer: Sendable {
    public struct Configuration: Sendable {
        /// Where to listen, "HOST:PORT" (port 0 picks one).
        public var listen: SocketAddress
        /// Where state lives; created if missing.
        public var dataDirectory: URL
        /// TLS certificate chain and key (PEM); nil with `insecurePlaintext` serves h2c.
        public var tlsCertificateFile: String?
        public var tlsKeyFile: String?
        public var insecurePlaintext = false
        /// A file holding an admin token's secret to install; without one, a start that
        /// finds no active admin token creates one and writes its secret to
        /// `DATA_DIR/admin.token` (`createdAdminTokenFile`), never to a log.
        public var bootstrapTokenFile: String?
        /// PRAGMA synchronous of the state database: `.full` survives power loss.
        public var synchronous = SQLiteDatabase.Options.Synchronous.full
        public var leaseTTLMilliseconds: Int64 = 30_000
        /// Attempts of one task that may end lost or rejected before the task fails for it;
        /// see `SchedulerConfiguration.maxInfrastructureAttempts`.
        public var maxInfrastructureAttempts = 10
        public var heartbeatIntervalMilliseconds: Int64 = 5_000
        /// Messages (grants, revokes, acks) that may wait for an agent that is not reading
        /// its stream before its call is ended; bounds what a stalled agent costs.
        public var agentOutboundLimit = 16_384
        /// The server's version, told to agents.
        public var version = "dev"
        /// How long `shutdown` lets calls in flight finish after GOAWAY before it closes
        /// their connections. Agent streams are ended at once, not waited for.
        public var shutdownGracePeriod: Duration = .seconds(3)
        /// Serve `/metrics` without a token (for a local scraper); by default it needs an
        /// admin token.
        public var metricsUnauthenticated = false
        /// How many audit log entries are kept (the newest; see `AuditLog`).
        public var auditRetention = AuditLog.Retention()

        public init(listen: SocketAddress, dataDirectory: URL) {
            self.listen = listen
            self.dataDirectory = dataDirectory
        }
    }

    /// Why the server could not start, in words for an operator.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The file under the data dir the first start writes the admin token it creates to.
    public static let adminTokenFileName = "admin.token"

    /// How often a failing state store is probed for a write that commits.
    static let storeProbeInterval = Duration.milliseconds(500)

    public let configuration: Configuration
    /// Where the admin token created on this start (because none was active) was written,
    /// 0600; nil when none was created.
    public let createdAdminTokenFile: String?
    private let grpc: GRPCServer
    private let store: SQLiteSchedulerStore
    private let scheduler: SchedulerService
    private let sessions: AgentSessions
    /// Committed changes and agents, for `WatchEvents` and the dashboard's live feed.
    private let feed: CommitFeed
    /// What `WatchEvents` streams (tests read its cursor).
    var eventLog: EventLog { feed.log }
    private let control: ControlService
    private let tokens: TokenStore
    private let timers = TimerTask()
    /// Writes the agent directory every `directorySaveInterval`.
    private let directorySaver = Mutex<Task<Void, Never>?>(nil)
    static let directorySaveInterval: Duration = .seconds(5)
    private let readiness = Readiness()
    /// Held from before the databases open until `shutdown` has closed the state store.
    private let lock: Mutex<DataDirectoryLock?>
    private let log: @Sendable (String) -> Void

    /// - Parameter log: one line per event an operator should know of (the state store
    ///   failing and recovering), without a timestamp or a "tether server:" prefix.
    public init(configuration: Configuration, log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.configuration = configuration
        self.log = log
        let tls: TLSContext?
        switch (configuration.tlsCertificateFile, configuration.tlsKeyFile, configuration.insecurePlaintext) {
        case (let cert?, let key?, false):
            var tlsConfiguration = TLSConfiguration.server(certificateChainFile: cert, privateKeyFile: key)
            tlsConfiguration.acceptsHTTP11 = true   // browsers and scrapers without h2 get HTTP/1.1
            tls = try TLSContext(tlsConfiguration)
        case (nil, nil, true):
            tls = nil
        case (_, _, true):
            throw StartError(description: "--insecure-plaintext cannot be combined with --tls-cert/--tls-key")
        default:
            throw StartError(description: "give both --tls-cert and --tls-key, or --insecure-plaintext for h2c")
        }
        let directory = configuration.dataDirectory
        do {
            try PrivateFiles.createDirectories(directory.path)
        } catch {
            throw StartError(description: "cannot create data dir \(directory.path): \(error)")
        }
        let lock: DataDirectoryLock
        do {
            lock = try DataDirectoryLock(directory: directory.path)
        } catch .held(_, let pid) {
            throw StartError(description: "data dir \(directory.path) is in use by another tether server "
                             + "(\(pid.map { "pid \($0)" } ?? "pid unknown")); one server per data dir")
        } catch {
            throw StartError(description: "\(error)")
        }
        self.lock = Mutex(lock)
        let clock = SystemClock()
        let tokens = try TokenStore(path: directory.appendingPathComponent("tokens.db").path)
        self.tokens = tokens
        let audit = try AuditLog(path: directory.appendingPathComponent("audit.db").path, retention: configuration.auditRetention)
        let now = clock.now().millisecondsSinceEpoch
        if let file = configuration.bootstrapTokenFile {
            let secret: String
            do {
                secret = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw StartError(description: "cannot read --bootstrap-token-file \(file): \(error.localizedDescription)")
            }
            try tokens.installBootstrap(secret: secret, now: now)
            createdAdminTokenFile = nil
        } else if !tokens.hasActiveAdmin(now: now) {
            // The secret goes to its file before the token is stored: a crash between the two
            // leaves a file and no token (the next start says so), never a token nobody has.
            let file = directory.appendingPathComponent(Self.adminTokenFileName).path
            _ = try tokens.create(role: .admin, description: "created on first start", now: now) { secret in
                do throws(FileSystemError) {
                    try PrivateFiles.createExclusively(file, contents: secret + "\n")
                } catch where error.errno == EEXIST {
                    throw StartError(description: "no admin token is active and \(file) already exists; remove it to have a new "
                                     + "admin token created, or pass --bootstrap-token-file \(file) to install the secret it holds")
                } catch {
                    throw StartError(description: "cannot write the admin token: \(error)")
                }
            }
            createdAdminTokenFile = file
        } else {
            createdAdminTokenFile = nil
        }

        store = try SQLiteSchedulerStore(path: directory.appendingPathComponent("state.db").path, synchronous: configuration.synchronous)
        let transportCounters = HTTPServerCounters()
        let metrics = ServerMetrics(transport: transportCounters, finishedAttempts: try store.finishedAttemptCounts())
        store.observeCommits { metrics.committed($0) }
        let sessions = AgentSessions(directory: try AgentDirectory(path: directory.appendingPathComponent("agents.db").path))
        self.sessions = sessions
        // Made before the scheduler: its first commit may already fail.
        let health = GRPCHealthService()
        for service in Self.healthServices { health.setStatus(.serving, for: service) }
        let readiness = self.readiness
        let feed = CommitFeed(clock: clock)
        self.feed = feed
        scheduler = try SchedulerService(
            store: ObservedSchedulerStore(MeteredSchedulerStore(store, metrics: metrics), feed: feed), clock: clock,
            configuration: SchedulerConfiguration(leaseTTLMilliseconds: configuration.leaseTTLMilliseconds,
                                                  maxInfrastructureAttempts: configuration.maxInfrastructureAttempts),
            onEvent: { event in Self.respond(to: event, health: health, readiness: readiness, sessions: sessions, log: log) }
        ) { effects in
            sessions.deliver(effects)
            metrics.delivered(effects)
        }
        let authenticator = Authenticator(tokens: tokens, clock: clock)
        var router = GRPCRouter()
        AgentService(scheduler: scheduler, sessions: sessions, authenticator: authenticator,
                     heartbeatIntervalMilliseconds: UInt64(configuration.heartbeatIntervalMilliseconds),
                     leaseTTLMilliseconds: UInt64(configuration.leaseTTLMilliseconds),
                     serverVersion: configuration.version,
                     outboundLimit: configuration.agentOutboundLimit).register(in: &router)
        control = ControlService(scheduler: scheduler, store: store, sessions: sessions, tokens: tokens,
                                 authenticator: authenticator, events: feed.log, audit: audit, log: log)
        control.register(in: &router)
        var grpcConfiguration = GRPCServer.Configuration(address: configuration.listen, tls: tls)
        // No busy polling: a dispatch waits on the state database's commit, not on a wake-up,
        // and polling took CPU from the commit (BENCHMARKS.md, "Busy polling").
        grpcConfiguration.busyPoll = .zero
        grpcConfiguration.http2.gracefulShutdownTimeout = configuration.shutdownGracePeriod
        // Reflection describes the public contract in Protos/ and nothing else, so it is open
        // to any caller, as health is; the services it describes still check tokens.
        let scheduler = self.scheduler
        let dashboard = Dashboard(control: control, sessions: DashboardSessions(tokens: tokens, clock: clock), feed: feed)
        let endpoints = HTTPEndpoints(
            readiness: readiness, authenticator: authenticator,
            metricsAccess: HTTPEndpoints.metricsAccess(unauthenticated: configuration.metricsUnauthenticated),
            dashboard: dashboard
        ) { metrics.exposition(ServerMetrics.snapshot(scheduler, sessions)) }
        grpc = try GRPCServer(configuration: grpcConfiguration, router: router, health: health,
                              reflection: WireRegistry.fileDescriptors, httpHandler: { request in await endpoints.handle(request) },
                              transportCounters: transportCounters)
    }

    /// What health reports on, besides the server as a whole ("").
    static let healthServices = ["", AgentV1.AgentService.serviceName, ControlV1.ControlService.serviceName]

    /// How an agent's stream ends when the scheduler reloaded its state after a store outage.
    static let reloaded = GRPCStatus(code: .unavailable,
                                     message: "the server reloaded its state after its store could not write; reconnect to resume your leases")

    /// A store outage began or ended: health, the log, and (at the end) the agent sessions,
    /// whose scheduler state was replaced by the reloaded one.
    private static func respond(to event: SchedulerServiceEvent, health: GRPCHealthService, readiness: Readiness,
                                sessions: AgentSessions, log: @Sendable (String) -> Void) {
        switch event {
        case .storeFailed(let reason):
            for service in healthServices { health.setStatus(.notServing, for: service) }
            readiness.set(.storeFailed(reason))
            log("state store failed: \(reason). Health is NOT_SERVING and calls that change state fail with UNAVAILABLE "
                + "until a probe write commits (tried every \(storeProbeInterval))")
        case .recovered(let outage):
            let live = sessions.all
            for session in live { session.end(reloaded) }
            for service in healthServices { health.setStatus(.serving, for: service) }
            readiness.set(.ready)
            let seconds = Double(outage.components.seconds) + Double(outage.components.attoseconds) / 1e18
            log("state store writes again after \(String(format: "%.1f", seconds)) s: state reloaded from it, health is SERVING; "
                + "ended \(live.count) agent session\(live.count == 1 ? "" : "s") so their agents reconnect and resume their leases")
        }
    }

    /// Starts serving and firing the scheduler's timers; returns the bound address.
    public func start() throws -> SocketAddress {
        let address = try grpc.start()
        timers.start(scheduler)
        directorySaver.withLock { [sessions, scheduler, log] saver in
            saver = Task.detached {
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.directorySaveInterval)
                    do { try sessions.saveDirectory(scheduler) } catch { log("cannot save the agent directory: \(error)") }
                }
            }
        }
        feed.start(scheduler: scheduler) { [control] in
            var request = ControlV1.ListAgentsRequest()
            request.includeDisconnected = true
            return (try? await control.listAgents(request))?.agents ?? []
        }
        readiness.started()
        return address
    }

    /// Says "not ready" from now on (`/readyz` answers 503 "draining"), so load balancers and
    /// probes stop sending work, while everything else keeps serving. `shutdown` calls it
    /// first; call it earlier to give them time to notice before the port closes.
    public func beginDraining() {
        readiness.set(.draining)
    }

    /// Graceful stop, bounded by `shutdownGracePeriod` plus the last commits: health goes
    /// NOT_SERVING, the listening socket closes (new connections are refused), GOAWAY goes
    /// out, connected agents get no more grants and their streams end with UNAVAILABLE
    /// "server shutting down" (they reconnect and resume their leases), other calls in
    /// flight finish or are cut at the grace period; then the timers stop, pending commits
    /// drain and the data dir is unlocked.
    public func shutdown() async {
        beginDraining()
        await feed.stop()   // live feeds end now rather than hold the grace period
        await grpc.shutdown(graceful: true) { [sessions, scheduler] in
            await Self.endAgentStreams(sessions, scheduler)
        }
        await timers.stop()
        let saver = directorySaver.withLock { $0 }
        saver?.cancel()
        await saver?.value
        do { try sessions.saveDirectory(scheduler) } catch { log("cannot save the agent directory: \(error)") }
        // Tokens' last use since its last lazy write (at most a minute of it).
        let tokens = self.tokens
        _ = await Task.detached { try? tokens.persistLastUsed() }.value
        store.close()
        lock.withLock { $0 = nil }
    }

    /// How an agent's stream ends when the server stops.
    static let shuttingDown = GRPCStatus(code: .unavailable, message: "server shutting down")

    /// Ends every agent stream. First the scheduler forgets the agents' free slots in one
    /// commit, so no grant is made after it (their leases stand, for them to resume); the
    /// grants committed before it are queued to their sessions by the time it returns.
    private static func endAgentStreams(_ sessions: AgentSessions, _ scheduler: SchedulerService) async {
        let live = sessions.all
        guard !live.isEmpty else { return }
        _ = try? await scheduler.perform { scheduler in
            for session in live { scheduler.agentDisconnected(session.name) }
        }
        for session in live { session.end(shuttingDown, reason: .serverStopped) }
    }
}

/// Calls `SchedulerService.tick()` when its next deadline comes. Sleeps at most 100 ms
/// at a time, so a deadline that moved earlier (a new retry, a shorter lease) is picked
/// up within that; grants never wait on this, only retries, expiries, timeouts and cron.
/// While the store fails it calls `recover()` every `TetherServer.storeProbeInterval`
/// instead.
private final class TimerTask: Sendable {
    private let task = Mutex<Task<Void, Never>?>(nil)

    func start(_ scheduler: SchedulerService) {
        task.withLock { task in
            task = Task.detached {
                while !Task.isCancelled {
                    let now = scheduler.clock.now().millisecondsSinceEpoch
                    let due = scheduler.nextDeadline?.millisecondsSinceEpoch ?? .max
                    if scheduler.hasFailed {
                        if await !scheduler.recover() {
                            try? await Task.sleep(for: TetherServer.storeProbeInterval)
                        }
                    } else if due <= now {
                        scheduler.tick()
                    } else {
                        try? await Task.sleep(for: .milliseconds(min(100, due - now)))
                    }
                }
            }
        }
    }

    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }
}
