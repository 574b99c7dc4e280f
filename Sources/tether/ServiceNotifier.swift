import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd how a `Type=notify` service is doing, as sd_notify(3) does, without
/// libsystemd: one datagram per message to the unix socket in `NOTIFY_SOCKET` (a path, or
/// `@name` for the abstract namespace). Without `NOTIFY_SOCKET` every call does nothing, so
/// the daemons call it unconditionally.
///
/// With `WATCHDOG_USEC` set (and `WATCHDOG_PID`, if set, naming this process),
/// `startWatchdog()` sends `WATCHDOG=1` every half of it, as sd_watchdog_enabled(3)
/// advises, until the process exits. Thread-safe: each message opens its own socket.
struct ServiceNotifier: Sendable {
    /// The socket's address as `NOTIFY_SOCKET` gives it; nil: not run by systemd.
    let socketPath: String?
    /// Half of `WATCHDOG_USEC`: how often `WATCHDOG=1` goes out; nil: no watchdog asked for.
    let watchdogInterval: Duration?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"] ?? ""
        socketPath = path.hasPrefix("/") || path.hasPrefix("@") ? path : nil
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 {
            watchdogInterval = .microseconds(microseconds / 2)
        } else {
            watchdogInterval = nil
        }
    }

    /// Serving: `READY=1`.
    func ready() { notify("READY=1") }

    /// Shutting down: `STOPPING=1`.
    func stopping() { notify("STOPPING=1") }

    /// Sends `WATCHDOG=1` every `watchdogInterval` from a task of its own, for as long as the
    /// process lives (through the shutdown too). Does nothing without a watchdog.
    func startWatchdog() {
        guard let interval = watchdogInterval, socketPath != nil else { return }
        Task.detached {
            while true {
                notify("WATCHDOG=1")
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments) as one datagram; returns
    /// whether it went. A failure is not an error for the daemon: systemd then acts on its
    /// own timeouts.
    @discardableResult
    func notify(_ state: String) -> Bool {
        guard let socketPath else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }   // the abstract namespace: a leading NUL, no trailing one
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + path.count + (path[0] == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), pointer, length) }
            }
        }
        return sent == bytes.count
    }
}
