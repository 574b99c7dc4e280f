import Foundation
import Testing
@testable import GRPC
import H2
import TetherEcho
import TetherTestSupport
import TetherWire

/// Our client reaching our server through an HTTP CONNECT proxy (Tests/Interop/connect_proxy.py),
/// and failing with UNAVAILABLE and the proxy step's reason when the proxy will not tunnel.
@Suite struct ProxyTests {
    typealias Request = TestingV1.EchoRequest
    typealias Response = TestingV1.EchoResponse

    @Test func tlsCallsReachTheServerThroughOneTunnelToTheTarget() async throws {
        let certs = try await onThreadOfItsOwn { try TestCertificates.make() }
        var serverConfiguration = GRPCServer.Configuration(
            address: try SocketAddress(parsing: "127.0.0.1:0"),
            tls: try TLSContext(.server(certificateChainFile: certs.serverCert, privateKeyFile: certs.serverKey)))
        serverConfiguration.loopCount = 1
        let server = try GRPCServer(configuration: serverConfiguration, router: EchoService.router())
        let address = try server.start()
        let proxy = try await ConnectProxy.start()
        // The proxy resolves the target's name; TLS checks "localhost" in the server's certificate.
        var configuration = GRPCClient.Configuration(
            target: address, tls: try TLSContext(.client(caFile: certs.caCert, serverName: "localhost")))
        configuration.authority = "localhost:\(address.port)"
        configuration.proxy = proxy.settings
        let client = try GRPCClient(configuration: configuration)
        for i in 0..<3 {
            var request = Request()
            request.text = "through the tunnel \(i)"
            let response: Response = try await client.unary(ClientConnectionTests.echo, request)
            #expect(response.text == request.text)
        }
        #expect(await proxy.lines("tunnel") == ["tunnel 1 to localhost:\(address.port)"], "\(proxy.output)")
        #expect(await proxy.lines("accepted").count == 1, "\(proxy.output)")
        await client.close()
        await server.shutdown(graceful: false)
        try await proxy.stop()
    }

    @Test func h2cCallsReachTheServerThroughATunnel() async throws {
        try await withH2CServer { address in
            let proxy = try await ConnectProxy.start()
            let client = try GRPCClient(configuration: Self.configuration(address, proxy: proxy.settings))
            #expect(await ClientConnectionTests.failure(client) == nil)
            #expect(await proxy.lines("tunnel") == ["tunnel 1 to \(address)"], "\(proxy.output)")
            await client.close()
            try await proxy.stop()
        }
    }

    /// The h2c server's SETTINGS arrive in the same segment as the proxy's 200: they are the
    /// first bytes of the tunnel and must reach the HTTP/2 session.
    @Test func serverBytesArrivingWithTheProxyAnswerAreKept() async throws {
        try await withH2CServer { address in
            let proxy = try await ConnectProxy.start(["--coalesce"])
            var configuration = Self.configuration(address, proxy: proxy.settings)
            configuration.backoff.minimumConnectTimeout = .seconds(10)
            let client = try GRPCClient(configuration: configuration)
            let status = await ClientConnectionTests.failure(client)
            #expect(status == nil, "\(String(describing: status)); proxy: \(proxy.output)")
            await client.close()
            try await proxy.stop()
        }
    }

    @Test func basicCredentialsFromTheProxyURLAreSent() async throws {
        try await withH2CServer { address in
            let proxy = try await ConnectProxy.start(["--auth", "agent:p@ss:word"])
            let url = "http://agent:p%40ss:word@\(proxy.address)"
            let client = try GRPCClient(configuration: Self.configuration(address, proxy: try ProxySettings(url: url)))
            #expect(await ClientConnectionTests.failure(client) == nil)
            #expect(await proxy.lines("tunnel").count == 1, "\(proxy.output)")
            await client.close()

            let anonymous = try GRPCClient(configuration: Self.configuration(address, proxy: proxy.settings))
            let status = await ClientConnectionTests.failure(anonymous)
            #expect(status?.code == .unavailable)
            #expect(status?.message.contains("refused CONNECT to \(address): 407 Proxy Authentication Required") == true,
                    "\(String(describing: status))")
            await anonymous.close()
            try await proxy.stop()
        }
    }

    @Test func aRefusedConnectIsUnavailableWithTheProxysAnswer() async throws {
        let proxy = try await ConnectProxy.start(["--refuse"])
        let status = try await Self.failure(through: proxy)
        #expect(status?.code == .unavailable)
        #expect(status?.message == "connection to example:443 via proxy \(proxy.address) failed: "
                + "proxy \(proxy.address) refused CONNECT to example:443: 403 Forbidden", "\(String(describing: status))")
        try await proxy.stop()
    }

    @Test func aSilentProxyIsUnavailableAfterTheConnectTimeout() async throws {
        let proxy = try await ConnectProxy.start(["--silent"])
        let start = ContinuousClock.now
        let status = try await Self.failure(through: proxy, connectTimeout: .milliseconds(300))
        #expect(status?.code == .unavailable)
        #expect(status?.message.contains("no answer from proxy \(proxy.address) to CONNECT example:443 within 0.3 seconds")
                == true, "\(String(describing: status))")
        #expect(ContinuousClock.now - start < .seconds(10))
        try await proxy.stop()
    }

    @Test func aProxyThatClosesOrAnswersWithAnOversizedHeadIsUnavailable() async throws {
        for (mode, reason) in [("--close", "proxy closed the connection before answering CONNECT"),
                               ("--huge-head", "proxy response head larger than 8 KiB")] {
            let proxy = try await ConnectProxy.start([mode])
            let status = try await Self.failure(through: proxy)
            #expect(status?.code == .unavailable)
            #expect(status?.message.hasSuffix(reason) == true, "\(mode): \(String(describing: status))")
            try await proxy.stop()
        }
    }

    @Test func aProxyThatIsNotListeningIsUnavailableNamingIt() async throws {
        let proxy = try await ConnectProxy.start()
        try await proxy.stop()
        let status = try await Self.failure(through: proxy)
        #expect(status?.code == .unavailable)
        #expect(status?.message.contains("connect to proxy \(proxy.address) failed: connect: Connection refused") == true,
                "\(String(describing: status))")
    }

    @Test func noProxyTargetsAreDialledDirectly() async throws {
        try await withH2CServer { address in
            let proxy = try await ConnectProxy.start()
            let target = "127.0.0.1:\(address.port)"
            var environment = ["http_proxy": "http://\(proxy.address)", "NO_PROXY": "localhost,127.0.0.1"]
            #expect(try ProxySettings.fromEnvironment(environment, target: target, tls: false) == nil)
            let direct = try GRPCClient(configuration: Self.configuration(address, proxy: nil))
            #expect(await ClientConnectionTests.failure(direct) == nil)
            await direct.close()
            #expect(proxy.linesNow("accepted").isEmpty, "\(proxy.output)")

            // The same variables without the exemption do reach the proxy.
            environment["NO_PROXY"] = "example.com"
            let settings = try ProxySettings.fromEnvironment(environment, target: target, tls: false)
            #expect(settings == proxy.settings)
            let proxied = try GRPCClient(configuration: Self.configuration(address, proxy: settings))
            #expect(await ClientConnectionTests.failure(proxied) == nil)
            await proxied.close()
            #expect(await proxy.lines("tunnel") == ["tunnel 1 to \(target)"], "\(proxy.output)")
            try await proxy.stop()
        }
    }

    // MARK: -

    static func configuration(_ address: SocketAddress, proxy: ProxySettings?) -> GRPCClient.Configuration {
        var configuration = GRPCClient.Configuration(target: address, tls: nil)
        configuration.proxy = proxy
        return configuration
    }

    /// The status an Echo call to example:443 through `proxy` fails with (nil if it succeeds).
    static func failure(through proxy: ConnectProxy, connectTimeout: Duration = .seconds(20)) async throws -> GRPCStatus? {
        var configuration = configuration(try SocketAddress(parsing: "127.0.0.1:1"), proxy: proxy.settings)
        configuration.authority = "example:443"
        configuration.backoff.minimumConnectTimeout = connectTimeout
        let client = try GRPCClient(configuration: configuration)
        let status = await ClientConnectionTests.failure(client)
        await client.close()
        return status
    }

    private func withH2CServer(_ body: (SocketAddress) async throws -> Void) async throws {
        var configuration = GRPCServer.Configuration(address: try SocketAddress(parsing: "127.0.0.1:0"), tls: nil)
        configuration.loopCount = 1
        let server = try GRPCServer(configuration: configuration, router: EchoService.router())
        let address = try server.start()
        do {
            try await body(address)
        } catch {
            await server.shutdown(graceful: false)
            throw error
        }
        await server.shutdown(graceful: false)
    }
}

/// Tests/Interop/connect_proxy.py, started with `arguments` (a mode, `--auth`). Every blocking
/// step runs on a thread of its own, off the cooperative pool.
struct ConnectProxy: Sendable {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/connect_proxy.py").path
    let process: ChildProcess
    let address: SocketAddress

    static func start(_ arguments: [String] = []) async throws -> ConnectProxy {
        let process = try await onThreadOfItsOwn {
            try ChildProcess(Repository.python, [script] + arguments, readyPrefix: "listening on")
        }
        return ConnectProxy(process: process, address: try SocketAddress(parsing: process.listeningAddress))
    }

    /// The proxy, as the client is configured with it.
    var settings: ProxySettings { ProxySettings(host: "127.0.0.1", port: address.port) }

    /// What the proxy printed since it became ready.
    var output: String { process.recentOutput }

    /// The event lines (see the script) starting with `prefix` printed so far.
    func linesNow(_ prefix: String) -> [String] {
        output.split(separator: "\n").filter { $0.hasPrefix(prefix + " ") }.map(String.init)
    }

    /// As `linesNow`, once there is at least one (or after 10 s): the proxy prints each line
    /// before the client can see the event's outcome, but our reader thread may lag.
    func lines(_ prefix: String) async -> [String] {
        _ = await eventually { !linesNow(prefix).isEmpty }
        return linesNow(prefix)
    }

    func stop() async throws {
        let process = self.process
        _ = try await onThreadOfItsOwn { process.stop() }
    }
}
