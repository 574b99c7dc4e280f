import Foundation
import Testing
import TetherTestSupport

/// `tether version` as a user runs it, from the built binary.
@Suite struct VersionCommandTests {
    @Test func versionJSONNamesTheCommitAndEveryLinkedLibrary() throws {
        let result = try runProcess(Repository.tetherBinary, ["version", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: String])
        #expect(Set(object.keys) == ["tether", "commit", "nghttp2", "openssl", "sqlite", "protobuf-c"])
        let pkgConfig = try runProcess(URL(fileURLWithPath: "/usr/bin/pkg-config"),
                                       ["--modversion", "libnghttp2", "libprotobuf-c", "sqlite3"])
        let expected = pkgConfig.stdout.split(separator: "\n").map(String.init)
        #expect([object["nghttp2"], object["protobuf-c"], object["sqlite"]] == expected.map { Optional($0) })
        #expect(object["commit"]?.isEmpty == false)
    }

    @Test func versionTablePrintsOneRowPerItem() throws {
        let result = try runProcess(Repository.tetherBinary, ["version"])
        #expect(result.status == 0)
        let names = result.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(names == ["tether", "commit", "nghttp2", "openssl", "sqlite", "protobuf-c"])
    }

    @Test func anUnknownSubcommandExitsNonZeroWithUsage() throws {
        let result = try runProcess(Repository.tetherBinary, ["no-such-command"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("Usage"))
    }
}
