import ArgumentParser
import Foundation
import TetherStore

/// `tether-torture store`: inserts forever through a GroupCommitWriter and prints
/// `ack <id>` only after the COMMIT holding that row returned. A test kills it with
/// SIGKILL at random instants and checks that every acked row is in the database.
struct StoreTorture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Insert rows forever; print \"ack ID\" after each commit. Stop it with kill -9.",
        discussion: "Prints \"ready\" once the database is open and migrated; failures go to stderr."
    )

    @Option(help: "Database file (created and migrated if new).")
    var db: String
    @Option(help: "PRAGMA synchronous: full or normal.")
    var synchronous: SQLiteDatabase.Options.Synchronous = .full
    @Option(help: "Concurrent submitter threads.")
    var submitters = 4
    @Option(help: "Inserts each submitter keeps in flight.")
    var inFlight = 32
    @Option(help: "Payload bytes per row.")
    var payloadBytes = 256

    func run() throws {
        let writer = try GroupCommitWriter(.init(path: db, synchronous: synchronous), migrations: AckedTable.migrations)
        // Ids continue after the rows of earlier (killed) runs.
        let last = try SQLiteDatabase(.init(path: db, access: .readOnly))
            .scalar("SELECT coalesce(max(id), 0) FROM acked").int64 ?? 0
        writeLine("ready")
        startSubmitters(count: submitters, window: inFlight, payloadBytes: payloadBytes, writer: writer,
                        ids: IDSource(first: last + 1)) { id, result in
            switch result {
            case .success: writeLine("ack \(id)")
            case .failure(let error): writeLine("failed \(id): \(error)", to: .standardError)
            }
        }
        while true { pause() }
    }
}
