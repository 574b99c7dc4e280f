import Synchronization
public import TetherWire

/// `grpc.health.v1.Health`: Check and Watch, as the public health-checking
/// protocol defines them. "" is the server as a whole. Thread-safe.
public final class GRPCHealthService: Sendable {
    public typealias Status = HealthV1.HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = ["": .serving]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
        var shutDown = false
    }
    private let state = Mutex(State())

    public init() {}

    /// Sets a service's status and tells its watchers.
    public func setStatus(_ status: Status, for service: String) {
        let watchers = state.withLock { state -> [AsyncStream<Status>.Continuation] in
            guard !state.shutDown, state.statuses[service] != status else { return [] }
            state.statuses[service] = status
            return state.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for watcher in watchers { watcher.yield(status) }
    }

    /// The current status of `service`, nil if unknown.
    public func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Every service NOT_SERVING from now on (the server is stopping).
    func shutDown() {
        let watchers = state.withLock { state -> [(String, AsyncStream<Status>.Continuation)] in
            for key in state.statuses.keys { state.statuses[key] = .notServing }
            state.shutDown = true
            return state.watchers.values.map { ($0.service, $0.continuation) }
        }
        for (_, watcher) in watchers {
            watcher.yield(.notServing)
            watcher.finish()
        }
    }

    func register(in router: inout GRPCRouter) {
        router.unary(HealthV1.Health.check) { [self] (request: HealthV1.HealthCheckRequest, _) in
            guard let status = status(of: request.service) else {
                throw GRPCStatus(code: .notFound, message: "unknown service '\(request.service)'")
            }
            var response = HealthV1.HealthCheckResponse()
            response.status = status
            return response
        }
        router.serverStreaming(HealthV1.Health.watch) { [self] (request: HealthV1.HealthCheckRequest, writer: GRPCResponseWriter<HealthV1.HealthCheckResponse>, _) in
            let (updates, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(1))
            let (id, current) = state.withLock { state in
                state.nextWatcher += 1
                state.watchers[state.nextWatcher] = (request.service, continuation)
                return (state.nextWatcher, state.statuses[request.service] ?? .serviceUnknown)
            }
            defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
            var response = HealthV1.HealthCheckResponse()
            response.status = current
            try await writer.write(response)
            for await status in updates {
                try Task.checkCancellation()
                response.status = status
                try await writer.write(response)
            }
        }
    }
}
