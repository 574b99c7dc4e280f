@testable import TetherWire

extension Fixtures {
    /// `grpc.reflection.v1`: every request kind and every response kind, with repeated
    /// bytes (empty and holding zeros) and repeated int32 (negative, large).
    static let reflectionV1: [any WireMessage] = {
        var extensionRequest = ReflectionV1.ExtensionRequest()
        extensionRequest.containingType = "tether.control.v1.Run"
        extensionRequest.extensionNumber = .max
        var requests: [ReflectionV1.ServerReflectionRequest] = []
        for kind: ReflectionV1.ServerReflectionRequest.MessageRequest in [
            .fileByFilename("tether/control/v1/control.proto"), .fileContainingSymbol("tether.control.v1.ControlService.GetRun"),
            .fileContainingExtension(extensionRequest), .allExtensionNumbersOfType("tether.control.v1.Run"), .listServices(unicode),
        ] {
            var request = ReflectionV1.ServerReflectionRequest()
            request.host = "localhost:7443"
            request.messageRequest = kind
            requests.append(request)
        }
        var files = ReflectionV1.FileDescriptorResponse()
        files.fileDescriptorProto = [[0x0A, 0x00], [], [0, 0, 0xFF], Array(repeating: 7, count: 300)]
        var numbers = ReflectionV1.ExtensionNumberResponse()
        numbers.baseTypeName = "tether.control.v1.Run"
        numbers.extensionNumber = [1, -1, .max, .min, 1000]
        var service = ReflectionV1.ServiceResponse()
        service.name = "grpc.reflection.v1.ServerReflection"
        var services = ReflectionV1.ListServiceResponse()
        services.service = [service, ReflectionV1.ServiceResponse()]
        var error = ReflectionV1.ErrorResponse()
        error.errorCode = 5
        error.errorMessage = "symbol not found: \(unicode)"
        var responses: [ReflectionV1.ServerReflectionResponse] = []
        for kind: ReflectionV1.ServerReflectionResponse.MessageResponse in [
            .fileDescriptorResponse(files), .allExtensionNumbersResponse(numbers), .listServicesResponse(services), .errorResponse(error),
        ] {
            var response = ReflectionV1.ServerReflectionResponse()
            response.validHost = "localhost:7443"
            response.originalRequest = requests[1]
            response.messageResponse = kind
            responses.append(response)
        }
        return requests + responses + [extensionRequest, files, numbers, services, service, error]
    }()

    /// `grpc.reflection.v1alpha`: the same shapes under the older package.
    static let reflectionV1alpha: [any WireMessage] = {
        var extensionRequest = ReflectionV1alpha.ExtensionRequest()
        extensionRequest.containingType = "tether.agent.v1.Hello"
        extensionRequest.extensionNumber = 536_870_911
        var request = ReflectionV1alpha.ServerReflectionRequest()
        request.host = unicode
        request.messageRequest = .fileContainingExtension(extensionRequest)
        var files = ReflectionV1alpha.FileDescriptorResponse()
        files.fileDescriptorProto = [[1, 2, 3], []]
        var numbers = ReflectionV1alpha.ExtensionNumberResponse()
        numbers.baseTypeName = "tether.agent.v1.Hello"
        numbers.extensionNumber = [-5, 0, 7]
        var service = ReflectionV1alpha.ServiceResponse()
        service.name = "grpc.reflection.v1alpha.ServerReflection"
        var services = ReflectionV1alpha.ListServiceResponse()
        services.service = [service]
        var error = ReflectionV1alpha.ErrorResponse()
        error.errorCode = 3
        error.errorMessage = "bad request"
        var response = ReflectionV1alpha.ServerReflectionResponse()
        response.validHost = unicode
        response.originalRequest = request
        response.messageResponse = .fileDescriptorResponse(files)
        return [request, response, extensionRequest, files, numbers, services, service, error]
    }()
}
