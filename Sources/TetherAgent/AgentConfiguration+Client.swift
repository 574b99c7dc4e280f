public import GRPC
public import H2
import Foundation

extension AgentConfiguration {
    /// A client for this agent's server: TLS checked against `caFile` (or h2c when the
    /// server is http://), the server's host:port as authority, HTTPS_PROXY/NO_PROXY from
    /// this process's environment, and no busy polling: an agent shares its machine with the
    /// tasks it runs, and polling took CPU from them (BENCHMARKS.md, "Busy polling").
    ///
    /// - Parameter eventLoop: the loop to run on (shared by the agents of a swarm); nil
    ///   starts one for this client.
    /// - Throws: `SocketAddressError` if the server's or the proxy's name does not resolve
    ///   (a blocking lookup); TLS errors reading `caFile`; `SystemError` starting a loop.
    public func makeClient(eventLoop: EventLoop? = nil) throws -> GRPCClient {
        let port = server.port
        let target = try SocketAddress.resolve(host: server.host, port: port)
        var client = GRPCClient.Configuration(
            target: target, tls: server.usesTLS ? try TLSContext(.client(caFile: caFile, serverName: server.host)) : nil)
        client.authority = "\(server.host):\(port)"
        client.busyPoll = .zero
        client.proxy = try ProxySettings.fromEnvironment(ProcessInfo.processInfo.environment, target: client.authority!,
                                                         tls: server.usesTLS)
        return try GRPCClient(configuration: client, eventLoop: eventLoop)
    }
}
