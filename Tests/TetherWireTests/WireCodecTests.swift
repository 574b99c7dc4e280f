import Testing
import TetherTestSupport
@testable import TetherWire

/// Properties every message codec must have, checked over every fixture and type.
@Suite struct WireCodecTests {
    static let fixtures = Fixtures.all
    static let types = WireRegistry.messageTypes

    @Test func everyFixtureRoundTripsToAnEqualValueAndIdenticalBytes() throws {
        for fixture in Self.fixtures {
            try expectRoundTrip(fixture)
        }
    }

    @Test func bytesAfterAPrefixAreTheEncodingAfterThatManyZeros() throws {
        for fixture in Self.fixtures {
            let plain = try fixture.serializedBytes()
            #expect(try fixture.serializedBytes(afterPrefix: 5) == [0, 0, 0, 0, 0] + plain)
            #expect(try fixture.serializedBytes(afterPrefix: 0) == plain)
        }
    }

    @Test func everyMessageTypeHasAPopulatedFixture() {
        let covered = Set(Self.fixtures.map { type(of: $0).protoName })
        for type in Self.types {
            #expect(covered.contains(type.protoName), "no fixture for \(type.protoName)")
        }
    }

    @Test func emptyMessagesEncodeToNoBytesAndDecodeFromNone() throws {
        for type in Self.types {
            try expectEmptyRoundTrip(type)
        }
    }

    @Test func cutsInsideAFieldAreRejectedAndCutsBetweenFieldsDecode() throws {
        for fixture in Self.fixtures {
            let bytes = try fixture.serializedBytes()
            let boundaries = try #require(topLevelFieldBoundaries(bytes))
            let messageType = type(of: fixture)
            for cut in 0..<bytes.count {
                let result = decodeResult(messageType, Array(bytes[..<cut]))
                if boundaries.contains(cut) {
                    #expect(result == nil, "\(type(of: fixture).protoName) cut at \(cut)/\(bytes.count) between fields should decode")
                } else {
                    #expect(result == .malformed(message: type(of: fixture).protoName),
                            "\(type(of: fixture).protoName) cut at \(cut)/\(bytes.count) inside a field should be malformed")
                }
            }
        }
    }

    @Test func aLengthPrefixAnnouncingGigabytesIsRejected() {
        // Field 1 and unknown field 1000, wire type 2, length 4 GiB, then 3 bytes.
        let fourGiB: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x10]
        for type in Self.types {
            for tag in [[0x0A], [0xC2, 0x3E]] as [[UInt8]] {
                let bomb = tag + fourGiB + [1, 2, 3]
                #expect(decodeResult(type, bomb) == .malformed(message: type.protoName))
            }
        }
    }

    @Test func bytesWithAnInvalidWireTypeAreRejected() {
        var rng = SplitMix64(seed: 7)
        for type in Self.types {
            for _ in 0..<200 {
                let tail = (0..<Int.random(in: 0..<32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                // Field 1 with wire type 7, which protobuf does not define.
                #expect(decodeResult(type, [0x0F] + tail) == .malformed(message: type.protoName))
            }
        }
    }

    @Test func randomBytesEitherThrowOrDecodeToAStableValue() throws {
        var rng = SplitMix64(seed: 42)
        for type in Self.types {
            for _ in 0..<500 {
                let bytes = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                try expectThrowsOrStable(type, bytes)
            }
        }
    }

    @Test func inputOverTheSizeLimitIsRefusedBeforeParsing() {
        let bytes = [UInt8](repeating: 0, count: 11)
        #expect(throws: WireError.tooLarge(message: "tether.agent.v1.Drain", size: 11, limit: 10)) {
            try AgentV1.Drain(serializedBytes: bytes, maxBytes: 10)
        }
    }

    @Test func decodeAllocationIsBoundedForTinyRepeatedElements() throws {
        // 200,000 empty `rejections` entries: 2 bytes of input each, ~56 bytes decoded.
        let bomb: [UInt8] = (0..<400_000).map { $0 % 2 == 0 ? 0x12 : 0x00 }
        #expect {
            try AgentV1.Ack(serializedBytes: bomb)
        } throws: { error in
            if case WireError.tooLarge = error { return true }
            return false
        }
        // The same shape at a realistic size decodes.
        let small = Array(bomb.prefix(2_000))
        #expect(try AgentV1.Ack(serializedBytes: small).rejections.count == 1_000)
    }

    @Test func invalidUTF8InAStringIsRejected() {
        // Drain.reason = 0xFF 0xFE
        #expect(throws: WireError.invalidUTF8(message: "Drain", field: "reason")) {
            try AgentV1.Drain(serializedBytes: [0x0A, 0x02, 0xFF, 0xFE])
        }
    }

    @Test func aStringWithNULCannotBeEncoded() {
        var drain = AgentV1.Drain()
        drain.reason = "a\u{0}b"
        #expect(throws: WireError.embeddedNUL(message: "Drain", field: "reason")) {
            try drain.serializedBytes()
        }
    }

    @Test func unknownEnumNumbersDecodeAsUnspecified() throws {
        // Goodbye.reason = 99, a value this build does not know.
        #expect(try AgentV1.Goodbye(serializedBytes: [0x08, 99]).reason == .unspecified)
    }

    @Test func unknownFieldsAreSkipped() throws {
        // Drain.reason = "x", then unknown varint field 99 = 5.
        #expect(try AgentV1.Drain(serializedBytes: [0x0A, 0x01, 0x78, 0x98, 0x06, 0x05]).reason == "x")
    }
}

// MARK: - Helpers (generic so they can open `any WireMessage`)

func expectRoundTrip<M: WireMessage>(_ message: M, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = try message.serializedBytes()
    let decoded = try M(serializedBytes: bytes)
    #expect(decoded == message, "\(M.protoName) changed in a round trip", sourceLocation: sourceLocation)
    #expect(try decoded.serializedBytes() == bytes, "\(M.protoName) re-encoded differently", sourceLocation: sourceLocation)
}

func expectEmptyRoundTrip<M: WireMessage>(_ type: M.Type) throws {
    #expect(try M().serializedBytes() == [], "\(M.protoName)")
    #expect(try M(serializedBytes: []) == M(), "\(M.protoName)")
}

/// The WireError decoding `bytes` as `type` throws, or nil if it decodes.
func decodeResult<M: WireMessage>(_ type: M.Type, _ bytes: [UInt8]) -> WireError? {
    do {
        _ = try M(serializedBytes: bytes)
        return nil
    } catch {
        return error
    }
}

func expectThrowsOrStable<M: WireMessage>(_ type: M.Type, _ bytes: [UInt8]) throws {
    guard let value = try? M(serializedBytes: bytes) else { return }
    try expectRoundTrip(value)
}

/// Offsets at which a top-level field ends (plus 0), from a minimal walk of the
/// wire format; nil if the bytes are not well formed.
func topLevelFieldBoundaries(_ bytes: [UInt8]) -> Set<Int>? {
    var boundaries: Set<Int> = [0]
    var i = 0
    func varint() -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard i < bytes.count else { return nil }
            let byte = bytes[i]
            i += 1
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }
    while i < bytes.count {
        guard let tag = varint() else { return nil }
        switch tag & 7 {
        case 0: guard varint() != nil else { return nil }
        case 1: i += 8
        case 2:
            guard let length = varint() else { return nil }
            i += Int(length)
        case 5: i += 4
        default: return nil
        }
        guard i <= bytes.count else { return nil }
        boundaries.insert(i)
    }
    return boundaries
}


@Suite struct WireStringTests {
    @Test func aDecodedStringWithNULIsRejectedNotTruncated() {
        // Drain.reason = "a\0b": valid protobuf that protobuf-c would cut to "a".
        #expect(throws: WireError.embeddedNUL(message: "Drain", field: "reason")) {
            try AgentV1.Drain(serializedBytes: [0x0A, 0x03, 0x61, 0x00, 0x62])
        }
    }

    @Test func aNULInsideANestedMessageOrMapIsFound() {
        // LeaseGrant.task (3) = TaskRef { task_id (4) = "\0" }
        #expect(throws: WireError.embeddedNUL(message: "TaskRef", field: "task_id")) {
            try AgentV1.LeaseGrant(serializedBytes: [0x1A, 0x03, 0x22, 0x01, 0x00])
        }
        // LeaseGrant.params (5) = { "k": "\0" }
        #expect(throws: WireError.embeddedNUL(message: "ParamsEntry", field: "value")) {
            try AgentV1.LeaseGrant(serializedBytes: [0x2A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x00])
        }
    }

    @Test func bytesZeroInNonStringFieldsAreFine() throws {
        // Heartbeat.free_slots = 0 (explicit), sent_at_unix_us = 0x100
        let beat = try AgentV1.Heartbeat(serializedBytes: [0x08, 0x00, 0x20, 0x80, 0x02])
        #expect(beat.freeSlots == 0 && beat.sentAtUnixUs == 256)
    }
}
