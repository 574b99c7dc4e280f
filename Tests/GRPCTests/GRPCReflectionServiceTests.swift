import H2
import TetherEcho
import Testing
import TetherWire
@testable import GRPC

/// Server reflection's lookups (`GRPCReflectionService.answer`) over the real descriptors of
/// Protos/ and over small made-up files, and the service over the wire with our client.
@Suite struct GRPCReflectionServiceTests {
    typealias Request = GRPCReflectionService.Request
    typealias Answer = GRPCReflectionService.Answer

    static let tetherServices = [
        "tether.control.v1.ControlService", "tether.agent.v1.AgentService", "grpc.health.v1.Health",
    ] + GRPCReflectionService.serviceNames

    static func tether() throws -> GRPCReflectionService {
        try GRPCReflectionService(services: tetherServices, files: WireRegistry.fileDescriptors)
    }

    static func bytes(_ name: String) -> [UInt8] {
        WireRegistry.fileDescriptors.first { $0.name == name }?.serializedBytes ?? []
    }

    static func answer(_ service: GRPCReflectionService, _ request: Request) -> Answer {
        var sent = Set<String>()
        return service.answer(request, sent: &sent)
    }

    // MARK: The files of Protos/

    @Test func servesTheFilesBehindItsServicesAndNoOthers() throws {
        let service = try Self.tether()
        #expect(service.fileNames == [
            "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto",
            "tether/agent/v1/agent.proto", "tether/control/v1/control.proto",
        ])
        #expect(Self.answer(service, .listServices) == .services(Self.tetherServices.sorted()))
        // echo.proto is in Protos/ but not served by this server.
        #expect(Self.answer(service, .fileContainingSymbol("tether.testing.v1.EchoService"))
                == .error(.notFound, "symbol not found: tether.testing.v1.EchoService"))
        #expect(Self.answer(service, .fileByFilename("tether/testing/v1/echo.proto"))
                == .error(.notFound, "file not found: tether/testing/v1/echo.proto"))
    }

    @Test func everyKindOfSymbolFindsTheFileDeclaringIt() throws {
        let service = try Self.tether()
        let control = [Self.bytes("tether/control/v1/control.proto")]
        let health = [Self.bytes("grpc/health/v1/health.proto")]
        let symbols: [(String, [[UInt8]])] = [
            ("tether.control.v1.ControlService", control),                       // service
            ("tether.control.v1.ControlService.GetRun", control),                // method
            ("tether.control.v1.GetRunRequest", control),                        // message
            ("tether.control.v1.GetRunRequest.run_id", control),                 // field
            ("grpc.health.v1.HealthCheckResponse.ServingStatus", health),        // nested enum
            ("grpc.health.v1.HealthCheckResponse.NOT_SERVING", health),          // its value, the enum's sibling
            (".grpc.health.v1.Health.Watch", health),                            // with protobuf's leading dot
            ("grpc.reflection.v1.ServerReflectionRequest.message_request",       // oneof
             [Self.bytes("grpc/reflection/v1/reflection.proto")]),
        ]
        for (symbol, files) in symbols {
            #expect(Self.answer(service, .fileContainingSymbol(symbol)) == .files(files), "\(symbol)")
        }
        for symbol in ["tether.control.v1.NoSuchThing", "tether.control.v1", "ControlService", "", "tether.control.v1.ControlService.getRun"] {
            #expect(Self.answer(service, .fileContainingSymbol(symbol)) == .error(.notFound, "symbol not found: \(symbol)"))
        }
    }

    @Test func extensionsAreNotFoundAndMessagesHaveNoExtensionNumbers() throws {
        let service = try Self.tether()
        #expect(Self.answer(service, .fileContainingExtension(type: "tether.control.v1.Run", number: 100))
                == .error(.notFound, "extension not found: 100 of tether.control.v1.Run"))
        #expect(Self.answer(service, .allExtensionNumbersOfType("tether.control.v1.GetRunRequest"))
                == .extensionNumbers(type: "tether.control.v1.GetRunRequest", numbers: []))
        for name in ["tether.control.v1.ControlService", "tether.control.v1.Nope"] {
            #expect(Self.answer(service, .allExtensionNumbersOfType(name)) == .error(.notFound, "message type not found: \(name)"))
        }
    }

    @Test func aServiceWithoutItsFileOrAFileWithoutItsImportIsRefused() {
        #expect(throws: GRPCReflectionService.ConfigurationError.self) {
            try GRPCReflectionService(services: Self.tetherServices + ["tether.nothing.v1.Ghost"], files: WireRegistry.fileDescriptors)
        }
        let lonely = Self.file("a.proto", imports: ["missing.proto"], symbols: ["a.Service"])
        #expect(throws: GRPCReflectionService.ConfigurationError.self) {
            try GRPCReflectionService(services: ["a.Service"], files: [lonely])
        }
        let twice = [Self.file("a.proto", imports: ["b.proto"], symbols: ["a.Service", "x.M"]), Self.file("b.proto", symbols: ["x.M"])]
        #expect(throws: GRPCReflectionService.ConfigurationError.self) {
            try GRPCReflectionService(services: ["a.Service"], files: twice)
        }
    }

    // MARK: Dependencies, on made-up files

    static func file(_ name: String, imports: [String] = [], symbols: [String], messages: [String] = [],
                     extensions: [ProtoFileDescriptor.Extension] = []) -> ProtoFileDescriptor {
        ProtoFileDescriptor(name: name, dependencies: imports, symbols: symbols, messageTypes: messages,
                            extensions: extensions, serializedBytes: Array(name.utf8))
    }

    /// a imports b and c, both import d (a diamond); e imports nothing and is not served.
    static let diamond = [
        file("a.proto", imports: ["b.proto", "c.proto"], symbols: ["p.A", "p.A.Call"]),
        file("b.proto", imports: ["d.proto"], symbols: ["p.B"], messages: ["p.B"]),
        file("c.proto", imports: ["d.proto"], symbols: ["p.C"], messages: ["p.C"],
             extensions: [.init(extendee: "p.D", number: 100), .init(extendee: "p.D", number: 7)]),
        file("d.proto", symbols: ["p.D", "p.D.Inner"], messages: ["p.D", "p.D.Inner"]),
        file("e.proto", symbols: ["p.E"], messages: ["p.E"]),
    ]

    static func names(_ answer: Answer) -> [String] {
        guard case .files(let files) = answer else { return ["not files: \(answer)"] }
        return files.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func aFileComesWithEveryImportOnceBreadthFirst() throws {
        let service = try GRPCReflectionService(services: ["p.A"], files: Self.diamond)
        #expect(service.fileNames == ["a.proto", "b.proto", "c.proto", "d.proto"])
        var sent = Set<String>()
        #expect(Self.names(service.answer(.fileContainingSymbol("p.A.Call"), sent: &sent)) == ["a.proto", "b.proto", "c.proto", "d.proto"])
        // Later in the same stream: the file asked for again, its imports not.
        #expect(Self.names(service.answer(.fileByFilename("b.proto"), sent: &sent)) == ["b.proto"])
        // A new stream starts afresh.
        var fresh = Set<String>()
        #expect(Self.names(service.answer(.fileContainingSymbol("p.B"), sent: &fresh)) == ["b.proto", "d.proto"])
        #expect(Self.names(service.answer(.fileContainingSymbol("p.C"), sent: &fresh)) == ["c.proto"])
        #expect(Self.answer(service, .fileContainingSymbol("p.E")) == .error(.notFound, "symbol not found: p.E"))
    }

    @Test func extensionsAreFoundByTypeAndNumber() throws {
        let service = try GRPCReflectionService(services: ["p.A"], files: Self.diamond)
        #expect(Self.names(Self.answer(service, .fileContainingExtension(type: "p.D", number: 7))) == ["c.proto", "d.proto"])
        #expect(Self.answer(service, .fileContainingExtension(type: "p.D", number: 8)) == .error(.notFound, "extension not found: 8 of p.D"))
        #expect(Self.answer(service, .allExtensionNumbersOfType("p.D")) == .extensionNumbers(type: "p.D", numbers: [7, 100]))
        #expect(Self.answer(service, .allExtensionNumbersOfType(".p.D.Inner")) == .extensionNumbers(type: "p.D.Inner", numbers: []))
    }

    // MARK: Bad input

    @Test func overLongNamesAndEmptyRequestsAreInvalidArguments() throws {
        let long = String(repeating: "x", count: GRPCReflectionService.maxNameBytes + 1)
        var request = ReflectionV1.ServerReflectionRequest()
        request.messageRequest = .fileContainingSymbol(long)
        #expect(throws: GRPCStatus(code: .invalidArgument, message: "reflection request: file_containing_symbol is 4097 bytes; at most 4096")) {
            try Request(request)
        }
        var alpha = ReflectionV1alpha.ServerReflectionRequest()
        alpha.host = long
        alpha.messageRequest = .listServices("")
        #expect(throws: GRPCStatus(code: .invalidArgument, message: "reflection request: host is 4097 bytes; at most 4096")) {
            try Request(alpha)
        }
        #expect(throws: GRPCStatus(code: .invalidArgument, message: "reflection request: no message_request set")) {
            try Request(ReflectionV1.ServerReflectionRequest())
        }
        request.messageRequest = .fileContainingSymbol(String(long.dropLast()))
        #expect(try Request(request) == .fileContainingSymbol(String(long.dropLast())))
    }

    // MARK: Over the wire

    @Test(.timeLimit(.minutes(1)))
    func bothVersionsAnswerOverOneStreamEachAndABadRequestEndsTheCall() async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: EchoService.router(), reflection: WireRegistry.fileDescriptors)
        let client = try GRPCClient(configuration: .init(target: try server.start(), tls: nil))

        let v1 = try await client.makeCall(ReflectionV1.ServerReflection.serverReflectionInfo)
        var list = ReflectionV1.ServerReflectionRequest()
        list.host = "localhost"
        list.messageRequest = .listServices("*")
        try await v1.send(list)
        let listed = try #require(try await v1.next())
        #expect(listed.validHost == "localhost")
        #expect(listed.originalRequest == list)
        guard case .listServicesResponse(let services)? = listed.messageResponse else { Issue.record("\(listed)"); return }
        #expect(services.service.map(\.name) == ([TestingV1.EchoService.serviceName, "grpc.health.v1.Health"]
                                                    + GRPCReflectionService.serviceNames).sorted())
        var unknown = ReflectionV1.ServerReflectionRequest()
        unknown.messageRequest = .fileContainingSymbol("no.Such")
        try await v1.send(unknown)
        let error = try #require(try await v1.next())
        guard case .errorResponse(let notFound)? = error.messageResponse else { Issue.record("\(error)"); return }
        #expect(notFound.errorCode == Int32(GRPCStatusCode.notFound.rawValue))
        #expect(notFound.errorMessage == "symbol not found: no.Such")
        // The call goes on after an error response; a request with no kind ends it.
        try await v1.send(ReflectionV1.ServerReflectionRequest())
        await #expect(throws: GRPCStatus(code: .invalidArgument, message: "reflection request: no message_request set")) {
            _ = try await v1.next()
        }

        let alpha = try await client.makeCall(ReflectionV1alpha.ServerReflection.serverReflectionInfo)
        var symbol = ReflectionV1alpha.ServerReflectionRequest()
        symbol.messageRequest = .fileContainingSymbol("tether.testing.v1.EchoService.Chat")
        try await alpha.send(symbol)
        let found = try #require(try await alpha.next())
        guard case .fileDescriptorResponse(let files)? = found.messageResponse else { Issue.record("\(found)"); return }
        #expect(files.fileDescriptorProto == [Self.bytes("tether/testing/v1/echo.proto")])
        await alpha.finishSending()
        #expect(try await alpha.next() == nil)
        #expect(await alpha.status()?.code == .ok)

        await client.close()
        await server.shutdown()
    }
}
