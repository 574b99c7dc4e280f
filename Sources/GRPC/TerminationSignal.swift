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
