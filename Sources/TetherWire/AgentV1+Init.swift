// Shorthands for building agent-stream messages; the types are generated from agent.proto.

extension AgentV1.AgentMessage {
    public init(_ kind: Kind) { self.kind = kind }
}

extension AgentV1.ServerMessage {
    public init(_ kind: Kind) { self.kind = kind }
}

extension AgentV1.ResumedLease {
    public init(leaseID: String, epoch: UInt64) {
        self.leaseID = leaseID
        self.epoch = epoch
    }
}

extension AgentV1.ExitStatus {
    public init(_ status: Status) { self.status = status }
}

extension AgentV1.HeartbeatAck {
    public init(heartbeatID: UInt64) { self.heartbeatID = heartbeatID }
}
