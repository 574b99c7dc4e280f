import Foundation
import Prometheus

/// The standard `process_*` metrics of Prometheus's client libraries, for this process,
/// read from `/proc/self` at each scrape (swift-prometheus has none of its own):
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`. Linux only; a value that cannot be read is left as it was.
struct ProcessMetrics {
    private let cpuSeconds: Prometheus.Counter
    private let residentBytes: Prometheus.Gauge
    private let virtualBytes: Prometheus.Gauge
    private let openFDs: Prometheus.Gauge
    private let maxFDs: Prometheus.Gauge
    private let startTime: Prometheus.Gauge
    /// CPU seconds already added to `cpuSeconds`.
    private var countedCPUSeconds = 0.0

    init(_ registry: PrometheusCollectorRegistry) {
        func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }
        cpuSeconds = registry.makeCounter(descriptor: descriptor("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
        residentBytes = registry.makeGauge(descriptor: descriptor("process_resident_memory_bytes", "Resident memory size in bytes."))
        virtualBytes = registry.makeGauge(descriptor: descriptor("process_virtual_memory_bytes", "Virtual memory size in bytes."))
        openFDs = registry.makeGauge(descriptor: descriptor("process_open_fds", "Number of open file descriptors."))
        maxFDs = registry.makeGauge(descriptor: descriptor("process_max_fds", "Maximum number of open file descriptors."))
        startTime = registry.makeGauge(descriptor: descriptor(
            "process_start_time_seconds", "Start time of the process since unix epoch in seconds."))
        if let stat = Self.selfStat(), let bootTime = Self.bootTime() {
            startTime.set(to: bootTime + stat.startTicks / Double(sysconf(Int32(_SC_CLK_TCK))))
        }
    }

    mutating func update() {
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let stat = Self.selfStat() {
            let cpu = (stat.userTicks + stat.systemTicks) / ticksPerSecond
            if cpu > countedCPUSeconds {
                cpuSeconds.increment(by: cpu - countedCPUSeconds)
                countedCPUSeconds = cpu
            }
            virtualBytes.set(to: stat.virtualBytes)
            residentBytes.set(to: stat.residentPages * pageSize)
        }
        if let count = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count {
            openFDs.set(to: Double(count))
        }
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(to: Double(limit.rlim_cur)) }
    }

    /// Fields of `/proc/self/stat` (proc(5)), counted after the parenthesised command name,
    /// which may itself hold spaces and parentheses.
    private static func selfStat() -> (userTicks: Double, systemTicks: Double, startTicks: Double, virtualBytes: Double,
                                       residentPages: Double)? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Field 3 (state) is the first after ")"; utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = text[text.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double? { fields.count > number - 3 ? Double(fields[number - 3]) : nil }
        guard let user = field(14), let system = field(15), let start = field(22), let vsize = field(23), let rss = field(24) else {
            return nil
        }
        return (user, system, start, vsize, rss)
    }

    /// `btime` of `/proc/stat`: when the system booted, in seconds since the epoch.
    private static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") { return Double(line.dropFirst(6)) }
        return nil
    }
}
