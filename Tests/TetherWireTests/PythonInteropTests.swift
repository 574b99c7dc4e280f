import Foundation
import Testing
import TetherTestSupport
@testable import TetherWire

/// The contract in Protos/ means the same to Swift (protobuf-c) and to a stock
/// client (Python protobuf from grpcio-tools). Needs the venv from Scripts/bootstrap.
@Suite struct PythonInteropTests {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/wire_interop.py").path

    @Test func grpcToolsCompilesEveryProtoWithoutWarnings() throws {
        let result = try runProcess(Repository.python, [Self.script, "protoc-check"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test func everyMessageCrossesBetweenPythonAndSwiftUnchanged() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tether-interop-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for sub in ["swift", "swift-from-py"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        let types = Dictionary(uniqueKeysWithValues: WireRegistry.messageTypes.map { ($0.protoName, $0) })

        // Swift -> Python: Swift's populated fixtures, which Python re-encodes.
        var sent: [String: any WireMessage] = [:]
        for (k, fixture) in Fixtures.all.enumerated() {
            let file = "\(type(of: fixture).protoName).\(k).bin"
            sent[file] = fixture
            try Data(fixture.serializedBytes()).write(to: dir.appendingPathComponent("swift/\(file)"))
        }
        let encode = try runProcess(Repository.python, [Self.script, "encode", dir.path])
        try #require(encode.status == 0, "\(encode.stdout)\(encode.stderr)")

        // Python -> Swift -> Python: every Python fixture decoded and re-encoded by Swift.
        let pyFiles = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("py").path).sorted()
        #expect(pyFiles.count >= types.count)
        for file in pyFiles {
            let name = String(file.split(separator: ".").dropLast(2).joined(separator: "."))
            let type = try #require(types[name], "no Swift type for \(name)")
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent("py/\(file)")))
            let echoed = try reencode(type, bytes)
            try Data(echoed).write(to: dir.appendingPathComponent("swift-from-py/\(file)"))
        }
        let compare = try runProcess(Repository.python, [Self.script, "compare", dir.path])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")

        // ... and Swift's fixtures, after Python decoded and re-encoded them, decode equal.
        for (file, original) in sent {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent("py-from-swift/\(file)")))
            #expect(try decodesEqual(original, bytes), "\(file) changed after the Python round trip")
        }
    }
}

private func reencode<M: WireMessage>(_ type: M.Type, _ bytes: [UInt8]) throws -> [UInt8] {
    try M(serializedBytes: bytes).serializedBytes()
}

private func decodesEqual<M: WireMessage>(_ original: M, _ bytes: [UInt8]) throws -> Bool {
    try M(serializedBytes: bytes) == original
}

@Suite struct ProtoContractTests {
    @Test func everyMessageFieldEnumValueAndRPCHasAComment() throws {
        let result = try runProcess(Repository.python, [PythonInteropTests.script, "comment-check"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }
}
