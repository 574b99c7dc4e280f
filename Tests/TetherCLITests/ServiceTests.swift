import Foundation
import Testing
import TetherTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `tether server` and `tether agent` as services: sd_notify messages to a socket the test
/// made, and the log formats.
@Suite struct ServiceTests {
    static let env = URL(fileURLWithPath: "/usr/bin/env")

    /// A unix datagram socket bound to `path` (`@name`: the abstract namespace) that reads
    /// what a daemon sends to `NOTIFY_SOCKET`, each read waiting at most 10 s.
    final class NotifySocket {
        let fd: Int32
        let path: String

        init(_ path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            var bytes = Array(path.utf8)
            if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (bytes[0] == 0 ? 0 : 1))
            let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard rc == 0 else { throw ClusterError("bind \(path): errno \(errno)") }
        }

        deinit {
            close(fd)
            if path.hasPrefix("/") { unlink(path) }
        }

        /// The next datagram, or nil if none came within 10 s.
        func next() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
        }

        /// Datagrams until one that is not `WATCHDOG=1` (returned), counting the watchdog pings.
        func nextSkippingWatchdog(_ pings: inout Int) -> String? {
            while let message = next() {
                if message == "WATCHDOG=1" { pings += 1 } else { return message }
            }
            return nil
        }
    }

    static func dataDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tether-data-\(UUID().uuidString)").path
    }

    @Test func serverSendsReadyOnceServingWatchdogEveryHalfIntervalAndStoppingOnSIGTERM() async throws {
        try await onThreadOfItsOwn {
            let notify = try NotifySocket("@tether-notify-test-\(UUID().uuidString)")   // abstract namespace
            let server = try ChildProcess(Self.env, [
                "NOTIFY_SOCKET=\(notify.path)", "WATCHDOG_USEC=200000", Repository.tetherBinary.path,
                "server", "--listen", "127.0.0.1:0", "--data-dir", Self.dataDir(), "--insecure-plaintext",
            ], readyPrefix: "listening on")
            var pings = 0
            #expect(notify.nextSkippingWatchdog(&pings) == "READY=1")
            // Every 100 ms: three pings take about 300 ms.
            while pings < 3, let message = notify.next() {
                if message == "WATCHDOG=1" { pings += 1 } else { Issue.record("unexpected \(message)") }
            }
            #expect(pings >= 3)
            kill(server.process.processIdentifier, SIGTERM)
            #expect(notify.nextSkippingWatchdog(&pings) == "STOPPING=1")
            #expect(server.waitForExit(within: .seconds(10)) && server.process.terminationStatus == 0)
        }
    }

    @Test func agentSendsReadyAndStoppingToAFileSystemNotifySocket() async throws {
        try await onThreadOfItsOwn {
            let cluster = try Cluster()
            let notify = try NotifySocket(cluster.scratch.path("notify.sock"))
            let agent = try cluster.startAgent("eu-1", entrypoints: ["work": ["/bin/true"]],
                                               environment: ["NOTIFY_SOCKET": notify.path])
            var pings = 0
            #expect(notify.nextSkippingWatchdog(&pings) == "READY=1")
            kill(agent.process.processIdentifier, SIGTERM)
            #expect(notify.nextSkippingWatchdog(&pings) == "STOPPING=1")
            #expect(pings == 0, "no WATCHDOG_USEC, no pings")
            #expect(agent.waitForExit(within: .seconds(30)))
        }
    }

    @Test func logFormatJSONWritesOneObjectPerLineAndHumanFormatKeepsTimeNameMessage() async throws {
        try await onThreadOfItsOwn {
            for format in ["json", "human"] {
                let server = try ChildProcess(Repository.tetherBinary, [
                    "server", "--listen", "127.0.0.1:0", "--data-dir", Self.dataDir(), "--insecure-plaintext", "--log-format", format,
                ], readyPrefix: "listening on")
                #expect(server.stop() == 0)
                var lines: [Substring] = []
                let logged = (0..<500).contains { _ in   // the output drains on a thread of its own
                    lines = server.recentOutput.split(separator: "\n").filter { $0.contains("shutting down") }
                    if lines.isEmpty { usleep(10_000) }
                    return !lines.isEmpty
                }
                try #require(logged, "no 'shutting down' line in: \(server.recentOutput)")
                let line = String(lines[0])
                if format == "json" {
                    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    #expect(object?["message"] as? String == "shutting down", "\(line)")
                    #expect(object?["level"] as? String == "info" && object?["label"] as? String == "tether.server", "\(line)")
                    #expect((object?["time"] as? String)?.hasSuffix("Z") == true && object?["metadata"] is [String: Any], "\(line)")
                } else {
                    #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tether server: shutting down$"#,
                                        options: .regularExpression) != nil, "\(line)")
                }
            }
        }
    }
}
