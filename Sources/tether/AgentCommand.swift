import ArgumentParser
import Foundation
import GRPC
import H2
import TetherAgent

/// `tether agent`: the execution plane, dialing out to the server.
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run an agent: dial out to the server, run leased tasks from local entrypoints.",
        discussion: """
            Settings come from flags, then TETHER_* environment variables (TETHER_SERVER,
            TETHER_CA_FILE, TETHER_TOKEN_FILE, TETHER_NAME, TETHER_LABELS=k=v,k=v,
            TETHER_QUEUES=a,b, TETHER_SLOTS, TETHER_LOG_DIR, TETHER_STATE_DIR,
            TETHER_LOG_RETENTION, TETHER_KILL_GRACE, TETHER_INSECURE_PLAINTEXT), then the
            --config file. Entrypoints (name -> argv, env, working_dir, timeout) come
            from the file only: the server sends entrypoint names, never commands.

            Task output goes to LOG_DIR/DAG/RUN/TASK.attempt-N.log and never leaves this
            machine. Task events wait in STATE_DIR/outbox.db until the server has stored
            them. Directories the agent creates are 0700, its files 0600. HTTPS_PROXY /
            NO_PROXY (HTTP_PROXY for http:// servers) are honoured via CONNECT.

            SIGTERM drains: no new leases, running tasks finish, then exit 0. A second
            SIGTERM or a SIGINT cancels running tasks (SIGTERM, then SIGKILL after
            kill_grace) and exits once they have ended; events the server has not
            acknowledged wait in state_dir for the next start. SIGHUP reconnects, reading token_file again; a token the server
            refuses (revoked, expired, bound to another name) is read again too, and if
            it has not changed the agent stops its tasks and exits 4.

            Tasks stop by themselves when the server has not confirmed their lease for
            the lease TTL less a tenth (the agent reports them lost), and die with the
            agent, even one killed by SIGKILL; a helper process kills them on time while
            the agent itself is stopped or hung.

            Log lines go to stderr, each after its UTC time, or with --log-format json one
            JSON object per line (time, level, label, message, metadata). Under systemd
            (NOTIFY_SOCKET set) it sends READY=1 once started, STOPPING=1 at the first
            SIGTERM or SIGINT, and WATCHDOG=1 every half of WATCHDOG_USEC when that is set.
            """
    )

    @Option(help: "Agent config file (YAML).") var config: String?
    @Option(help: "Server URL, https://HOST:PORT.") var server: String?
    @Option(help: "CA certificate (PEM) for the server.") var caFile: String?
    @Option(help: "File holding the agent's token.") var tokenFile: String?
    @Option(help: "Agent name, unique among connected agents.") var name: String?
    @Option(help: "Labels, k=v,k=v.") var labels: String?
    @Option(help: "Queues to serve, comma-separated.") var queues: String?
    @Option(help: "Tasks run at once.") var slots: String?
    @Option(help: "Where task logs go.") var logDir: String?
    @Option(help: "Where the event outbox lives.") var stateDir: String?
    @Option(help: "How long task logs are kept, e.g. 7d.") var logRetention: String?
    @Option(help: "SIGTERM to SIGKILL grace when stopping a task, e.g. 10s.") var killGrace: String?
    @Flag(help: "Allow an http:// server (plaintext h2c). Only for local use.") var insecurePlaintext = false
    @Option(help: "How log lines on stderr read: human (time, then the line) or json (one object per line).")
    var logFormat: LogFormat = .human

    func run() async throws {
        let signals = terminationSignals(also: [SIGHUP])
        let log = daemonLogger(label: "tether.agent", name: "tether agent", format: logFormat)
        let notifier = ServiceNotifier()
        // Why it stops at once: without a time (as other commands' errors), or as JSON.
        func plainError(_ message: String) {
            if logFormat == .json { log.error("\(message)") } else { printError("tether agent: \(message)") }
        }
        var fileText: String?
        if let config {
            do {
                fileText = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw CLIError("cannot read --config \(config): \(error.localizedDescription)")
            }
        }
        let overrides = AgentConfiguration.Overrides(
            server: server, caFile: caFile, tokenFile: tokenFile, name: name, labels: labels, queues: queues, slots: slots,
            logDirectory: logDir, stateDirectory: stateDir, logRetention: logRetention, killGrace: killGrace,
            insecurePlaintext: insecurePlaintext ? "true" : nil)
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.resolve(fileText: fileText, sourceName: config ?? "<none>",
                                                           environment: ProcessInfo.processInfo.environment, overrides: overrides)
        } catch {
            plainError("\(error)")
            throw ExitCode(2)
        }
        let daemon: AgentDaemon
        do {
            let tokenFile = configuration.tokenFile
            let token: @Sendable () throws -> String = {
                try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            _ = try token()  // a missing or unreadable token_file stops the start
            daemon = try AgentDaemon(configuration: configuration, token: token, client: try configuration.makeClient()) { line in
                log.info("\(line)")
            }
        } catch {
            plainError("\(error)")
            throw ExitCode(1)
        }
        log.info("\(configuration.name) starting; server \(configuration.server), queues \(configuration.queues.joined(separator: ",")), slots \(configuration.slots)")
        notifier.ready()
        notifier.startWatchdog()
        let watcher = Task {
            var count = 0
            for await signal in signals {
                if signal == SIGHUP {
                    daemon.reconnect()
                    continue
                }
                count += 1
                if count == 1 { notifier.stopping() }
                if count == 1 && signal == SIGTERM {
                    daemon.drain(reason: "SIGTERM")
                } else {
                    daemon.stop()
                }
            }
        }
        await daemon.run()
        watcher.cancel()
        if let refusal = daemon.refusal {
            plainError("stopped: the server refused this agent's token (\(refusal.code): \(refusal.message))")
            throw ExitCode(4)
        }
        log.info("stopped")
    }
}
