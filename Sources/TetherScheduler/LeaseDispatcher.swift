/// Matches ready tasks to connected agents' free slots. Pure bookkeeping: it decides
/// who gets what, and the `Scheduler` turns each decision into a lease.
///
/// Ready tasks wait in one heap per (queue, entrypoint), ordered by priority (higher
/// first), then readiness time, then arrival. An agent can take a task when it serves
/// the task's queue, offers its entrypoint and has a free slot, and neither the DAG's
/// `max_active_tasks` nor the queue's slot cap is reached. A task whose DAG is at its
/// limit is parked until that DAG frees a slot, so it never blocks other DAGs' tasks.
/// Parked tasks wait in a heap per DAG and (queue, entrypoint); while the DAG is below its
/// limit the best of each such heap stands in the ready heap, and when it is granted the
/// next takes its place. A freed slot so moves one task per (queue, entrypoint) of its
/// DAG, not every parked one.
///
/// Pools are counted earlier, as Airflow counts queued tasks against their pool: a task
/// that names a pool enters its heap only once the pool has room for its slots, which it
/// then holds until its attempt ends (or it is taken out of the queue). Until then it
/// waits in the pool's own heap, in priority order; as slots free up, the tasks at the
/// top that fit are let in. A grant so costs the same with pools as without, and a full
/// pool never holds up tasks of other pools.
///
/// Not thread-safe: owned by one `Scheduler`.
struct LeaseDispatcher {
    struct ReadyTask: Comparable {
        var key: TaskKey
        var dagID: String
        var queue: String
        var entrypoint: String
        var priority: Int
        var pool: PoolClaim?
        var readyAt: Instant
        /// Its pool counts its slots (it is in a ready heap, not the pool's).
        var admitted = false
        /// Arrival order; also tells a live heap entry from a removed one.
        var sequence: UInt64

        static func < (lhs: ReadyTask, rhs: ReadyTask) -> Bool {
            if lhs.priority != rhs.priority { return lhs.priority > rhs.priority }
            if lhs.readyAt != rhs.readyAt { return lhs.readyAt < rhs.readyAt }
            return lhs.sequence < rhs.sequence
        }
        static func == (lhs: ReadyTask, rhs: ReadyTask) -> Bool { lhs.sequence == rhs.sequence }
    }

    /// A ready heap's key.
    struct Group: Hashable {
        var queue: String
        var entrypoint: String
    }

    struct Agent {
        var id: String
        var queues: Set<String>
        var entrypoints: Set<String>
        var slots: Int
        var used = 0
        /// False once it disconnected: it keeps its used slots (leases wait for it to
        /// resume) but gets no new grants.
        var connected = true
        var free: Int { connected ? max(0, slots - used) : 0 }
        var capability: Capability { Capability(queues: queues, entrypoints: entrypoints) }
    }

    /// What an agent can take. Agents alike in it have the same best task.
    struct Capability: Hashable {
        var queues: Set<String>
        var entrypoints: Set<String>
    }

    /// An agent's free slots when it was ranked: a ranking entry is live while they
    /// still are (and its capability is the same).
    struct AgentRank: Comparable {
        var free: Int
        var id: String

        /// Most free slots first, then the lowest id.
        static func < (lhs: AgentRank, rhs: AgentRank) -> Bool {
            lhs.free != rhs.free ? lhs.free > rhs.free : lhs.id < rhs.id
        }
    }

    /// Why a queued task has not been granted yet, for operators.
    enum WaitReason: Equatable, CustomStringConvertible {
        case noAgentServesQueue(String)
        case noAgentOffersEntrypoint(queue: String, entrypoint: String)
        case dagAtMaxActiveTasks(String)
        case queueAtSlotCap(String)
        case noSuchPool(String)
        case poolFull(pool: String, used: Int, size: Int, needs: Int)
        case noFreeSlot(queue: String)

        var description: String {
            switch self {
            case .noAgentServesQueue(let q): return "no connected agent serves queue '\(q)'"
            case .noAgentOffersEntrypoint(let q, let e):
                return "no connected agent on queue '\(q)' offers entrypoint '\(e)'"
            case .dagAtMaxActiveTasks(let d): return "DAG '\(d)' is at its max_active_tasks"
            case .queueAtSlotCap(let q): return "queue '\(q)' is at its slot cap"
            case .noSuchPool(let p): return "pool '\(p)' does not exist (tether pool set \(p) SLOTS)"
            case let .poolFull(p, used, size, needs):
                return "pool '\(p)' has \(size - used) of \(size) slots free; the task takes \(needs)"
            case .noFreeSlot(let q): return "waiting for a free slot on queue '\(q)'"
            }
        }
    }

    private(set) var agents: [String: Agent] = [:]
    /// Agents with free slots by capability, best first; entries go stale as slots change
    /// and are dropped when they come to the top (or all at once, past twice the agents).
    private var rankings: [Capability: BinaryHeap<AgentRank>] = [:]
    private var ready: [String: [String: BinaryHeap<ReadyTask>]] = [:]
    /// The live heap entry's sequence of every queued task.
    private var queued: [TaskKey: ReadyTask] = [:]
    /// Tasks parked at their DAG's limit, by DAG and (queue, entrypoint), best first.
    private var parked: [String: [Group: BinaryHeap<ReadyTask>]] = [:]
    /// The parked task standing in its (queue, entrypoint)'s ready heap, by DAG: its
    /// sequence. At most one per group; its entry may have been removed since.
    private var standIns: [String: [Group: UInt64]] = [:]
    private var activeByDAG: [String: Int] = [:]
    private var activeByQueue: [String: Int] = [:]
    private var dagLimits: [String: Int] = [:]
    private var poolSizes: [String: Int] = [:]
    /// Slots counted against each pool: leases' and admitted queued tasks'.
    private var poolUsed: [String: Int] = [:]
    /// Tasks waiting for room in their pool, best first.
    private var poolWaiting: [String: BinaryHeap<ReadyTask>] = [:]
    private let queueCaps: [String: Int]
    private var nextSequence: UInt64 = 0

    init(queueCaps: [String: Int]) {
        self.queueCaps = queueCaps
    }

    var queuedCount: Int { queued.count }

    /// Heap entries parked at their DAG's limit (removed tasks' included, until dropped).
    var parkedCount: Int { parked.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } } }

    /// Queued tasks by queue (parked ones included: they wait too). O(queued tasks).
    var queuedCountByQueue: [String: Int] {
        var counts: [String: Int] = [:]
        for task in queued.values { counts[task.queue, default: 0] += 1 }
        return counts
    }

    /// Sets a DAG's max_active_tasks (0: no limit). A raised limit releases parked tasks.
    mutating func setLimit(dagID: String, maxActiveTasks: Int) {
        dagLimits[dagID] = maxActiveTasks > 0 ? maxActiveTasks : nil
        unparkIfBelowLimit(dagID)
    }

    /// Sets a pool's size, or deletes it (nil): tasks already let in keep their slots,
    /// and the ones waiting wait on.
    mutating func setPool(_ name: String, size: Int?) {
        poolSizes[name] = size
        admitFromPool(name)
    }

    /// Slots of the pool held now, by leases and by queued tasks let in.
    func poolUse(_ name: String) -> Int { poolUsed[name] ?? 0 }

    /// Tasks waiting for room in the pool.
    func poolWaitingCount(_ name: String) -> Int {
        poolWaiting[name]?.elements.count { queued[$0.key]?.sequence == $0.sequence } ?? 0
    }

    mutating func enqueue(_ key: TaskKey, dagID: String, queue: String, entrypoint: String, priority: Int,
                          pool: PoolClaim? = nil, readyAt: Instant) {
        precondition(queued[key] == nil, "task \(key) queued twice")
        nextSequence += 1
        let task = ReadyTask(key: key, dagID: dagID, queue: queue, entrypoint: entrypoint, priority: priority,
                             pool: pool, readyAt: readyAt, sequence: nextSequence)
        queued[key] = task
        if let pool {
            poolWaiting[pool.name, default: BinaryHeap()].insert(task)
            admitFromPool(pool.name)
        } else {
            ready[queue, default: [:]][entrypoint, default: BinaryHeap()].insert(task)
        }
    }

    /// Takes a queued task out (cancelled), giving back the pool slots it held. Its heap
    /// entry is dropped lazily.
    mutating func remove(_ key: TaskKey) {
        guard let task = queued.removeValue(forKey: key) else { return }
        if task.admitted, let pool = task.pool { freePoolSlots(pool) }
    }

    /// Adds or replaces a connected agent, keeping the slots its leases already use.
    mutating func connect(agentID: String, queues: Set<String>, entrypoints: Set<String>, slots: Int) {
        let used = agents[agentID]?.used ?? 0
        agents[agentID] = Agent(id: agentID, queues: queues, entrypoints: entrypoints, slots: slots, used: used)
        rank(agentID)
    }

    /// The agent gets no new grants; its used slots stay counted until released.
    mutating func disconnect(agentID: String) {
        agents[agentID]?.connected = false
        if let agent = agents[agentID], agent.used == 0 { agents[agentID] = nil }
    }

    /// Counts a lease held by `agentID` for a task of `dagID` on `queue` (and the slots
    /// of its pool), loaded after a restart. Call before enqueueing the restored tasks,
    /// so none is let into a pool the leases already fill.
    mutating func occupy(agentID: String, dagID: String, queue: String, pool: PoolClaim?) {
        occupySlot(agentID: agentID, dagID: dagID, queue: queue)
        if let pool { poolUsed[pool.name, default: 0] += pool.slots }
    }

    private mutating func occupySlot(agentID: String, dagID: String, queue: String) {
        if agents[agentID] == nil {
            // Known from a stored lease only: it holds slots but is not connected yet.
            agents[agentID] = Agent(id: agentID, queues: [], entrypoints: [], slots: 0, connected: false)
        }
        agents[agentID]!.used += 1
        rank(agentID)
        activeByDAG[dagID, default: 0] += 1
        activeByQueue[queue, default: 0] += 1
    }

    /// Frees the slot a lease held.
    mutating func release(agentID: String, dagID: String, queue: String, pool: PoolClaim?) {
        if var agent = agents[agentID] {
            agent.used = max(0, agent.used - 1)
            agents[agentID] = agent.connected || agent.used > 0 ? agent : nil
            rank(agentID)
        }
        activeByDAG[dagID] = max(0, (activeByDAG[dagID] ?? 0) - 1)
        activeByQueue[queue] = max(0, (activeByQueue[queue] ?? 0) - 1)
        unparkIfBelowLimit(dagID)
        if let pool { freePoolSlots(pool) }
    }

    /// The next grant to make: the best queued task some free agent can take, given to
    /// the eligible agent with the most free slots (ties: lowest id). Removes the task
    /// from the queue and counts the slot. Nil when nothing can be granted now.
    mutating func nextGrant() -> (task: ReadyTask, agentID: String)? {
        var best: (task: ReadyTask, agent: Agent)?
        for capability in Array(rankings.keys) {
            // The best-ranked agent of each capability: for its task, the others of it rank lower.
            guard let agent = topAgent(capability), let task = bestTask(for: agent) else { continue }
            if let current = best {
                if task < current.task
                    || (task.sequence == current.task.sequence
                        && (agent.free, current.agent.id) > (current.agent.free, agent.id)) {
                    best = (task, agent)
                }
            } else {
                best = (task, agent)
            }
        }
        guard let (task, agent) = best else { return nil }
        ready[task.queue]![task.entrypoint]!.popFirst()
        queued[task.key] = nil
        occupySlot(agentID: agent.id, dagID: task.dagID, queue: task.queue)  // its pool slots are held already
        replaceStandIn(task, Group(queue: task.queue, entrypoint: task.entrypoint))
        return (task, agent.id)
    }

    /// Why `key` (queued) is waiting, or nil if it is not queued.
    func waitReason(_ key: TaskKey) -> WaitReason? {
        guard let task = queued[key] else { return nil }
        if let claim = task.pool, !task.admitted {
            guard let size = poolSizes[claim.name] else { return .noSuchPool(claim.name) }
            return .poolFull(pool: claim.name, used: poolUse(claim.name), size: size, needs: claim.slots)
        }
        let serving = agents.values.filter { $0.connected && $0.queues.contains(task.queue) }
        if serving.isEmpty { return .noAgentServesQueue(task.queue) }
        if !serving.contains(where: { $0.entrypoints.contains(task.entrypoint) }) {
            return .noAgentOffersEntrypoint(queue: task.queue, entrypoint: task.entrypoint)
        }
        if isAtLimit(task.dagID) { return .dagAtMaxActiveTasks(task.dagID) }
        if let cap = queueCaps[task.queue], activeByQueue[task.queue, default: 0] >= cap {
            return .queueAtSlotCap(task.queue)
        }
        return .noFreeSlot(queue: task.queue)
    }

    /// Ranks the agent anew after its free slots or capability changed.
    private mutating func rank(_ agentID: String) {
        guard let agent = agents[agentID], agent.free > 0 else { return }
        let capability = agent.capability
        rankings[capability, default: BinaryHeap()].insert(AgentRank(free: agent.free, id: agentID))
        if rankings[capability]!.count > 2 * agents.count + 16 {
            var live = BinaryHeap<AgentRank>()
            for entry in Set(rankings[capability]!.elements.map(\.id)) {
                if let agent = agents[entry], agent.free > 0, agent.capability == capability {
                    live.insert(AgentRank(free: agent.free, id: entry))
                }
            }
            rankings[capability] = live
        }
    }

    /// The connected agent of `capability` with the most free slots (ties: lowest id),
    /// after dropping stale entries; nil when none has a free slot.
    private mutating func topAgent(_ capability: Capability) -> Agent? {
        while let top = rankings[capability]?.first {
            if let agent = agents[top.id], agent.free == top.free, agent.capability == capability { return agent }
            rankings[capability]!.popFirst()
        }
        rankings[capability] = nil
        return nil
    }

    /// The best task `agent` may take, after dropping removed entries and parking
    /// tasks whose DAG is at its limit.
    private mutating func bestTask(for agent: Agent) -> ReadyTask? {
        var best: ReadyTask?
        for queue in agent.queues {
            if let cap = queueCaps[queue], activeByQueue[queue, default: 0] >= cap { continue }
            guard let byEntrypoint = ready[queue] else { continue }
            for entrypoint in byEntrypoint.keys where agent.entrypoints.contains(entrypoint) {
                if let head = liveHead(queue: queue, entrypoint: entrypoint), best.map({ head < $0 }) ?? true {
                    best = head
                }
            }
        }
        return best
    }

    private mutating func liveHead(queue: String, entrypoint: String) -> ReadyTask? {
        let group = Group(queue: queue, entrypoint: entrypoint)
        while let head = ready[queue]![entrypoint]!.first {
            if queued[head.key]?.sequence != head.sequence {
                ready[queue]![entrypoint]!.popFirst()  // removed or re-queued since
                replaceStandIn(head, group)
                continue
            }
            if isAtLimit(head.dagID) {
                ready[queue]![entrypoint]!.popFirst()
                if standIns[head.dagID]?[group] == head.sequence { clearStandIn(head.dagID, group) }
                parked[head.dagID, default: [:]][group, default: BinaryHeap()].insert(head)
                continue
            }
            return head
        }
        return nil
    }

    private func isAtLimit(_ dagID: String) -> Bool {
        guard let limit = dagLimits[dagID] else { return false }
        return activeByDAG[dagID, default: 0] >= limit
    }

    private mutating func freePoolSlots(_ claim: PoolClaim) {
        poolUsed[claim.name] = max(0, (poolUsed[claim.name] ?? 0) - claim.slots)
        admitFromPool(claim.name)
    }

    /// Lets the pool's best waiting tasks into their ready heaps while they fit, in
    /// priority order: one that does not fit holds back those behind it, so a task that
    /// takes many slots is not starved by smaller ones.
    private mutating func admitFromPool(_ name: String) {
        guard let size = poolSizes[name] else { return }
        while let top = poolWaiting[name]?.first {
            guard var task = queued[top.key], task.sequence == top.sequence else {
                poolWaiting[name]!.popFirst()  // removed since
                continue
            }
            guard poolUse(name) + top.pool!.slots <= size else { return }
            poolWaiting[name]!.popFirst()
            poolUsed[name, default: 0] += top.pool!.slots
            task.admitted = true
            queued[task.key] = task
            ready[task.queue, default: [:]][task.entrypoint, default: BinaryHeap()].insert(task)
        }
    }

    private mutating func unparkIfBelowLimit(_ dagID: String) {
        guard let groups = parked[dagID].map({ Array($0.keys) }) else { return }
        for group in groups { standIn(dagID, group) }
    }

    /// Moves the best live task parked for `dagID` on `group` into the group's ready heap,
    /// unless the DAG is at its limit or a task of it stands in there already.
    private mutating func standIn(_ dagID: String, _ group: Group) {
        guard !isAtLimit(dagID), standIns[dagID]?[group] == nil, var heap = parked[dagID]?[group] else { return }
        parked[dagID]![group] = nil  // no copy of the heap while it changes
        while let task = heap.popFirst() {
            guard queued[task.key]?.sequence == task.sequence else { continue }  // removed since
            ready[group.queue, default: [:]][group.entrypoint, default: BinaryHeap()].insert(task)
            standIns[dagID, default: [:]][group] = task.sequence
            break
        }
        if heap.isEmpty {
            if parked[dagID]!.isEmpty { parked[dagID] = nil }
        } else {
            parked[dagID]![group] = heap
        }
    }

    /// `task` left its ready heap (granted, or found removed): if it stood in for its DAG's
    /// parked tasks on `group`, the next of them takes its place.
    private mutating func replaceStandIn(_ task: ReadyTask, _ group: Group) {
        guard standIns[task.dagID]?[group] == task.sequence else { return }
        clearStandIn(task.dagID, group)
        standIn(task.dagID, group)
    }

    private mutating func clearStandIn(_ dagID: String, _ group: Group) {
        standIns[dagID]![group] = nil
        if standIns[dagID]!.isEmpty { standIns[dagID] = nil }
    }
}

/// A task's claim on a pool: which, and how many of its slots one attempt takes.
public struct PoolClaim: Hashable, Sendable {
    public var name: String
    public var slots: Int

    public init(name: String, slots: Int) {
        self.name = name
        self.slots = slots
    }
}
