/// What tells a process apart from a later one that reuses its pid, read from Linux's
/// `/proc`: the boot's random id, and the process's start time in clock ticks since boot.
/// A pid plus its start time plus the boot id names one process for all time.
///
/// Pure reads of `/proc`; safe from any thread. Nil wherever `/proc` has no answer.
enum ProcessIdentity {
    /// `/proc/sys/kernel/random/boot_id`: a fresh UUID at every boot, so read once.
    static let bootID: String? = {
        guard let bytes = readSmallFile("/proc/sys/kernel/random/boot_id") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
        return text.isEmpty ? nil : text
    }()

    /// Field 22 (`starttime`) of `/proc/<pid>/stat`, or nil if there is no such process.
    static func startTicks(of pid: Int32) -> UInt64? {
        guard let bytes = readSmallFile("/proc/\(pid)/stat") else { return nil }
        // Field 2 is the command name in parentheses and may itself hold spaces and
        // parentheses, so fields are counted from the last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }
}
