import Foundation
import Testing
import TetherTestSupport
@testable import TetherWire

/// `WireRegistry.fileDescriptors`, which server reflection serves: one per file in Protos/,
/// consistent with itself, and the base64 the generator stores them in.
@Suite struct ProtoFileDescriptorTests {
    @Test func everyFileInProtosHasItsDescriptorNamingIt() throws {
        let root = Repository.root.appendingPathComponent("Protos").path
        let protos = try #require(FileManager.default.enumerator(atPath: root)).compactMap { $0 as? String }
            .filter { $0.hasSuffix(".proto") }.sorted()
        let files = WireRegistry.fileDescriptors
        #expect(files.map(\.name) == protos)
        for file in files {
            // A FileDescriptorProto begins with field 1, its name.
            let name = Array(file.name.utf8)
            #expect(Array(file.serializedBytes.prefix(2 + name.count)) == [0x0A, UInt8(name.count)] + name, "\(file.name)")
        }
    }

    @Test func dependenciesNameKnownFilesAndNoSymbolIsDeclaredTwice() {
        let files = WireRegistry.fileDescriptors
        let names = Set(files.map(\.name))
        var seen: [String: String] = [:]
        for file in files {
            for dependency in file.dependencies { #expect(names.contains(dependency), "\(file.name) imports \(dependency)") }
            for symbol in file.symbols {
                #expect(seen.updateValue(file.name, forKey: symbol) == nil, "\(symbol) declared twice")
            }
        }
        #expect(seen["tether.control.v1.ControlService.GetRun"] == "tether/control/v1/control.proto")
        #expect(seen["grpc.health.v1.HealthCheckResponse.ServingStatus"] == "grpc/health/v1/health.proto")
        #expect(seen["grpc.health.v1.HealthCheckResponse.SERVING"] == "grpc/health/v1/health.proto")
        #expect(seen["grpc.reflection.v1alpha.ServerReflectionRequest.message_request"] == "grpc/reflection/v1alpha/reflection.proto")
    }

    @Test func base64DecodesPaddedTextAcrossLinesAndRejectsAnythingElse() {
        #expect(ProtoFileDescriptor.decodeBase64("") == [])
        #expect(ProtoFileDescriptor.decodeBase64("Zg==") == Array("f".utf8))
        #expect(ProtoFileDescriptor.decodeBase64("Zm8=") == Array("fo".utf8))
        #expect(ProtoFileDescriptor.decodeBase64("  Zm9v\n    YmFy\n") == Array("foobar".utf8))
        #expect(ProtoFileDescriptor.decodeBase64("AP/+") == [0x00, 0xFF, 0xFE])
        for bad in ["Zg", "Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zg=a", "Zm9v="] {
            #expect(ProtoFileDescriptor.decodeBase64(bad) == nil, "\(bad)")
        }
    }
}
