import ArgumentParser
import Foundation
import Synchronization
import TetherStore

/// `tether-torture store-bench`: how many commits and changes per second the group-commit
/// writer sustains on this disk, with several submitters each keeping inserts in flight.
struct StoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-bench",
        abstract: "Measure group-commit throughput; prints one JSON line per metric.",
        discussion: "Writes a fresh database at --db, which must not exist yet."
    )

    @Option(help: "Database file to create (must not exist).")
    var db: String
    @Option(help: "Inserts to commit.")
    var changes = 20_000
    @Option(help: "PRAGMA synchronous: full or normal.")
    var synchronous: SQLiteDatabase.Options.Synchronous = .full
    @Option(help: "Concurrent submitter threads.")
    var submitters = 4
    @Option(help: "Inserts each submitter keeps in flight.")
    var inFlight = 64
    @Option(help: "Largest batch per commit (1 = one commit per change, the baseline).")
    var maxBatch = 1024
    @Option(help: "Payload bytes per row.")
    var payloadBytes = 256

    func validate() throws {
        guard !FileManager.default.fileExists(atPath: db) else {
            throw ValidationError("\(db) exists; store-bench writes a fresh database")
        }
        guard changes > 0, submitters > 0, inFlight > 0, maxBatch > 0 else {
            throw ValidationError("--changes, --submitters, --in-flight and --max-batch must be positive")
        }
    }

    func run() throws {
        let writer = try GroupCommitWriter(.init(path: db, synchronous: synchronous),
                                           migrations: AckedTable.migrations, maxBatchSize: maxBatch)
        let finished = DispatchSemaphore(value: 0)
        let remaining = Countdown(changes)
        let clock = ContinuousClock()
        let start = clock.now
        startSubmitters(count: submitters, window: inFlight, payloadBytes: payloadBytes, writer: writer,
                        ids: IDSource(first: 1, limit: Int64(changes))) { id, result in
            if case .failure(let error) = result { writeLine("failed \(id): \(error)", to: .standardError) }
            if remaining.tick() { finished.signal() }
        }
        finished.wait()
        let elapsed = clock.now - start
        let stats = writer.stats
        writer.close()

        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let common = #""synchronous":"\#(synchronous.rawValue)","changes":\#(changes),"submitters":\#(submitters),"#
            + #""in_flight":\#(inFlight),"max_batch":\#(maxBatch),"payload_bytes":\#(payloadBytes),"#
            + #""elapsed_s":\#(format(seconds)),"sqlite":"\#(SQLiteLibrary.version)""#
        func metric(_ name: String, _ value: Double, _ unit: String) {
            writeLine(#"{"bench":"store_group_commit","metric":"\#(name)","value":\#(format(value)),"unit":"\#(unit)",\#(common)}"#)
        }
        metric("commits_per_s", Double(stats.batches) / seconds, "1/s")
        metric("changes_per_s", Double(changes) / seconds, "1/s")
        metric("batch_size_max", Double(stats.largestBatch), "changes")
        metric("batch_size_mean", stats.meanBatchSize, "changes")
        writeLine("store-bench: \(stats)", to: .standardError)
    }

    private func format(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// Counts completions down from `count`; `tick` is true for the last.
final class Countdown: Sendable {
    private let left: Mutex<Int>
    init(_ count: Int) { left = Mutex(count) }
    func tick() -> Bool { left.withLock { $0 -= 1; return $0 == 0 } }
}
