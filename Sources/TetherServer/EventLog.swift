import GRPC
internal import Synchronization
import TetherWire

/// The server's recent history of changes, as `WatchEvents` streams it: every event the
/// commit feed made, encoded once (`tether.control.v1.WatchEventsResponse`), numbered by a
/// cursor, kept in memory up to `Limits` and fanned out to subscribers.
///
/// Cursors: `epoch << 40 | sequence`. The epoch is drawn at random when the server starts
/// and the sequence counts from 1, so a cursor names one event of one server process. The
/// history is not kept across restarts: resuming from a cursor of an earlier process, or
/// from one older than the oldest event kept, fails with OUT_OF_RANGE and says which, and
/// the client re-reads what it needs (as a Kubernetes watch answers 410 Gone). Within one
/// process a client that resumes from the last cursor it saw gets every later event once:
/// a subscription's backlog and its live events are taken under one lock.
///
/// Thread-safe.
final class EventLog: Sendable {
    struct Limits: Sendable {
        /// Memory the history may take (`Entry.cost`); the oldest events go first.
        var maxBytes = 32 << 20
        /// Events of history kept.
        var maxEvents = 200_000
        /// Live events a subscriber may have waiting (backlog aside); one more ends its
        /// stream with RESOURCE_EXHAUSTED, and it may resume from the last cursor it got.
        var maxQueuedPerSubscriber = 65_536
        var maxSubscribers = 256
    }

    /// One event as kept: what filters look at, and the encoded message.
    struct Entry: Sendable {
        var cursor: UInt64
        /// The DAG of a DAG, run or task-instance event; empty for an agent event.
        var dagID: String
        /// The run of a run or task-instance event; empty otherwise.
        var runID: String
        var isAgent: Bool
        var bytes: [UInt8]

        /// What keeping it costs, roughly: the encoded message, the filter keys and the
        /// overhead of the entry and its arrays.
        var cost: Int { bytes.count + dagID.utf8.count + runID.utf8.count + 96 }
    }

    /// Which events a subscriber gets (`WatchEventsRequest`'s rules).
    struct Filter: Sendable {
        var dagID = ""
        var runID = ""
        var includeAgents = false

        func matches(_ entry: Entry) -> Bool {
            if entry.isAgent { return includeAgents }
            return (dagID.isEmpty || dagID == entry.dagID) && (runID.isEmpty || runID == entry.runID)
        }
    }

    private struct History {
        /// A ring of the kept events: `count` of them from `start`, oldest first.
        var ring: [Entry?] = []
        var start = 0
        var count = 0
        var bytes = 0
        var lastSequence: UInt64 = 0
        var subscribers: [ObjectIdentifier: EventSubscription] = [:]
        var closed = false

        var oldestSequence: UInt64 { lastSequence - UInt64(count) + 1 }

        mutating func append(_ entry: Entry, limits: Limits) {
            if count == ring.count {
                if ring.count < limits.maxEvents {
                    // Grow: unwrap into a larger array (amortised O(1)).
                    ring = (0..<count).map { ring[(start + $0) % ring.count] } + Array(repeating: nil, count: min(max(count, 1024), limits.maxEvents - count))
                    start = 0
                } else {
                    dropOldest()
                }
            }
            ring[(start + count) % ring.count] = entry
            count += 1
            bytes += entry.cost
            while bytes > limits.maxBytes && count > 1 { dropOldest() }
        }

        mutating func dropOldest() {
            bytes -= ring[start]?.cost ?? 0
            ring[start] = nil
            start = (start + 1) % ring.count
            count -= 1
        }

        mutating func removeAll() {
            ring = []
            start = 0
            count = 0
            bytes = 0
        }

        /// Kept entries with sequence > `sequence` (which is at least `oldestSequence - 1`), oldest first.
        func entries(after sequence: UInt64) -> [Entry] {
            let skip = Int(sequence + 1 - oldestSequence)
            return (skip..<count).compactMap { ring[(start + $0) % ring.count] }
        }
    }

    let limits: Limits
    let epoch: UInt64
    private let history = Mutex(History())
    /// Held across one `append`, so that appends from two threads fan out in cursor order.
    private let appending = Mutex(())

    init(limits: Limits = Limits(), epoch: UInt64 = UInt64.random(in: 1..<(1 << 23))) {
        precondition(epoch > 0 && epoch < 1 << 23)
        self.limits = limits
        self.epoch = epoch
    }

    static let sequenceBits: UInt64 = 40

    /// The cursor of the newest event; 0 when there is none yet.
    var lastCursor: UInt64 { history.withLock { $0.lastSequence == 0 ? 0 : epoch << Self.sequenceBits | $0.lastSequence } }

    /// Numbers, encodes, keeps and fans out `events` in order; returns them with their cursors.
    ///
    /// The log's lock is held for `slice` events at a time, with `betweenSlices` run
    /// outside it (the feed yields its CPU there), so a subscriber or a reader waits behind
    /// one slice, not the whole batch. Subscribers get the batch at once, after the last
    /// slice: one wake-up of each stream's handler per batch, not per slice. (One that
    /// subscribes between slices has the earlier slices in its backlog, and gets only the
    /// later ones live.)
    @discardableResult
    func append(_ events: [FeedEvent], slice: Int = .max, betweenSlices: () -> Void = {}) -> [FeedEvent] {
        guard !events.isEmpty else { return [] }
        precondition(slice > 0)
        return appending.withLock { _ in record(events, slice: slice, betweenSlices: betweenSlices) }
    }

    private func record(_ events: [FeedEvent], slice: Int, betweenSlices: () -> Void) -> [FeedEvent] {
        var numbered = events
        var entries: [Entry] = []
        entries.reserveCapacity(events.count)
        var start = numbered.startIndex
        while start < numbered.endIndex {
            if start > numbered.startIndex { betweenSlices() }
            let end = numbered.index(start, offsetBy: slice, limitedBy: numbered.endIndex) ?? numbered.endIndex
            history.withLock { history in
                guard !history.closed else { return }
                for index in start..<end {
                    history.lastSequence += 1
                    numbered[index].message.cursor = epoch << Self.sequenceBits | history.lastSequence
                    let event = numbered[index]
                    // A message that cannot be encoded (a NUL in stored text) is kept as its cursor
                    // alone, so the sequence has no hole.
                    var bytes = (try? event.message.serializedBytes()) ?? []
                    if bytes.isEmpty {
                        var bare = ControlV1.WatchEventsResponse()
                        bare.cursor = event.message.cursor
                        bare.committedAtUnixUs = event.message.committedAtUnixUs
                        bytes = (try? bare.serializedBytes()) ?? []
                    }
                    let entry = Entry(cursor: event.message.cursor, dagID: event.dagID, runID: event.runID,
                                      isAgent: event.kind == .agent, bytes: bytes)
                    entries.append(entry)
                    history.append(entry, limits: limits)
                }
            }
            start = end
        }
        history.withLock { history in
            for subscription in history.subscribers.values { subscription.push(entries) }
        }
        return numbered
    }

    /// A subscription that first gets every kept event after `afterCursor` (none when 0)
    /// matching `filter`, then every new one.
    /// - Throws: OUT_OF_RANGE for a cursor of another server process or older than the
    ///   history kept; RESOURCE_EXHAUSTED when `maxSubscribers` are subscribed;
    ///   UNAVAILABLE once the log is closed.
    func subscribe(after afterCursor: UInt64, _ filter: Filter) throws(GRPCStatus) -> EventSubscription {
        try history.withLock { history throws(GRPCStatus) in
            guard !history.closed else { throw GRPCStatus(code: .unavailable, message: "server shutting down") }
            guard history.subscribers.count < limits.maxSubscribers else {
                throw GRPCStatus(code: .resourceExhausted, message: "\(limits.maxSubscribers) event streams are open; close one")
            }
            var backlog: [Entry] = []
            if afterCursor != 0 {
                let sequence = afterCursor & (1 << Self.sequenceBits - 1)
                guard afterCursor >> Self.sequenceBits == epoch else {
                    throw GRPCStatus(code: .outOfRange, message: "cursor \(afterCursor) is from an earlier server process: events are "
                        + "kept in memory and the server restarted since; re-read the state you need and watch from cursor 0")
                }
                guard sequence <= history.lastSequence else {
                    throw GRPCStatus(code: .outOfRange, message: "cursor \(afterCursor) is ahead of the newest event "
                        + "(\(epoch << Self.sequenceBits | history.lastSequence))")
                }
                guard sequence + 1 >= history.oldestSequence else {
                    throw GRPCStatus(code: .outOfRange, message: "cursor \(afterCursor) is older than the events kept (the oldest is "
                        + "\(epoch << Self.sequenceBits | history.oldestSequence)); re-read the state you need and watch from cursor 0")
                }
                backlog = history.entries(after: sequence)
            }
            let subscription = EventSubscription(filter: filter, limit: limits.maxQueuedPerSubscriber,
                                                 backlog: backlog.filter(filter.matches),
                                                 liveAfter: epoch << Self.sequenceBits | history.lastSequence)
            history.subscribers[ObjectIdentifier(subscription)] = subscription
            return subscription
        }
    }

    func unsubscribe(_ subscription: EventSubscription) {
        subscription.close(nil)
        history.withLock { _ = $0.subscribers.removeValue(forKey: ObjectIdentifier(subscription)) }
    }

    var subscriberCount: Int { history.withLock { $0.subscribers.count } }

    /// Some events were lost before they reached the log (the feed fell behind): cursors
    /// from before cannot be resumed from, and every subscriber's stream ends with `status`.
    func breakHistory(_ status: GRPCStatus) {
        let subscribers = history.withLock { history in
            history.removeAll()
            history.lastSequence += 1   // the lost events' place: no cursor resumes across it
            defer { history.subscribers = [:] }
            return Array(history.subscribers.values)
        }
        for subscription in subscribers { subscription.close(status) }
    }

    /// Ends every subscription (UNAVAILABLE) and refuses new ones.
    func close() {
        let subscribers = history.withLock { history in
            history.closed = true
            defer { history.subscribers = [:] }
            return Array(history.subscribers.values)
        }
        for subscription in subscribers {
            subscription.close(GRPCStatus(code: .unavailable, message: "server shutting down; events are not kept across restarts"))
        }
    }
}

/// One `WatchEvents` stream's queue: `push` from the log (under its lock), `next` from the
/// stream's handler.
final class EventSubscription: Sendable {
    private struct State {
        var queued: [EventLog.Entry]
        var live = 0
        var ended: GRPCStatus??
        var waiter: CheckedContinuation<[EventLog.Entry], Never>?
    }

    let filter: EventLog.Filter
    let limit: Int
    /// The newest cursor at subscription: later ones are live, earlier ones were in the backlog.
    let liveAfter: UInt64
    private let state: Mutex<State>

    init(filter: EventLog.Filter, limit: Int, backlog: [EventLog.Entry], liveAfter: UInt64) {
        self.filter = filter
        self.limit = limit
        self.liveAfter = liveAfter
        state = Mutex(State(queued: backlog))
    }

    func push(_ entries: [EventLog.Entry]) {
        let matching = entries.filter { $0.cursor > liveAfter && filter.matches($0) }
        guard !matching.isEmpty else { return }
        enum Action { case none, overflow, resume(CheckedContinuation<[EventLog.Entry], Never>, [EventLog.Entry]) }
        let action = state.withLock { state -> Action in
            guard state.ended == nil else { return .none }
            guard state.live + matching.count <= limit else { return .overflow }
            state.queued += matching
            state.live += matching.count
            guard let waiter = state.waiter else { return .none }
            defer { state.waiter = nil; state.queued = []; state.live = 0 }
            return .resume(waiter, state.queued)
        }
        switch action {
        case .none: break
        case .overflow:
            close(GRPCStatus(code: .resourceExhausted, message: "this stream fell \(limit) events behind; "
                             + "resume with after_cursor set to the last cursor received"))
        case .resume(let waiter, let ready): waiter.resume(returning: ready)
        }
    }

    /// Ends the subscription: `next` returns what was queued and then nil; `status` (nil:
    /// the client went) is why.
    func close(_ status: GRPCStatus?) {
        let waiter = state.withLock { state -> CheckedContinuation<[EventLog.Entry], Never>? in
            if state.ended == nil { state.ended = .some(status) }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: [])
    }

    /// Whether the handler waits in `next` (for tests).
    var isWaiting: Bool { state.withLock { $0.waiter != nil } }

    /// Why the subscription ended (nil while it runs, or when the client went).
    var endStatus: GRPCStatus? { state.withLock { $0.ended ?? nil } }

    /// The next events, oldest first, waiting for some; empty once ended (after what was
    /// queued before the end: a dropped subscriber's queue is discarded).
    func next() async -> [EventLog.Entry] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[EventLog.Entry], Never>) in
                let ready = state.withLock { state -> [EventLog.Entry]? in
                    if !state.queued.isEmpty {
                        defer { state.queued = []; state.live = 0 }
                        return state.queued
                    }
                    if state.ended != nil { return [] }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            close(nil)
        }
    }
}
