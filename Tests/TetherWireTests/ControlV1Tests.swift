import Foundation
import Testing
import TetherTestSupport
@testable import TetherWire

/// The `tether.control.v1` mapping, checked against the fixtures and against the
/// `.proto` text itself, so a message or field added to the file and not mapped fails.
@Suite struct ControlV1Tests {
    private static let package = "tether.control.v1"

    @Test func everyFixtureRoundTripsToAnEqualValueAndIdenticalBytes() throws {
        for fixture in Fixtures.controlV1 {
            try Self.expectRoundTrip(fixture)
        }
    }

    @Test func messageTypesListsEveryMessageOfControlProtoOnce() throws {
        let declared = try Self.protoMessages().keys.map { "\(Self.package).\($0)" }
        let mapped = WireRegistry.messageTypes.map { $0.protoName }.filter { $0.hasPrefix(Self.package + ".") }
        #expect(declared.count == 65, "control.proto was not parsed as expected")
        #expect(Set(mapped) == Set(declared))
        #expect(mapped.count == Set(mapped).count, "a message type is listed twice")
    }

    /// A proto3 scalar at its default is not encoded, so a field number missing
    /// from a populated fixture's bytes is a field left unset or not mapped.
    @Test func populatedFixturesSetEveryFieldAndTogetherEveryOneofMember() throws {
        let proto = try Self.protoMessages()
        var seen: [String: Set<UInt32>] = [:]
        for fixture in Fixtures.Control.populated {
            let name = type(of: fixture).protoName
            let message = try #require(proto[String(name.dropFirst(Self.package.count + 1))], "\(name) is not in control.proto")
            let encoded = try #require(Self.topLevelFieldNumbers(try fixture.serializedBytes()))
            let missing = message.fields.subtracting(message.oneofs.joined()).subtracting(encoded)
            #expect(missing.isEmpty, "\(name) fixture leaves fields \(missing.sorted()) unset")
            for members in message.oneofs {
                #expect(members.intersection(encoded).count == 1, "\(name) fixture sets oneof \(members.sorted()) \(members.intersection(encoded).count) times")
            }
            seen[name, default: []].formUnion(encoded)
        }
        for (message, declared) in proto {
            let name = "\(Self.package).\(message)"
            #expect(seen[name] == declared.fields, "\(name): fixtures encode \(seen[name]?.sorted() ?? []), the proto declares \(declared.fields.sorted())")
        }
    }

    @Test func taskAttemptExitDecodesAsTheMemberThatWasSet() throws {
        let exits: [ControlV1.TaskAttempt.Exit?] = [nil, .exitCode(0), .exitCode(-1), .signal(0), .signal(9)]
        for exit in exits {
            var attempt = ControlV1.TaskAttempt()
            attempt.exit = exit
            let decoded = try ControlV1.TaskAttempt(serializedBytes: attempt.serializedBytes())
            #expect(decoded.exit == exit)
        }
        // exit_code = 3, then signal = 9: the last member on the wire wins.
        let bothOnWire: [UInt8] = [0x38, 0x03, 0x40, 0x09]
        #expect(try ControlV1.TaskAttempt(serializedBytes: bothOnWire).exit == .signal(9))
    }

    @Test func watchEventSubjectDecodesAsTheMemberThatWasSet() throws {
        let subjects: [ControlV1.WatchEventsResponse.Subject?] = [
            nil,
            .dag(Fixtures.Control.dag), .run(Fixtures.Control.run),
            .taskInstance(Fixtures.Control.taskInstance), .agent(Fixtures.Control.agent),
            // An empty sub-message is still the member set, not an absent subject.
            .dag(.init()), .run(.init()), .taskInstance(.init()), .agent(.init()),
        ]
        for subject in subjects {
            var event = ControlV1.WatchEventsResponse()
            event.subject = subject
            let decoded = try ControlV1.WatchEventsResponse(serializedBytes: event.serializedBytes())
            #expect(decoded.subject == subject)
        }
        // dag = {}, then run = {}: the last member on the wire wins.
        let bothOnWire: [UInt8] = [0x1A, 0x00, 0x22, 0x00]
        #expect(try ControlV1.WatchEventsResponse(serializedBytes: bothOnWire).subject == .run(.init()))
    }

    @Test func mapsKeepEmptyAndUnicodeKeysAndEncodeIndependentlyOfInsertionOrder() throws {
        let unicode = Fixtures.Control.unicode
        var run = ControlV1.Run()
        run.params = ["": "empty-key", unicode: unicode, "a": "", "z": "last", "\(unicode)-2": "x"]
        run.taskCounts = ["": 7, unicode: UInt32.max, "success": 0, "failed": 1]
        let decoded = try ControlV1.Run(serializedBytes: run.serializedBytes())
        #expect(decoded.params == run.params)
        #expect(decoded.taskCounts == run.taskCounts)

        var agent = ControlV1.Agent()
        agent.labels = ["": "", unicode: "gpu", "region": unicode]
        #expect(try ControlV1.Agent(serializedBytes: agent.serializedBytes()).labels == agent.labels)

        var reversed = ControlV1.Run()
        for (key, value) in run.params.sorted(by: { $0.key > $1.key }) { reversed.params[key] = value }
        for (key, value) in run.taskCounts.sorted(by: { $0.key > $1.key }) { reversed.taskCounts[key] = value }
        #expect(try reversed.serializedBytes() == run.serializedBytes())
    }

    @Test func aRepeatedMapKeyOnTheWireKeepsTheLastEntry() throws {
        // params {key: "k", value: "1"}, then {key: "k", value: "2"}.
        let entry = { (value: UInt8) -> [UInt8] in [0x52, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, value] }
        let run = try ControlV1.Run(serializedBytes: entry(0x31) + entry(0x32))
        #expect(run.params == ["k": "2"])
    }

    // MARK: - Helpers

    private static func expectRoundTrip<M: WireMessage>(_ message: M) throws {
        let bytes = try message.serializedBytes()
        let decoded = try M(serializedBytes: bytes)
        #expect(decoded == message, "\(M.protoName) changed in a round trip")
        #expect(try decoded.serializedBytes() == bytes, "\(M.protoName) re-encoded differently")
    }

    /// A `{ … }` block of a `.proto` file, as far as field numbering cares.
    private enum ProtoBlock {
        case message(String), oneof, other
    }

    /// A message's field numbers as declared in the `.proto`.
    private struct ProtoMessage {
        /// Every field, oneof members included.
        var fields: Set<UInt32> = []
        /// The members of each oneof.
        var oneofs: [Set<UInt32>] = []
    }

    /// Each message of control.proto by short name, from a line-by-line reading of
    /// the file (one declaration per line, as protoc's style guide and this file have it).
    private static func protoMessages() throws -> [String: ProtoMessage] {
        let url = Repository.root.appendingPathComponent("Protos/tether/control/v1/control.proto")
        let text = try String(contentsOf: url, encoding: .utf8)
        var messages: [String: ProtoMessage] = [:]
        var blocks: [ProtoBlock] = []  // innermost last
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false)[0]
                .trimmingCharacters(in: .whitespaces)
            let owner = blocks.reversed().lazy.compactMap { block -> String? in
                if case .message(let name) = block { return name } else { return nil }
            }.first
            if let open = line.firstMatch(of: /^message\s+(\w+)\s*\{$/) {
                blocks.append(.message(String(open.1)))
                messages[String(open.1)] = ProtoMessage()
            } else if line.firstMatch(of: /^oneof\s+\w+\s*\{$/) != nil, let owner {
                blocks.append(.oneof)
                messages[owner]!.oneofs.append([])
            } else if line.hasSuffix("{") {
                blocks.append(.other)
            } else if line == "}" {
                blocks.removeLast()
            } else if let field = line.firstMatch(of: /=\s*(\d+)\s*;$/), let owner {
                let number = UInt32(field.1)!
                switch blocks.last {
                case .message?: messages[owner]!.fields.insert(number)
                case .oneof?:
                    messages[owner]!.fields.insert(number)
                    messages[owner]!.oneofs[messages[owner]!.oneofs.count - 1].insert(number)
                case .other?, nil: break  // enum values
                }
            }
        }
        return messages
    }

    /// The field numbers at the top level of an encoded message; nil if malformed.
    private static func topLevelFieldNumbers(_ bytes: [UInt8]) -> Set<UInt32>? {
        var numbers: Set<UInt32> = []
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
            numbers.insert(UInt32(tag >> 3))
        }
        return numbers
    }
}
