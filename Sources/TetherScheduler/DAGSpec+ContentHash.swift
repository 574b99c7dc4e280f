/// Content hashes of DAG specs: what makes two applies "the same version".
///
/// The hash covers the spec's meaning, not its spelling: it is computed on the resolved
/// spec (defaults applied), tasks are taken in id order, each task's `depends_on` sorted,
/// and params maps in key order. So reordering tasks, dependencies or keys in a file, or
/// writing a default out explicitly, keeps the hash; changing any field changes it.
///
/// Canonical encoding (version 1), all integers big-endian:
/// - the bytes `tether.dagspec.v1` then a 0 byte;
/// - a string is its UTF-8 byte count (UInt64) then the bytes;
/// - an integer is an Int64; a bool one byte 0 or 1; an optional a presence byte then
///   the value;
/// - a list is its count (UInt64) then the items; a map is its count then key, value
///   pairs in ascending UTF-8 byte order of the keys;
/// - DAG fields in this order: dag_id, description, schedule, paused, max_active_runs,
///   max_active_tasks, params, tasks; task fields: id, entrypoint, queue, depends_on,
///   trigger_rule (its snake_case name), retries, retry_delay, retry_exponential_backoff,
///   max_retry_delay, execution_timeout (optional), priority, params.
///
/// Fields added since version 1 follow, each as its snake_case name then its value, and
/// only when it is not at its default, so the hash of a spec that does not use them stays
/// what it was: `catchup` (a bool, when true), `run_timeout` (an integer, when set); then,
/// for each task in id order that sets them, `tasks.<id>.pool` (a string, when not empty),
/// `tasks.<id>.pool_slots` (an integer, when not 1) and `tasks.<id>.queue_timeout` (an
/// integer, when set); then `on_success`, `on_failure`, `on_deadline_miss` (strings, when
/// not empty), `deadline` (its file text, `2h` or `06:00`, when set) and `callback_queue`
/// (a string, when not `default`); then for each task in id order `tasks.<id>.on_success`,
/// `tasks.<id>.on_failure` and `tasks.<id>.on_retry` (strings, when not empty).
///
/// Every variable-length item is length-prefixed, so no two different specs encode to the
/// same bytes. Changing this encoding changes every stored hash: bump the version prefix.
extension DAGSpec {
    /// Hex SHA-256 of `canonicalEncoding`: 64 lowercase hex characters.
    public var contentHash: String {
        SHA256.hexDigest(of: canonicalEncoding)
    }

    /// The bytes `contentHash` hashes; see the extension's doc comment for the layout.
    public var canonicalEncoding: [UInt8] {
        var encoder = CanonicalEncoder()
        encoder.bytes += Array("tether.dagspec.v1".utf8) + [0]
        encoder.string(dagID)
        encoder.string(description)
        encoder.string(schedule)
        encoder.bool(paused)
        encoder.integer(maxActiveRuns)
        encoder.integer(maxActiveTasks)
        encoder.map(params)
        let sortedTasks = tasks.sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
        encoder.count(sortedTasks.count)
        for task in sortedTasks {
            encoder.string(task.id)
            encoder.string(task.entrypoint)
            encoder.string(task.queue)
            encoder.list(task.dependsOn.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            encoder.string(task.triggerRule.rawValue)
            encoder.integer(task.retry.retries)
            encoder.integer(task.retry.delayMilliseconds)
            encoder.bool(task.retry.exponentialBackoff)
            encoder.integer(task.retry.maxDelayMilliseconds)
            encoder.bool(task.executionTimeoutMilliseconds != nil)
            if let timeout = task.executionTimeoutMilliseconds { encoder.integer(timeout) }
            encoder.integer(task.priority)
            encoder.map(task.params)
        }
        if catchup {
            encoder.string("catchup")
            encoder.bool(true)
        }
        if let timeout = runTimeoutMilliseconds {
            encoder.string("run_timeout")
            encoder.integer(timeout)
        }
        for task in sortedTasks {
            if !task.pool.isEmpty {
                encoder.string("tasks.\(task.id).pool")
                encoder.string(task.pool)
            }
            if task.poolSlots != 1 {
                encoder.string("tasks.\(task.id).pool_slots")
                encoder.integer(task.poolSlots)
            }
            if let timeout = task.queueTimeoutMilliseconds {
                encoder.string("tasks.\(task.id).queue_timeout")
                encoder.integer(timeout)
            }
        }
        for (name, value) in [("on_success", onSuccess), ("on_failure", onFailure), ("on_deadline_miss", onDeadlineMiss)]
        where !value.isEmpty {
            encoder.string(name)
            encoder.string(value)
        }
        if let deadline {
            encoder.string("deadline")
            encoder.string(deadline.text)
        }
        if callbackQueue != TaskSpec.defaultQueue {
            encoder.string("callback_queue")
            encoder.string(callbackQueue)
        }
        for task in sortedTasks {
            for (name, value) in [("on_success", task.onSuccess), ("on_failure", task.onFailure), ("on_retry", task.onRetry)]
            where !value.isEmpty {
                encoder.string("tasks.\(task.id).\(name)")
                encoder.string(value)
            }
        }
        return encoder.bytes
    }
}

/// Appends canonical encodings of values to `bytes`.
private struct CanonicalEncoder {
    var bytes: [UInt8] = []

    mutating func count(_ value: Int) {
        let value = UInt64(value)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func integer(_ value: some BinaryInteger) {
        let value = Int64(value)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> Int64(shift))) }
    }

    mutating func bool(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    mutating func string(_ value: String) {
        count(value.utf8.count)
        bytes += value.utf8
    }

    mutating func list(_ values: [String]) {
        count(values.count)
        for value in values { string(value) }
    }

    mutating func map(_ values: [String: String]) {
        count(values.count)
        for key in values.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            string(key)
            string(values[key]!)
        }
    }
}
