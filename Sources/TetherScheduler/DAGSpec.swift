import TetherSyntax
/// A DAG as applied: every default resolved, every field explicit. Mirrors
/// `tether.control.v1.DagSpec`. Built by `TetherDAGFile` from YAML and checked by
/// `DAGSpec.validate()`; the scheduler only ever sees valid specs.
public struct DAGSpec: Hashable, Sendable, Codable {
    /// 1-128 characters of [A-Za-z0-9._-].
    public var dagID: String
    public var description: String
    /// 5-field cron or @hourly/@daily/@weekly/@monthly, UTC; empty for manual runs only.
    public var schedule: String
    /// Whether the DAG starts paused when first applied.
    public var paused: Bool
    /// Whether schedule instants missed (server down, DAG paused, max_active_runs full)
    /// each get their run, oldest first; off: only the latest missed instant runs.
    public var catchup: Bool
    /// A run still unfinished this long after it started fails, its unfinished tasks
    /// cancelled; nil for no limit.
    public var runTimeoutMilliseconds: Int64?
    /// Most runs in queued or running state at once (>= 1).
    public var maxActiveRuns: Int
    /// Most task instances of this DAG leased at once across its runs; 0 means no limit.
    public var maxActiveTasks: Int
    /// DAG-level parameters with their defaults.
    public var params: [String: String]
    /// The tasks, in file order.
    public var tasks: [TaskSpec]
    /// Run callbacks: entrypoints run (as callback task instances, on `callbackQueue`) once
    /// a run has succeeded or failed; empty for none.
    public var onSuccess: String
    public var onFailure: String
    /// The entrypoint run once when a run misses its `deadline`; empty for none.
    public var onDeadlineMiss: String
    /// When a run should have finished; nil for no deadline.
    public var deadline: RunDeadline?
    /// The queue the DAG-level callbacks run on (`defaults.queue` in a file).
    public var callbackQueue: String

    public init(
        dagID: String, description: String = "", schedule: String = "", paused: Bool = false, catchup: Bool = false,
        runTimeoutMilliseconds: Int64? = nil, maxActiveRuns: Int = DAGSpec.defaultMaxActiveRuns, maxActiveTasks: Int = 0,
        params: [String: String] = [:], tasks: [TaskSpec], onSuccess: String = "", onFailure: String = "",
        onDeadlineMiss: String = "", deadline: RunDeadline? = nil, callbackQueue: String = TaskSpec.defaultQueue
    ) {
        self.dagID = dagID
        self.description = description
        self.schedule = schedule
        self.paused = paused
        self.catchup = catchup
        self.runTimeoutMilliseconds = runTimeoutMilliseconds
        self.maxActiveRuns = maxActiveRuns
        self.maxActiveTasks = maxActiveTasks
        self.params = params
        self.tasks = tasks
        self.onSuccess = onSuccess
        self.onFailure = onFailure
        self.onDeadlineMiss = onDeadlineMiss
        self.deadline = deadline
        self.callbackQueue = callbackQueue
    }

    public static let defaultMaxActiveRuns = 16

    private enum CodingKeys: String, CodingKey {
        case dagID, description, schedule, paused, catchup, runTimeoutMilliseconds, maxActiveRuns, maxActiveTasks, params, tasks
        case onSuccess, onFailure, onDeadlineMiss, deadline, callbackQueue
    }

    /// Reads specs stored before a field existed with that field at its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(dagID: try c.decode(String.self, forKey: .dagID), description: try c.decode(String.self, forKey: .description),
                  schedule: try c.decode(String.self, forKey: .schedule), paused: try c.decode(Bool.self, forKey: .paused),
                  catchup: try c.decodeIfPresent(Bool.self, forKey: .catchup) ?? false,
                  runTimeoutMilliseconds: try c.decodeIfPresent(Int64.self, forKey: .runTimeoutMilliseconds),
                  maxActiveRuns: try c.decode(Int.self, forKey: .maxActiveRuns),
                  maxActiveTasks: try c.decode(Int.self, forKey: .maxActiveTasks),
                  params: try c.decode([String: String].self, forKey: .params), tasks: try c.decode([TaskSpec].self, forKey: .tasks),
                  onSuccess: try c.decodeIfPresent(String.self, forKey: .onSuccess) ?? "",
                  onFailure: try c.decodeIfPresent(String.self, forKey: .onFailure) ?? "",
                  onDeadlineMiss: try c.decodeIfPresent(String.self, forKey: .onDeadlineMiss) ?? "",
                  deadline: try c.decodeIfPresent(RunDeadline.self, forKey: .deadline),
                  callbackQueue: try c.decodeIfPresent(String.self, forKey: .callbackQueue) ?? TaskSpec.defaultQueue)
    }
}

/// When a run should have finished (`deadline:` in a DAG file). A run unfinished by then
/// is marked as having missed it, once, and its DAG's `on_deadline_miss` callback runs.
public enum RunDeadline: Hashable, Sendable, Codable {
    /// This long after the run was created (queued).
    case afterCreation(milliseconds: Int64)
    /// The first instant at or after the end of the run's data interval whose UTC time of
    /// day is this many minutes past midnight (0..<1440).
    case timeOfDay(minutes: Int)

    /// The deadline of a run created at `createdAt` whose data interval ends at `intervalEnd`.
    public func instant(createdAt: Instant, intervalEnd: Instant) -> Instant {
        switch self {
        case .afterCreation(let milliseconds):
            return createdAt.adding(milliseconds: milliseconds)
        case .timeOfDay(let minutes):
            let day: Int64 = 86_400_000
            let end = intervalEnd.millisecondsSinceEpoch
            let midnight = end - ((end % day) + day) % day
            var at = midnight + Int64(minutes) * 60_000
            if at < end { at += day }
            return Instant(millisecondsSinceEpoch: at)
        }
    }

    /// `2h`-style durations or `HH:MM`, as written in a DAG file.
    public var text: String {
        switch self {
        case .afterCreation(let milliseconds): return DurationText.format(milliseconds: milliseconds)
        case .timeOfDay(let minutes):
            let hours = minutes / 60, rest = minutes % 60
            return (hours < 10 ? "0" : "") + "\(hours):" + (rest < 10 ? "0" : "") + "\(rest)"
        }
    }
}

/// One task of a DAG spec, defaults applied. Mirrors `tether.control.v1.TaskSpec`.
public struct TaskSpec: Hashable, Sendable, Codable {
    /// Unique within the DAG; 1-128 characters of [A-Za-z0-9._-].
    public var id: String
    /// The entrypoint NAME an agent resolves from its own config; never a command line.
    public var entrypoint: String
    /// The queue whose agents may run it.
    public var queue: String
    /// Ids of tasks that must finish first.
    public var dependsOn: [String]
    public var triggerRule: TriggerRule
    public var retry: RetryPolicy
    /// An attempt running longer than this fails as timed out; nil means no limit.
    public var executionTimeoutMilliseconds: Int64?
    /// Higher is granted first among ready tasks of a queue.
    public var priority: Int
    /// Task parameters: override the DAG's, overridden by the run's.
    public var params: [String: String]
    /// The pool whose slots a running attempt takes (a concurrency limit shared across
    /// DAGs, sized in the server); empty for none.
    public var pool: String
    /// Slots of `pool` one attempt takes (1 or more).
    public var poolSlots: Int
    /// A task queued (ready, waiting for an agent or its pool) this long fails without
    /// running; nil for no limit.
    public var queueTimeoutMilliseconds: Int64?
    /// Task callbacks: entrypoints run (as callback task instances, on the task's queue)
    /// when the task succeeds, fails (no retries left) or fails an attempt it will retry.
    /// Empty for none.
    public var onSuccess: String
    public var onFailure: String
    public var onRetry: String

    public init(
        id: String, entrypoint: String, queue: String = TaskSpec.defaultQueue, dependsOn: [String] = [],
        triggerRule: TriggerRule = .allSuccess, retry: RetryPolicy = RetryPolicy(),
        executionTimeoutMilliseconds: Int64? = nil, priority: Int = 0, params: [String: String] = [:],
        pool: String = "", poolSlots: Int = 1, queueTimeoutMilliseconds: Int64? = nil,
        onSuccess: String = "", onFailure: String = "", onRetry: String = ""
    ) {
        self.id = id
        self.entrypoint = entrypoint
        self.queue = queue
        self.dependsOn = dependsOn
        self.triggerRule = triggerRule
        self.retry = retry
        self.executionTimeoutMilliseconds = executionTimeoutMilliseconds
        self.priority = priority
        self.params = params
        self.pool = pool
        self.poolSlots = poolSlots
        self.queueTimeoutMilliseconds = queueTimeoutMilliseconds
        self.onSuccess = onSuccess
        self.onFailure = onFailure
        self.onRetry = onRetry
    }

    public static let defaultQueue = "default"

    /// What an attempt of the task takes of its pool; nil without one.
    public var poolClaim: PoolClaim? { pool.isEmpty ? nil : PoolClaim(name: pool, slots: poolSlots) }

    private enum CodingKeys: String, CodingKey {
        case id, entrypoint, queue, dependsOn, triggerRule, retry, executionTimeoutMilliseconds, priority, params, pool, poolSlots
        case queueTimeoutMilliseconds, onSuccess, onFailure, onRetry
    }

    /// Reads specs stored before a field existed with that field at its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), entrypoint: try c.decode(String.self, forKey: .entrypoint),
                  queue: try c.decode(String.self, forKey: .queue), dependsOn: try c.decode([String].self, forKey: .dependsOn),
                  triggerRule: try c.decode(TriggerRule.self, forKey: .triggerRule), retry: try c.decode(RetryPolicy.self, forKey: .retry),
                  executionTimeoutMilliseconds: try c.decodeIfPresent(Int64.self, forKey: .executionTimeoutMilliseconds),
                  priority: try c.decode(Int.self, forKey: .priority), params: try c.decode([String: String].self, forKey: .params),
                  pool: try c.decodeIfPresent(String.self, forKey: .pool) ?? "",
                  poolSlots: try c.decodeIfPresent(Int.self, forKey: .poolSlots) ?? 1,
                  queueTimeoutMilliseconds: try c.decodeIfPresent(Int64.self, forKey: .queueTimeoutMilliseconds),
                  onSuccess: try c.decodeIfPresent(String.self, forKey: .onSuccess) ?? "",
                  onFailure: try c.decodeIfPresent(String.self, forKey: .onFailure) ?? "",
                  onRetry: try c.decodeIfPresent(String.self, forKey: .onRetry) ?? "")
    }
}

/// When a task may run, given the final states of its upstream tasks: Airflow 3's set and
/// names (without `all_done_setup_success`: Tether has no setup tasks).
public enum TriggerRule: String, Hashable, Sendable, CaseIterable, Codable {
    case allSuccess = "all_success"
    case allDone = "all_done"
    case allFailed = "all_failed"
    case oneSuccess = "one_success"
    case oneFailed = "one_failed"
    case noneFailed = "none_failed"
    case allDoneMinOneSuccess = "all_done_min_one_success"
    case allSkipped = "all_skipped"
    case oneDone = "one_done"
    case noneFailedMinOneSuccess = "none_failed_min_one_success"
    case noneSkipped = "none_skipped"
    case always = "always"
}

/// How a failed attempt is retried: `retries` more attempts, the n-th (1-based) after
/// `delay * 2^(n-1)` when exponential, capped at `maxDelay`.
public struct RetryPolicy: Hashable, Sendable, Codable {
    public var retries: Int
    public var delayMilliseconds: Int64
    public var exponentialBackoff: Bool
    /// Upper bound of any retry delay.
    public var maxDelayMilliseconds: Int64

    public init(retries: Int = 0, delayMilliseconds: Int64 = 0, exponentialBackoff: Bool = false, maxDelayMilliseconds: Int64 = 86_400_000) {
        self.retries = retries
        self.delayMilliseconds = delayMilliseconds
        self.exponentialBackoff = exponentialBackoff
        self.maxDelayMilliseconds = maxDelayMilliseconds
    }

    /// The delay before retry number `retry` (1 for the first retry).
    public func delay(beforeRetry retry: Int) -> Int64 {
        guard exponentialBackoff, retry > 1 else { return min(delayMilliseconds, maxDelayMilliseconds) }
        var delay = delayMilliseconds
        for _ in 1..<retry {
            if delay >= maxDelayMilliseconds { break }
            delay = delay > Int64.max / 2 ? Int64.max : delay * 2
        }
        return min(delay, maxDelayMilliseconds)
    }
}
