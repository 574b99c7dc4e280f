/// Every message type this module maps, across all packages in Protos/.
public enum WireRegistry {
    public static let messageTypes: [any WireMessage.Type] =
        HealthV1.messageTypes + AgentV1.messageTypes + ControlV1.messageTypes + EchoV1.messageTypes
}
