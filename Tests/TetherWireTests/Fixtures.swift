@testable import TetherWire

/// Populated instances of every message, per package, shared by the codec tests.
enum Fixtures {
    static var all: [any WireMessage] { healthV1 + reflectionV1 + reflectionV1alpha + agentV1 + controlV1 + echoV1 }
}
