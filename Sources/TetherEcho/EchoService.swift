public import GRPC
import TetherWire

/// tether.testing.v1.EchoService: echoes requests in all four call shapes and
/// follows the request's delay / failure instructions. Used by the interop tests
/// and the transport benchmarks; never served by `tether server`.
public enum EchoService {
    public static func router() -> GRPCRouter {
        var router = GRPCRouter()
        router.unary(TestingV1.EchoService.echo) { (request: TestingV1.EchoRequest, context) in
            try await behave(request)
            return response(to: request, index: 0, context)
        }
        router.serverStreaming(TestingV1.EchoService.expand) { (request: TestingV1.EchoRequest, writer: GRPCResponseWriter<TestingV1.EchoResponse>, context) in
            for i in 0..<request.repeat {
                try await behave(request)
                try await writer.write(response(to: request, index: i, context))
            }
        }
        router.clientStreaming(TestingV1.EchoService.collect) { (requests: GRPCRequestStream<TestingV1.EchoRequest>, context) in
            var joined = TestingV1.EchoRequest()
            for try await request in requests {
                try await behave(request)
                joined.payload += request.payload
                joined.text += request.text
            }
            return response(to: joined, index: 0, context)
        }
        router.bidirectionalStreaming(TestingV1.EchoService.chat) { (requests: GRPCRequestStream<TestingV1.EchoRequest>, writer: GRPCResponseWriter<TestingV1.EchoResponse>, context) in
            var index: UInt32 = 0
            for try await request in requests {
                try await behave(request)
                try await writer.write(response(to: request, index: index, context))
                index += 1
            }
        }
        return router
    }

    /// Applies the request's delay and failure instructions.
    static func behave(_ request: TestingV1.EchoRequest) async throws {
        if request.delayMs > 0 { try await Task.sleep(for: .milliseconds(Int64(clamping: request.delayMs))) }
        if request.failWithCode != 0 {
            throw GRPCStatus(code: GRPCStatusCode(rawValue: Int(request.failWithCode)), message: request.failWithMessage)
        }
    }

    static func response(to request: TestingV1.EchoRequest, index: UInt32, _ context: GRPCServerContext) -> TestingV1.EchoResponse {
        var response = TestingV1.EchoResponse()
        response.payload = request.responseSize > 0 ? [UInt8](repeating: 0x61, count: Int(request.responseSize)) : request.payload
        response.text = request.text
        response.index = index
        if index == 0 {
            response.metadata = context.head.metadata.map { entry in
                switch entry.value {
                case .string(let text): return "\(entry.key)=\(text)"
                case .binary(let bytes): return "\(entry.key)=\(bytes.map { String($0) }.joined(separator: ","))"
                }
            }.sorted()
        }
        return response
    }
}
