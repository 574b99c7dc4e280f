import Foundation
import Testing
import TetherTestSupport

/// RPCs are named only by generated `RPCMethod` values, so a misspelt method, a wrong
/// request or response type, or a call of the wrong shape does not compile. Each case
/// type-checks a small client of the built modules with swiftc: the correct program
/// must pass (so a failure below is the compiler refusing the mistake, not the setup).
@Suite struct TypedMethodTests {
    static let correct = """
        func call(_ client: GRPCClient) async throws {
            let run: ControlV1.GetRunResponse = try await client.unary(ControlV1.ControlService.getRun, ControlV1.GetRunRequest())
            _ = run
            let session = try await client.makeCall(AgentV1.AgentService.connect)
            try await session.send(AgentV1.AgentMessage(.hello(AgentV1.Hello())))
        }
        func serve(_ router: inout GRPCRouter) {
            router.unary(ControlV1.ControlService.getRun) { (_: ControlV1.GetRunRequest, _) in ControlV1.GetRunResponse() }
        }
        """

    @Test func theCorrectProgramTypeChecks() throws {
        let result = try Self.typeCheck(Self.correct)
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test(arguments: [
        ("a misspelt method", "client.unary(ControlV1.ControlService.getRnu, ControlV1.GetRunRequest())", "has no member 'getRnu'"),
        ("a wrong request type", "client.unary(ControlV1.ControlService.getRun, ControlV1.TriggerRunRequest())",
         "cannot convert value of type 'ControlV1.TriggerRunRequest'"),
        ("a streaming method called as unary", "client.unary(AgentV1.AgentService.connect, AgentV1.AgentMessage())",
         "RPCShape.Unary"),
    ])
    func aMistakeInACallDoesNotCompile(mistake: String, call: String, expected: String) throws {
        let source = Self.correct.replacingOccurrences(
            of: "client.unary(ControlV1.ControlService.getRun, ControlV1.GetRunRequest())", with: call)
        #expect(source != Self.correct)
        let result = try Self.typeCheck(source)
        #expect(result.status != 0, "\(mistake) compiled")
        #expect(result.stderr.contains(expected), "\(mistake): \(result.stderr)")
    }

    @Test func aHandlerOfTheWrongTypeDoesNotCompile() throws {
        let source = Self.correct.replacingOccurrences(of: "(_: ControlV1.GetRunRequest, _) in ControlV1.GetRunResponse()",
                                                       with: "(_: ControlV1.GetRunRequest, _) in ControlV1.ListRunsResponse()")
        #expect(source != Self.correct)
        let result = try Self.typeCheck(source)
        #expect(result.status != 0, "a handler returning the wrong response compiled")
        #expect(result.stderr.contains("ListRunsResponse"), "\(result.stderr)")
    }

    /// Runs `swiftc -typecheck` on `body` against this build's GRPC and TetherWire modules.
    static func typeCheck(_ body: String) throws -> ProcessResult {
        let scratch = try ScratchDirectory()
        let file = scratch.path("client.swift")
        try ("import GRPC\nimport TetherWire\n" + body + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let bin = Repository.binary("").path
        var arguments = ["-typecheck", "-I", "\(bin)/Modules",
                         "-Xcc", "-fmodule-map-file=\(bin)/TetherProtoC.build/module.modulemap"]
        for module in ["CLinux", "CNGHTTP2", "COpenSSL", "CProtobufC", "CSQLite", "CHTTPParser"] {
            arguments += ["-Xcc", "-fmodule-map-file=\(Repository.root.path)/Sources/\(module)/module.modulemap"]
        }
        return try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["swiftc"] + arguments + [file])
    }
}
