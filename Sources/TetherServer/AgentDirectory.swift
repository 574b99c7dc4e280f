import Foundation
internal import Synchronization
import TetherStore
import TetherWire

/// Why an agent's session ended, as the directory keeps it.
enum AgentDisconnectReason: String, Sendable {
    case drained, lost, revoked, replaced
    case serverStopped = "server_stopped"
}

/// Every agent the server has known, connected or not, until an operator forgets it:
/// what it last announced, when it was last heard from, why its last session ended and
/// its metric series (so counters survive a server restart). Kept in its own small
/// SQLite file (`agents.db`), one row per agent holding the encoded `tether.control.v1.Agent`.
///
/// Writes are batched: changes mark an agent dirty and `flush` (every few seconds from the
/// server's timer, and at shutdown) writes them in one transaction, so no disk work runs
/// on an event loop and a `kill -9` loses at most the last few seconds of "last seen" and
/// metrics. Agents marked connected when the server starts were cut off by its stop.
///
/// Bounded: at most `maxAgents` are kept; past that the disconnected agent heard from
/// longest ago is forgotten.
///
/// Thread-safe.
final class AgentDirectory: Sendable {
    static let maxAgents = 10_000

    private struct State {
        var agents: [String: ControlV1.Agent] = [:]
        var dirty: Set<String> = []
        var forgotten: Set<String> = []
    }

    private let database: Mutex<SQLiteDatabase>
    private let state: Mutex<State>

    /// Opens (creating if needed) the directory at `path`; agents it lists as connected
    /// are marked disconnected by the server's stop, at their last-seen time.
    /// - Throws: `SQLiteError` or a migration error.
    init(path: String) throws {
        let db = try SQLiteDatabase(.init(path: path, synchronous: .normal))
        try db.migrate([SQLiteMigration(version: 1, name: "agents", sql: """
            CREATE TABLE agents (name TEXT PRIMARY KEY, agent BLOB NOT NULL);
            """)])
        var loaded = State()
        try db.query("SELECT name, agent FROM agents") { row in
            guard let name = row[0].text, let bytes = row[1].blob, var agent = try? ControlV1.Agent(serializedBytes: bytes) else { return }
            if agent.state != .disconnected {
                agent.state = .disconnected
                agent.disconnectReason = .serverStopped
                agent.disconnectDetail = "the server stopped while it was connected"
                agent.freeSlots = 0
                agent.leaseIds = []
                loaded.dirty.insert(name)
            }
            loaded.agents[name] = agent
        }
        database = Mutex(db)
        state = Mutex(loaded)
    }

    /// An agent's session began: `agent` as `ListAgents` shows it.
    func connected(_ agent: ControlV1.Agent) {
        state.withLock { state in
            state.agents[agent.name] = agent
            state.dirty.insert(agent.name)
            state.forgotten.remove(agent.name)
            Self.prune(&state)
        }
    }

    /// An agent's last session ended at `at` (unix µs) for `reason`; `last` is the agent as
    /// it was just before (its metrics then).
    func disconnected(_ last: ControlV1.Agent, reason: AgentDisconnectReason, detail: String, at: Int64) {
        var agent = last
        agent.state = .disconnected
        agent.freeSlots = 0
        agent.leaseIds = []
        agent.lastSeenAtUnixUs = max(agent.lastSeenAtUnixUs, at)
        agent.disconnectReason = ControlV1.AgentDisconnectReason(reason)
        agent.disconnectDetail = detail
        state.withLock { state in
            state.agents[agent.name] = agent
            state.dirty.insert(agent.name)
        }
    }

    /// Refreshes what connected agents' rows hold (last seen, metrics), to be written by
    /// the next `flush`.
    func refresh(_ live: [ControlV1.Agent]) {
        state.withLock { state in
            for agent in live where state.agents[agent.name] != nil {
                state.agents[agent.name] = agent
                state.dirty.insert(agent.name)
            }
        }
    }

    /// Disconnected agents, by name.
    func disconnectedAgents() -> [ControlV1.Agent] {
        state.withLock { $0.agents.values.filter { $0.state == .disconnected } }.sorted { $0.name < $1.name }
    }

    /// Every known agent's metric series, to seed `AgentMetrics` at start.
    func metrics() -> [String: [ControlV1.AgentMetric]] {
        state.withLock { $0.agents.mapValues(\.metrics) }
    }

    func agent(_ name: String) -> ControlV1.Agent? { state.withLock { $0.agents[name] } }

    /// Forgets a disconnected agent; returns it, or nil if unknown.
    func forget(_ name: String) -> ControlV1.Agent? {
        state.withLock { state in
            guard let agent = state.agents.removeValue(forKey: name) else { return nil }
            state.dirty.remove(name)
            state.forgotten.insert(name)
            return agent
        }
    }

    /// Writes what changed since the last flush, in one transaction. Blocking: call it off
    /// the event loops.
    /// - Throws: `SQLiteError`; what was not written stays dirty.
    func flush() throws {
        try database.withLock { db in
            let (rows, forgotten) = state.withLock { state in
                defer { state.dirty = []; state.forgotten = [] }
                return (state.dirty.compactMap { name in state.agents[name].map { (name, $0) } }, state.forgotten)
            }
            guard !rows.isEmpty || !forgotten.isEmpty else { return }
            do {
                try db.transaction(.immediate) { db in
                    for (name, agent) in rows {
                        try db.run("INSERT OR REPLACE INTO agents(name, agent) VALUES (?, ?)", [.text(name), .blob(try agent.serializedBytes())])
                    }
                    for name in forgotten { try db.run("DELETE FROM agents WHERE name = ?", [.text(name)]) }
                }
            } catch {
                state.withLock { state in
                    state.dirty.formUnion(rows.map(\.0).filter { state.agents[$0] != nil })
                    state.forgotten.formUnion(forgotten.filter { state.agents[$0] == nil })
                }
                throw error
            }
        }
    }

    private static func prune(_ state: inout State) {
        guard state.agents.count > maxAgents else { return }
        let gone = state.agents.values.filter { $0.state == .disconnected }.sorted { $0.lastSeenAtUnixUs < $1.lastSeenAtUnixUs }
        for agent in gone.prefix(state.agents.count - maxAgents) {
            state.agents[agent.name] = nil
            state.dirty.remove(agent.name)
            state.forgotten.insert(agent.name)
        }
    }
}

extension ControlV1.AgentDisconnectReason {
    init(_ reason: AgentDisconnectReason) {
        switch reason {
        case .drained: self = .drained
        case .lost: self = .lost
        case .revoked: self = .revoked
        case .replaced: self = .replaced
        case .serverStopped: self = .serverStopped
        }
    }
}
