import GRPC
import Testing
@testable import TetherServer
import TetherWire

/// `EventLog`: cursors, resuming, bounds and filters, without a server.
@Suite struct EventLogTests {
    static func event(_ n: Int, dag: String = "d", run: String = "r", kind: FeedEvent.Kind = .run) -> FeedEvent {
        var message = ControlV1.WatchEventsResponse()
        message.committedAtUnixUs = Int64(n)
        var runMessage = ControlV1.Run()
        runMessage.runID = run
        runMessage.dagID = dag
        runMessage.note = String(n)
        message.subject = .run(runMessage)
        return FeedEvent(kind: kind, message: message, dagID: kind == .agent ? "" : dag, runID: kind == .agent ? "" : run)
    }

    static func notes(_ entries: [EventLog.Entry]) throws -> [Int64] {
        try entries.map { try ControlV1.WatchEventsResponse(serializedBytes: $0.bytes).committedAtUnixUs }
    }

    @Test func resumingFromACursorGivesEveryLaterEventOnceThenNewOnes() async throws {
        let log = EventLog(epoch: 7)
        let first = log.append((1...5).map { Self.event($0) })
        #expect(first.map(\.message.cursor) == (1...5).map { 7 << 40 | UInt64($0) })
        let subscription = try log.subscribe(after: first[1].message.cursor, EventLog.Filter())
        log.append([Self.event(6)])
        #expect(try Self.notes(await subscription.next()) == [3, 4, 5, 6])
        log.append([Self.event(7), Self.event(8)])
        #expect(try Self.notes(await subscription.next()) == [7, 8])
        let fresh = try log.subscribe(after: 0, EventLog.Filter())
        log.append([Self.event(9)])
        #expect(try Self.notes(await fresh.next()) == [9], "cursor 0: new events only")
    }

    @Test func cursorsOfAnotherProcessOrOlderThanTheHistoryOrAheadOfItAreOutOfRange() throws {
        var limits = EventLog.Limits()
        limits.maxEvents = 4
        let log = EventLog(limits: limits, epoch: 9)
        let cursors = log.append((1...10).map { Self.event($0) }).map(\.message.cursor)
        func refusal(_ cursor: UInt64) -> GRPCStatus? {
            do { _ = try log.subscribe(after: cursor, EventLog.Filter()); return nil } catch { return error }
        }
        #expect(refusal(8 << 40 | 3)?.code == .outOfRange)
        #expect(refusal(8 << 40 | 3)?.message.contains("earlier server process") == true)
        #expect(refusal(cursors[4])?.code == .outOfRange, "events 1-6 are gone: resuming after 5 would miss 6")
        #expect(refusal(cursors[4])?.message.contains("older than the events kept") == true)
        #expect(refusal(cursors[9] + 1)?.code == .outOfRange)
        #expect(refusal(cursors[5]) == nil, "after 6: 7...10 are all kept")
    }

    @Test func theHistoryKeepsTheNewestEventsWithinItsCountAndByteBudgets() async throws {
        var limits = EventLog.Limits()
        limits.maxEvents = 3
        let byCount = EventLog(limits: limits, epoch: 1)
        let cursors = byCount.append((1...7).map { Self.event($0) }).map(\.message.cursor)
        #expect(try Self.notes(await byCount.subscribe(after: cursors[3], EventLog.Filter()).next()) == [5, 6, 7])

        let size = try #require(try Self.event(1).message.serializedBytes().count) + 8 + 2 + 96  // cursor field, keys, overhead
        limits = EventLog.Limits()
        limits.maxBytes = size * 2 + size / 2
        let byBytes = EventLog(limits: limits, epoch: 1)
        let more = byBytes.append((1...6).map { Self.event($0) }).map(\.message.cursor)
        #expect(try Self.notes(await byBytes.subscribe(after: more[3], EventLog.Filter()).next()) == [5, 6])
        #expect(throws: GRPCStatus.self) { try byBytes.subscribe(after: more[2], EventLog.Filter()) }
    }

    @Test func filtersPickADagARunAndAgentsOnlyWhenAskedFor() async throws {
        let log = EventLog(epoch: 3)
        let byDag = try log.subscribe(after: 0, EventLog.Filter(dagID: "a"))
        let byRun = try log.subscribe(after: 0, EventLog.Filter(runID: "r2"))
        let agents = try log.subscribe(after: 0, EventLog.Filter(includeAgents: true))
        log.append([Self.event(1, dag: "a", run: "r1"), Self.event(2, dag: "b", run: "r2"), Self.event(3, kind: .agent),
                    Self.event(4, dag: "a", run: "r2")])
        #expect(try Self.notes(await byDag.next()) == [1, 4])
        #expect(try Self.notes(await byRun.next()) == [2, 4])
        #expect(try Self.notes(await agents.next()) == [1, 2, 3, 4])
    }

    @Test func aSubscriberThatFallsBehindGetsWhatWasQueuedThenResourceExhausted() async throws {
        var limits = EventLog.Limits()
        limits.maxQueuedPerSubscriber = 3
        let log = EventLog(limits: limits, epoch: 5)
        let slow = try log.subscribe(after: 0, EventLog.Filter())
        log.append([Self.event(1), Self.event(2)])
        log.append([Self.event(3), Self.event(4)])   // 4 > 3 waiting: dropped
        #expect(try Self.notes(await slow.next()) == [1, 2])
        #expect(await slow.next().isEmpty)
        #expect(slow.endStatus?.code == .resourceExhausted)
        // It resumes from the last cursor it got and misses nothing.
        let resumed = try log.subscribe(after: 5 << 40 | 2, EventLog.Filter())
        #expect(try Self.notes(await resumed.next()) == [3, 4])
    }

    @Test func closingTheLogEndsSubscriptionsWithUnavailableAndRefusesNewOnes() async throws {
        let log = EventLog(epoch: 2)
        let subscription = try log.subscribe(after: 0, EventLog.Filter())
        log.close()
        #expect(await subscription.next().isEmpty)
        #expect(subscription.endStatus?.code == .unavailable)
        #expect(throws: GRPCStatus.self) { try log.subscribe(after: 0, EventLog.Filter()) }
    }

    // Without the fan-out after the last slice, the waiting handler is woken by the first
    // slice alone (16 events) and again for the rest: a wake-up per slice per stream.
    @Test func aBatchAppendedInSlicesWakesAWaitingSubscriberOnceWithAllOfIt() async throws {
        let log = EventLog(epoch: 4)
        let subscription = try log.subscribe(after: 0, EventLog.Filter())
        let reader = Task { try Self.notes(await subscription.next()) }
        while !subscription.isWaiting { await Task.yield() }
        var slices = 1
        log.append((1...40).map { Self.event($0) }, slice: 16) { slices += 1 }
        #expect(slices == 3)
        #expect(try await reader.value == (1...40).map(Int64.init))
    }

    // A subscriber that arrives between slices has the earlier ones in its backlog; without
    // `liveAfter` the fan-out after the last slice would give it those again.
    @Test func aSubscriberArrivingBetweenSlicesGetsEveryEventOnce() async throws {
        let log = EventLog(epoch: 6)
        let before = log.append([Self.event(0)])[0].message.cursor
        var resuming: EventSubscription?
        var fresh: EventSubscription?
        log.append((1...10).map { Self.event($0) }, slice: 4) {
            guard resuming == nil else { return }
            resuming = try? log.subscribe(after: before, EventLog.Filter())
            fresh = try? log.subscribe(after: 0, EventLog.Filter())
        }
        let (resumed, new) = try (#require(resuming), #require(fresh))
        #expect(try Self.notes(await resumed.next()) == (1...10).map(Int64.init))
        #expect(try Self.notes(await new.next()) == (5...10).map(Int64.init), "cursor 0: the events after it subscribed")
        log.append([Self.event(11)])
        #expect(try Self.notes(await resumed.next()) == [11])
        #expect(try Self.notes(await new.next()) == [11])
    }

    // Two threads appending in slices: without the append lock one's fan-out could
    // overtake the other's, and a subscriber would see cursors out of order.
    @Test func concurrentAppendsReachSubscribersInCursorOrder() async throws {
        let log = EventLog(epoch: 8)
        let subscription = try log.subscribe(after: 0, EventLog.Filter())
        let batches = 300, size = 10
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    for _ in 0..<batches { log.append((1...size).map { Self.event($0) }, slice: 3) }
                }
            }
        }
        var cursors: [UInt64] = []
        while cursors.count < 2 * batches * size {
            cursors += await subscription.next().map(\.cursor)
        }
        #expect(cursors == cursors.sorted() && Set(cursors).count == cursors.count)
    }
}
