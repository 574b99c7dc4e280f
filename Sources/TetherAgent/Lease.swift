/// A lease as the agent works on it: which attempt of which task to run, with which
/// entrypoint and params, for how long. Made from the server's `LeaseGrant` (AgentWire.swift).
public struct Lease: Sendable, Equatable {
    /// The lease id, unique per grant.
    public var id: String
    /// The fencing epoch; the agent's reports carry it.
    public var epoch: UInt64
    public var dagID: String
    public var dagVersion: UInt32
    public var runID: String
    public var taskID: String
    /// 1 for the first attempt.
    public var attempt: UInt32
    /// The name of the agent's own entrypoint to run.
    public var entrypoint: String
    public var params: [String: String]
    /// The task's execution timeout; 0 for none (the entrypoint may still set one).
    public var timeoutMilliseconds: UInt64
    /// The run's logical date and data interval (start inclusive, end exclusive), in
    /// microseconds since the Unix epoch.
    public var logicalDateUnixMicroseconds: Int64
    public var dataIntervalStartUnixMicroseconds: Int64
    public var dataIntervalEndUnixMicroseconds: Int64

    public init(id: String = "", epoch: UInt64 = 0, dagID: String = "", dagVersion: UInt32 = 0, runID: String = "",
                taskID: String = "", attempt: UInt32 = 0, entrypoint: String = "", params: [String: String] = [:],
                timeoutMilliseconds: UInt64 = 0, logicalDateUnixMicroseconds: Int64 = 0,
                dataIntervalStartUnixMicroseconds: Int64 = 0, dataIntervalEndUnixMicroseconds: Int64 = 0) {
        self.id = id
        self.epoch = epoch
        self.dagID = dagID
        self.dagVersion = dagVersion
        self.runID = runID
        self.taskID = taskID
        self.attempt = attempt
        self.entrypoint = entrypoint
        self.params = params
        self.timeoutMilliseconds = timeoutMilliseconds
        self.logicalDateUnixMicroseconds = logicalDateUnixMicroseconds
        self.dataIntervalStartUnixMicroseconds = dataIntervalStartUnixMicroseconds
        self.dataIntervalEndUnixMicroseconds = dataIntervalEndUnixMicroseconds
    }
}
