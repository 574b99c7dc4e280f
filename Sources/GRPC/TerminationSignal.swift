import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Suspends until the process receives SIGTERM or SIGINT: how a server process
/// waits before shutting down gracefully. SIGPIPE is ignored from then on
/// (peers that vanish surface as write errors instead).
public func waitForTerminationSignal() async {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    signal(SIGPIPE, SIG_IGN)
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        let queue = DispatchQueue(label: "signals")
        let sources = [SIGTERM, SIGINT].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
        nonisolated(unsafe) var resumed = false
        for source in sources {
            source.setEventHandler {
                guard !resumed else { return }
                resumed = true
                for s in sources { s.cancel() }
                done.resume()
            }
            source.resume()
        }
    }
}

/// SIGTERM and SIGINT (and `also`, e.g. SIGHUP) as they arrive, for processes that react
/// to a second signal differently from the first (an agent drains on the first, stops on
/// the second). Their default actions, and SIGPIPE's, are off from then on.
public func terminationSignals(also extra: [Int32] = []) -> AsyncStream<Int32> {
    let numbers = [SIGTERM, SIGINT] + extra
    for number in numbers + [SIGPIPE] { signal(number, SIG_IGN) }
    let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
    let queue = DispatchQueue(label: "signals")
    // Kept alive by the termination handler, which cancels them when the stream ends.
    nonisolated(unsafe) let sources = numbers.map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
    for (source, number) in zip(sources, numbers) {
        source.setEventHandler { continuation.yield(number) }
        source.resume()
    }
    continuation.onTermination = { _ in for source in sources { source.cancel() } }
    return stream
}
