import ArgumentParser
import Foundation
import H2
import TetherStore
import TetherWire

/// Tether's own version.
enum TetherVersion {
    static let string = "0.1.0"
}

/// `tether version`: what this binary is and the C libraries it runs on.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print Tether's version, git commit and the linked library versions."
    )

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let rows: [(String, String)] = [
            ("tether", TetherVersion.string),
            ("commit", BuildInfo.gitCommit),
            ("nghttp2", LinkedLibraries.nghttp2),
            ("openssl", LinkedLibraries.openSSL),
            ("sqlite", SQLiteLibrary.version),
            ("protobuf-c", WireLibrary.protobufCVersion),
        ]
        if json {
            let object = Dictionary(uniqueKeysWithValues: rows)
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let width = rows.map(\.0.count).max() ?? 0
            for (name, value) in rows {
                print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value)
            }
        }
    }
}
