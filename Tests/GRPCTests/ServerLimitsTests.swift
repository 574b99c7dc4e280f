import Foundation
import Testing
@testable import GRPC
import H2
import TetherEcho
import TetherWire

/// Server-wide limits.
@Suite struct ServerLimitsTests {
    @Test func connectionsOverTheLimitAreClosedAndTheRestKeepWorking() async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.maxConnections = 2
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: EchoService.router())
        let address = try server.start()
        let clients = try (0..<3).map { _ in try GRPCClient(configuration: .init(target: address, tls: nil)) }
        var outcomes: [GRPCStatusCode] = []
        for client in clients {
            do {
                let _: TestingV1.EchoResponse = try await client.unary(TestingV1.EchoService.echo, TestingV1.EchoRequest())
                outcomes.append(.ok)
            } catch {
                outcomes.append(error.code)
            }
        }
        #expect(outcomes == [.ok, .ok, .unavailable])
        #expect(server.openConnections == 2)
        // The first two connections still serve.
        let again: TestingV1.EchoResponse = try await clients[0].unary(TestingV1.EchoService.echo, TestingV1.EchoRequest())
        #expect(again.index == 0)
        for client in clients { await client.close() }
        await server.shutdown(graceful: false)
    }
}
