public import TetherWire

/// gRPC server reflection: `grpc.reflection.v1.ServerReflection` and its older twin
/// `grpc.reflection.v1alpha.ServerReflection`, as the public reflection protocol defines
/// them, so that grpcurl, grpc_cli or grpcio-reflection can list a server's services and
/// build its messages without the .proto files.
///
/// It knows only what it is given: the names of the services the server answers and the
/// compiled `.proto` files (`ProtoFileDescriptor`s). It serves the files that declare those
/// services and everything they import, no others. Immutable and thread-safe.
///
/// Answers as grpc-go's reflection server does: `list_services` names every service (this
/// one included); `file_by_filename`, `file_containing_symbol` and
/// `file_containing_extension` send the file found and, first time in the stream, each
/// file it imports, directly or not (a client can build a complete pool from one stream);
/// an unknown name gets an `error_response` with NOT_FOUND and the call goes on. A request
/// with none of its kinds set, or with a host or name longer than `maxNameBytes`, ends the
/// call with INVALID_ARGUMENT.
public struct GRPCReflectionService: Sendable {
    /// The services a server adds by serving reflection.
    public static let serviceNames = [ReflectionV1.ServerReflection.serviceName, ReflectionV1alpha.ServerReflection.serviceName]

    /// Longer hosts and names are refused: no real name comes close (a fully qualified
    /// protobuf name or a DNS name is a few hundred bytes at most), and answers quote them.
    public static let maxNameBytes = 4096

    /// Why the service cannot describe what it was asked to, in words for a developer.
    public struct ConfigurationError: Error, CustomStringConvertible {
        public let description: String
    }

    /// One reflection request, whichever protocol version it came in.
    enum Request: Equatable {
        case fileByFilename(String)
        case fileContainingSymbol(String)
        case fileContainingExtension(type: String, number: Int32)
        case allExtensionNumbersOfType(String)
        case listServices
    }

    /// The answer to one request, whichever protocol version it goes out in.
    enum Answer: Equatable {
        /// Serialized `FileDescriptorProto`s: the file asked for first, then files it imports.
        case files([[UInt8]])
        case extensionNumbers(type: String, numbers: [Int32])
        case services([String])
        case error(GRPCStatusCode, String)
    }

    /// Every service named, sorted.
    let services: [String]
    /// The files served, by name.
    private let files: [String: ProtoFileDescriptor]
    /// The file declaring each name (without a leading dot) of the files served.
    private let fileBySymbol: [String: String]
    private let fileByExtension: [ProtoFileDescriptor.Extension: String]
    /// The extension numbers of each message type that any file served extends.
    private let extensionNumbers: [String: [Int32]]
    /// The message types of the files served.
    private let messageTypes: Set<String>

    /// - Parameters:
    ///   - services: the fully qualified names of every service the server answers,
    ///     reflection's own (`serviceNames`) included.
    ///   - files: compiled `.proto` files, at least those declaring `services` and what they
    ///     import (more are fine: only those are served).
    /// - Throws: `ConfigurationError` when no file declares one of `services`, a file
    ///   imports one not given, or two files share a name or declare the same name.
    public init(services: some Sequence<String>, files: [ProtoFileDescriptor]) throws(ConfigurationError) {
        var byName: [String: ProtoFileDescriptor] = [:]
        var declaring: [String: String] = [:]
        for file in files {
            guard byName.updateValue(file, forKey: file.name) == nil else {
                throw ConfigurationError(description: "two descriptors for \(file.name)")
            }
            for symbol in file.symbols { declaring[symbol] = file.name }
        }
        self.services = Set(services).sorted()
        // The files declaring the services, then everything they import.
        var pending = try self.services.map { (service) throws(ConfigurationError) in
            guard let file = declaring[service] else { throw ConfigurationError(description: "no .proto file given declares service \(service)") }
            return file
        }
        var served: [String: ProtoFileDescriptor] = [:]
        while let name = pending.popLast() {
            guard served[name] == nil else { continue }
            guard let file = byName[name] else { throw ConfigurationError(description: "\(name) is imported but not given") }
            served[name] = file
            pending += file.dependencies
        }
        var fileBySymbol: [String: String] = [:]
        var fileByExtension: [ProtoFileDescriptor.Extension: String] = [:]
        var extensionNumbers: [String: [Int32]] = [:]
        var messageTypes = Set<String>()
        for file in served.values.sorted(by: { $0.name < $1.name }) {
            for symbol in file.symbols {
                if let other = fileBySymbol.updateValue(file.name, forKey: symbol) {
                    throw ConfigurationError(description: "\(symbol) is declared by both \(other) and \(file.name)")
                }
            }
            messageTypes.formUnion(file.messageTypes)
            for e in file.extensions {
                fileByExtension[e] = file.name
                extensionNumbers[e.extendee, default: []].append(e.number)
            }
        }
        self.files = served
        self.fileBySymbol = fileBySymbol
        self.fileByExtension = fileByExtension
        self.extensionNumbers = extensionNumbers
        self.messageTypes = messageTypes
    }

    /// The names of the files served, sorted.
    var fileNames: [String] { files.keys.sorted() }

    /// Answers one request. `sent` holds the names of the files this stream has sent
    /// already: a dependency in it is not sent again (the file asked for always is).
    func answer(_ request: Request, sent: inout Set<String>) -> Answer {
        switch request {
        case .listServices:
            return .services(services)
        case .fileByFilename(let name):
            guard files[name] != nil else { return .error(.notFound, "file not found: \(name)") }
            return .files(withDependencies(of: name, sent: &sent))
        case .fileContainingSymbol(let symbol):
            guard let file = fileBySymbol[Self.withoutLeadingDot(symbol)] else { return .error(.notFound, "symbol not found: \(symbol)") }
            return .files(withDependencies(of: file, sent: &sent))
        case .fileContainingExtension(let type, let number):
            let key = ProtoFileDescriptor.Extension(extendee: Self.withoutLeadingDot(type), number: number)
            guard let file = fileByExtension[key] else { return .error(.notFound, "extension not found: \(number) of \(type)") }
            return .files(withDependencies(of: file, sent: &sent))
        case .allExtensionNumbersOfType(let type):
            let name = Self.withoutLeadingDot(type)
            guard messageTypes.contains(name) else { return .error(.notFound, "message type not found: \(type)") }
            return .extensionNumbers(type: name, numbers: (extensionNumbers[name] ?? []).sorted())
        }
    }

    /// `.package.Name`, protobuf's fully qualified form, names the same as `package.Name`.
    private static func withoutLeadingDot(_ name: String) -> String {
        name.hasPrefix(".") ? String(name.dropFirst()) : name
    }

    /// `name`'s bytes, then those of every file it imports, directly or not, breadth first,
    /// each once and only if not in `sent`; adds every file sent to `sent`.
    private func withDependencies(of name: String, sent: inout Set<String>) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var queue = [name], visited: Set<String> = [name], index = 0
        while index < queue.count {
            // A served file's imports are served (init), so every name here is found.
            guard let file = files[queue[index]] else { index += 1; continue }
            if index == 0 || !sent.contains(file.name) {
                out.append(file.serializedBytes)
                sent.insert(file.name)
            }
            for dependency in file.dependencies where visited.insert(dependency).inserted { queue.append(dependency) }
            index += 1
        }
        return out
    }

    /// Serves both protocol versions' `ServerReflectionInfo` in `router`.
    func register(in router: inout GRPCRouter) {
        router.bidirectionalStreaming(ReflectionV1.ServerReflection.serverReflectionInfo) { [self] requests, writer, _ in
            var sent = Set<String>()
            for try await message in requests {
                let answer = answer(try Request(message), sent: &sent)
                try await writer.write(ReflectionV1.ServerReflectionResponse(answer, to: message))
            }
        }
        router.bidirectionalStreaming(ReflectionV1alpha.ServerReflection.serverReflectionInfo) { [self] requests, writer, _ in
            var sent = Set<String>()
            for try await message in requests {
                let answer = answer(try Request(message), sent: &sent)
                try await writer.write(ReflectionV1alpha.ServerReflectionResponse(answer, to: message))
            }
        }
    }

    /// `text` if it is at most `maxNameBytes` long.
    /// - Throws: INVALID_ARGUMENT naming `what` and the length, not the text.
    static func bounded(_ text: String, _ what: String) throws(GRPCStatus) -> String {
        let count = text.utf8.count
        guard count <= maxNameBytes else {
            throw GRPCStatus(code: .invalidArgument, message: "reflection request: \(what) is \(count) bytes; at most \(maxNameBytes)")
        }
        return text
    }
}

// MARK: The two protocol versions, mapped to and from one shape.
// v1 and v1alpha are the same messages under two packages; the generated types differ only
// in their namespace, so each version is mapped once here and the service sees neither.

extension GRPCReflectionService.Request {
    /// - Throws: INVALID_ARGUMENT for a request with no kind set or an over-long host or name.
    init(_ message: ReflectionV1.ServerReflectionRequest) throws(GRPCStatus) {
        _ = try GRPCReflectionService.bounded(message.host, "host")
        switch message.messageRequest {
        case .fileByFilename(let name)?: self = .fileByFilename(try GRPCReflectionService.bounded(name, "file_by_filename"))
        case .fileContainingSymbol(let name)?: self = .fileContainingSymbol(try GRPCReflectionService.bounded(name, "file_containing_symbol"))
        case .fileContainingExtension(let e)?:
            self = .fileContainingExtension(type: try GRPCReflectionService.bounded(e.containingType, "containing_type"), number: e.extensionNumber)
        case .allExtensionNumbersOfType(let name)?:
            self = .allExtensionNumbersOfType(try GRPCReflectionService.bounded(name, "all_extension_numbers_of_type"))
        case .listServices?: self = .listServices
        case nil: throw GRPCStatus(code: .invalidArgument, message: "reflection request: no message_request set")
        }
    }

    /// - Throws: INVALID_ARGUMENT for a request with no kind set or an over-long host or name.
    init(_ message: ReflectionV1alpha.ServerReflectionRequest) throws(GRPCStatus) {
        _ = try GRPCReflectionService.bounded(message.host, "host")
        switch message.messageRequest {
        case .fileByFilename(let name)?: self = .fileByFilename(try GRPCReflectionService.bounded(name, "file_by_filename"))
        case .fileContainingSymbol(let name)?: self = .fileContainingSymbol(try GRPCReflectionService.bounded(name, "file_containing_symbol"))
        case .fileContainingExtension(let e)?:
            self = .fileContainingExtension(type: try GRPCReflectionService.bounded(e.containingType, "containing_type"), number: e.extensionNumber)
        case .allExtensionNumbersOfType(let name)?:
            self = .allExtensionNumbersOfType(try GRPCReflectionService.bounded(name, "all_extension_numbers_of_type"))
        case .listServices?: self = .listServices
        case nil: throw GRPCStatus(code: .invalidArgument, message: "reflection request: no message_request set")
        }
    }
}

extension ReflectionV1.ServerReflectionResponse {
    /// `answer` to `request`, which it echoes with its host, as the protocol asks.
    init(_ answer: GRPCReflectionService.Answer, to request: ReflectionV1.ServerReflectionRequest) {
        self.init()
        validHost = request.host
        originalRequest = request
        switch answer {
        case .files(let files):
            var response = ReflectionV1.FileDescriptorResponse()
            response.fileDescriptorProto = files
            messageResponse = .fileDescriptorResponse(response)
        case .extensionNumbers(let type, let numbers):
            var response = ReflectionV1.ExtensionNumberResponse()
            response.baseTypeName = type
            response.extensionNumber = numbers
            messageResponse = .allExtensionNumbersResponse(response)
        case .services(let names):
            var response = ReflectionV1.ListServiceResponse()
            response.service = names.map { name in
                var service = ReflectionV1.ServiceResponse()
                service.name = name
                return service
            }
            messageResponse = .listServicesResponse(response)
        case .error(let code, let message):
            var response = ReflectionV1.ErrorResponse()
            response.errorCode = Int32(code.rawValue)
            response.errorMessage = message
            messageResponse = .errorResponse(response)
        }
    }
}

extension ReflectionV1alpha.ServerReflectionResponse {
    /// `answer` to `request`, which it echoes with its host, as the protocol asks.
    init(_ answer: GRPCReflectionService.Answer, to request: ReflectionV1alpha.ServerReflectionRequest) {
        self.init()
        validHost = request.host
        originalRequest = request
        switch answer {
        case .files(let files):
            var response = ReflectionV1alpha.FileDescriptorResponse()
            response.fileDescriptorProto = files
            messageResponse = .fileDescriptorResponse(response)
        case .extensionNumbers(let type, let numbers):
            var response = ReflectionV1alpha.ExtensionNumberResponse()
            response.baseTypeName = type
            response.extensionNumber = numbers
            messageResponse = .allExtensionNumbersResponse(response)
        case .services(let names):
            var response = ReflectionV1alpha.ListServiceResponse()
            response.service = names.map { name in
                var service = ReflectionV1alpha.ServiceResponse()
                service.name = name
                return service
            }
            messageResponse = .listServicesResponse(response)
        case .error(let code, let message):
            var response = ReflectionV1alpha.ErrorResponse()
            response.errorCode = Int32(code.rawValue)
            response.errorMessage = message
            messageResponse = .errorResponse(response)
        }
    }
}
