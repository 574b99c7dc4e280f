import Foundation
import Testing
import TetherTestSupport
@testable import TetherWire

/// `jsonString` prints what Python's `json_format.MessageToJson` prints for the same
/// message (Tests/Interop/wire_json.py; needs the venv from Scripts/bootstrap).
/// Python's map entries come in upb's iteration order, ours sorted, so the reference
/// sorts them too and checks that sorting is all it changed; everything else is
/// compared byte for byte.
@Suite struct WireJSONTests {
    static let script = Repository.root.appendingPathComponent("Tests/Interop/wire_json.py").path

    /// The option sets compared, named as wire_json.py names its reference files.
    static let variants: [(name: String, options: WireJSONOptions)] = [
        ("pretty", WireJSONOptions()),
        ("pretty-defaults", WireJSONOptions(alwaysPrintsFieldsWithoutPresence: true)),
        ("pretty-utf8", WireJSONOptions(escapesNonASCII: false)),
        ("compact", WireJSONOptions(layout: .compact)),
        ("compact-defaults", WireJSONOptions(layout: .compact, alwaysPrintsFieldsWithoutPresence: true)),
    ]

    // MARK: Against Python

    /// The printer reads protobuf-c descriptors, which lack declaration order,
    /// json_name options and the map_entry flag; Protos/ must not need them.
    @Test func protosHoldNothingThePrinterCannotSee() async throws {
        let result = try await python(["schema"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    /// Swift's fixtures, every message type empty, and a sparse message whose unset
    /// fields come before and after its set ones.
    @Test func everySwiftMessagePrintsAsMessageToJsonDoes() async throws {
        var sparse = ControlV1.TaskSpec()
        sparse.triggerRule = .allDone
        sparse.retryExponentialBackoff = true
        sparse.params = ["b": "2", "a": "1", "é": "3", "Z": "0", "🚀": "4", "\u{FFFD}": "5"]
        let messages: [any WireMessage] = Fixtures.all + WireRegistry.messageTypes.map { $0.init() } + [sparse]
        try await withScratch { dir in
            var files: [(String, any WireMessage)] = []
            for (k, message) in messages.enumerated() {
                let file = "\(type(of: message).protoName).\(k)"
                try Data(message.serializedBytes()).write(to: dir.appendingPathComponent("in/\(file).bin"))
                files.append((file, message))
            }
            try await printReferences(dir)
            for (file, message) in files {
                for (variant, options) in Self.variants {
                    try expectSame(try message.jsonString(options: options), dir, file, variant)
                }
            }
        }
    }

    /// Python's own populated instances (every field set, the largest enum value, one
    /// instance per oneof member), printed from their bytes and from the Swift values
    /// decoded from those bytes.
    @Test func everyPythonMessagePrintsAsMessageToJsonDoes() async throws {
        let types = Dictionary(uniqueKeysWithValues: WireRegistry.messageTypes.map { ($0.protoName, $0) })
        try await withScratch { dir in
            let made = try await python(["fixtures", dir.path])
            try #require(made.status == 0, "\(made.stdout)\(made.stderr)")
            try await printReferences(dir)
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("in").path).sorted()
            #expect(files.count >= types.count)
            for file in files {
                let name = String(file.split(separator: ".").dropLast(2).joined(separator: "."))
                let type = try #require(types[name], "no Swift type for \(name)")
                let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent("in/\(file)")))
                for (variant, options) in Self.variants {
                    let base = String(file.dropLast(4))
                    try expectSame(try type.jsonString(serializedBytes: bytes, options: options), dir, base, variant)
                    try expectSame(try printDecoded(type, bytes, options), dir, base, variant)
                }
            }
        }
    }

    /// Doubles print as Python's `repr` prints them: round values, powers of ten
    /// around the switch to exponent form, integers near 2^53, subnormals, random bits.
    @Test func doublesPrintAsPythonReprDoes() async throws {
        var values: [Double] = [0.1, 1.5, 100, 1 / 3, 2.5e16, 123_456_789_012_345_680, 9_007_199_254_740_992,
                                .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, .ulpOfOne]
        for e in -30...30 { values += [pow(10, Double(e)), 1.5 * pow(10, Double(e)), Double("1e\(e)")! * 7] }
        for e in 50...60 { values += [Double(1 << e), Double(1 << e) + 2048, Double((1 << e) - 1)] }
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            let random = Double(bitPattern: rng.next())
            if random.isFinite { values.append(random) }
            values.append(Double(Int64(bitPattern: rng.next()) % 10_000_000) / 1000)
        }
        var heartbeat = AgentV1.Heartbeat()
        heartbeat.metricDeltas = (values + values.map { -$0 }).map { value in
            var delta = AgentV1.MetricDelta()
            delta.value = value
            return delta
        }
        try await withScratch { dir in
            try Data(heartbeat.serializedBytes()).write(to: dir.appendingPathComponent("in/doubles.0.bin"))
            // wire_json.py finds the type from the file name.
            try FileManager.default.moveItem(at: dir.appendingPathComponent("in/doubles.0.bin"),
                                             to: dir.appendingPathComponent("in/\(AgentV1.Heartbeat.protoName).0.bin"))
            try await printReferences(dir)
            try expectSame(try heartbeat.jsonString(), dir, "\(AgentV1.Heartbeat.protoName).0", "pretty")
        }
    }

    /// Floats print as Python rounds them (`ToShortestFloat`: at least 6 digits, the
    /// nearest decimal of each length), which is not always Swift's shortest form.
    @Test func floatsPrintAsMessageToJsonRoundsThem() async throws {
        var rng = SplitMix64(seed: 9)
        var patterns: [UInt32] = [1, 2, 0x0080_0000, 0x7F7F_FFFF, 0x3F80_0000, 0x3F66_6666, 0x4B80_0000]
        for _ in 0..<20_000 {
            let bits = UInt32(truncatingIfNeeded: rng.next())
            patterns.append(bits)
            patterns.append(bits & 0xFF80_0000 | UInt32(rng.next() % 4))   // just above a power of two
            patterns.append(bits & 0x8000_0000 | UInt32(rng.next() % 0x0080_0000))   // subnormal
        }
        patterns = patterns.filter { Float(bitPattern: $0).isFinite }
        try await withScratch { dir in
            try Data(patterns.map { "\($0)\n" }.joined().utf8).write(to: dir.appendingPathComponent("floats.txt"))
            let printed = try await python(["floats", dir.path])
            try #require(printed.status == 0, "\(printed.stdout)\(printed.stderr)")
            let theirs = try String(contentsOf: dir.appendingPathComponent("floats.json.txt"), encoding: .utf8)
                .split(separator: "\n")
            try #require(theirs.count == patterns.count)
            var mismatches: [String] = []
            for (bits, expected) in zip(patterns, theirs) {
                var json = WireJSONText(WireJSONOptions())
                json.number(Float(bitPattern: bits))
                if json.string != expected { mismatches.append("\(Float(bitPattern: bits)) (\(bits)): ours \(json.string), Python \(expected)") }
            }
            #expect(mismatches.isEmpty, "\(mismatches.count) floats differ, e.g.\n\(mismatches.prefix(5).joined(separator: "\n"))")
        }
    }

    // MARK: Rules of the mapping

    @Test func anEmptyMessagePrintsAsAnEmptyObject() throws {
        #expect(try ControlV1.Dag().jsonString() == "{}")
        #expect(try ControlV1.Dag().jsonString(options: WireJSONOptions(layout: .compact)) == "{}")
        // Its one field is a oneof, which has presence: nothing to add.
        #expect(try AgentV1.AgentMessage().jsonString(options: WireJSONOptions(alwaysPrintsFieldsWithoutPresence: true)) == "{}")
    }

    @Test func fieldsAtTheirDefaultAreLeftOutUnlessAskedFor() throws {
        var m = ControlV1.TaskSpec()
        m.retries = 2
        #expect(try m.jsonString() == "{\n  \"retries\": 2\n}")
        // Set fields first, then the unset ones, each in field-number order, as MessageToJson.
        let all = try m.jsonString(options: WireJSONOptions(layout: .compact, alwaysPrintsFieldsWithoutPresence: true))
        #expect(all == #"{"retries":2,"taskId":"","entrypoint":"","queue":"","dependsOn":[],"#
            + #""triggerRule":"TRIGGER_RULE_UNSPECIFIED","retryDelayMs":"0","retryExponentialBackoff":false,"#
            + #""maxRetryDelayMs":"0","executionTimeoutMs":"0","priority":0,"params":{},"pool":"","poolSlots":0,"queueTimeoutMs":"0","#
            + #""onSuccess":"","onFailure":"","onRetry":""}"#)
    }

    @Test func messageFieldsAndOneofMembersPrintOnlyWhenSet() throws {
        let options = WireJSONOptions(layout: .compact, alwaysPrintsFieldsWithoutPresence: true)
        #expect(try ControlV1.GetDagResponse().jsonString(options: options).contains("\"dag\"") == false)
        var m = ControlV1.GetDagResponse()
        m.dag = ControlV1.Dag()
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact)).hasPrefix(#"{"dag":{}"#))
    }

    @Test func aOneofMemberSetToItsDefaultIsPrinted() throws {
        var m = ControlV1.TaskAttempt()
        m.exit = .exitCode(0)
        #expect(try m.jsonString() == "{\n  \"exitCode\": 0\n}")
        m.exit = .signal(0)
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact)) == #"{"signal":0}"#)
        var event = ControlV1.WatchEventsResponse()
        event.subject = .dag(ControlV1.Dag())
        #expect(try event.jsonString(options: WireJSONOptions(layout: .compact)) == #"{"dag":{}}"#)
    }

    @Test func sixtyFourBitIntegersPrintAsDecimalStringsAndOthersAsNumbers() throws {
        var m = ControlV1.TaskAttempt()
        m.attempt = .max
        m.epoch = .max
        m.grantedAtUnixUs = .min
        m.exit = .exitCode(.min)
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact))
            == #"{"attempt":4294967295,"epoch":"18446744073709551615","exitCode":-2147483648,"grantedAtUnixUs":"-9223372036854775808"}"#)
    }

    @Test func enumsPrintByNameAndUnknownNumbersAsTheNumber() throws {
        var m = HealthV1.HealthCheckResponse()
        m.status = .notServing
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact)) == #"{"status":"NOT_SERVING"}"#)
        let compact = WireJSONOptions(layout: .compact)
        // Field 1 = 99, then field 1 = -1 (ten-byte varint): numbers no name has.
        #expect(try HealthV1.HealthCheckResponse.jsonString(serializedBytes: [0x08, 99], options: compact) == #"{"status":99}"#)
        let minusOne: [UInt8] = [0x08] + Array(repeating: 0xFF, count: 9) + [0x01]
        #expect(try HealthV1.HealthCheckResponse.jsonString(serializedBytes: minusOne, options: compact) == #"{"status":-1}"#)
        // A Swift value cannot hold the unknown number: it decoded as the zero value.
        #expect(try HealthV1.HealthCheckResponse(serializedBytes: [0x08, 99]).jsonString() == "{}")
    }

    @Test func bytesPrintAsPaddedStandardBase64() throws {
        let cases: [([UInt8], String)] = [
            ([0], "AA=="), ([0, 255], "AP8="), ([0, 255, 62], "AP8+"), ([251, 255, 191, 0], "+/+/AA=="),
            (Array("hello world".utf8), "aGVsbG8gd29ybGQ="),
        ]
        for (payload, base64) in cases {
            var m = TestingV1.EchoResponse()
            m.payload = payload
            #expect(try m.jsonString(options: WireJSONOptions(layout: .compact)) == #"{"payload":"\#(base64)"}"#)
        }
    }

    @Test func nonFiniteDoublesPrintAsStrings() throws {
        for (value, text) in [(Double.nan, #""NaN""#), (.infinity, #""Infinity""#), (-.infinity, #""-Infinity""#),
                              (-0.0, "-0.0"), (1, "1.0"), (1e16, "1e+16"), (1e-5, "1e-05")] {
            var m = AgentV1.MetricDelta()
            m.value = value
            #expect(try m.jsonString(options: WireJSONOptions(layout: .compact)) == #"{"value":\#(text)}"#)
        }
    }

    @Test func floatsPrintRoundedToAtLeastSixDigits() {
        let cases: [(Float, String)] = [(0.9, "0.9"), (1e-7, "1e-07"), (16_777_216, "16777216.0"),
                                        (.greatestFiniteMagnitude, "3.4028235e+38"), (1e16, "1e+16"), (-0.0, "-0.0"),
                                        (.leastNonzeroMagnitude, "1.4013e-45"), (Float(bitPattern: 260_046_848), "1.26217745e-29")]
        for (value, text) in cases {
            var json = WireJSONText(WireJSONOptions())
            json.number(value)
            #expect(json.string == text)
        }
    }

    @Test func stringsAreEscapedAsPythonsJSONEscapesThem() throws {
        var m = ControlV1.Dag()
        m.description = "q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f} é日🚀\u{2028}"
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact))
            == #"{"description":"q\"b\\s/\b\f\n\r\t\u0001\u001f\u007f \u00e9\u65e5\ud83d\ude80\u2028"}"#)
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact, escapesNonASCII: false))
            == "{\"description\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f} é日🚀\u{2028}\"}")
    }

    /// Code point order, not UTF-16 order (U+1F680 after U+FFFD) nor Swift's `<`.
    @Test func mapEntriesPrintSortedByCodePoint() throws {
        var m = ControlV1.Run()
        m.taskCounts = ["b": 2, "a": 1, "é": 3, "🚀": 5, "\u{FFFD}": 4, "Z": 0]
        #expect(try m.jsonString(options: WireJSONOptions(layout: .compact, escapesNonASCII: false))
            == "{\"taskCounts\":{\"Z\":0,\"a\":1,\"b\":2,\"é\":3,\"\u{FFFD}\":4,\"🚀\":5}}")
    }

    @Test func aRepeatedMapKeyOnTheWireKeepsTheLastEntry() throws {
        // DagSpec.params (field 7) twice with key "k": values "1" then "2".
        let entry: (UInt8) -> [UInt8] = { [0x3A, 6, 0x0A, 1, UInt8(ascii: "k"), 0x12, 1, $0] }
        let bytes = entry(UInt8(ascii: "1")) + entry(UInt8(ascii: "2"))
        #expect(try ControlV1.DagSpec.jsonString(serializedBytes: bytes, options: WireJSONOptions(layout: .compact))
            == #"{"params":{"k":"2"}}"#)
    }

    @Test func prettyLayoutIndentsTwoSpacesAndKeepsEmptyContainersOnOneLine() throws {
        var m = AgentV1.Heartbeat()
        m.freeSlots = 1
        var delta = AgentV1.MetricDelta()
        delta.name = "x"
        m.metricDeltas = [delta, AgentV1.MetricDelta()]
        #expect(try m.jsonString(options: WireJSONOptions(alwaysPrintsFieldsWithoutPresence: true)) == """
            {
              "freeSlots": 1,
              "metricDeltas": [
                {
                  "name": "x",
                  "labels": {},
                  "kind": "METRIC_KIND_UNSPECIFIED",
                  "value": 0.0
                },
                {
                  "name": "",
                  "labels": {},
                  "kind": "METRIC_KIND_UNSPECIFIED",
                  "value": 0.0
                }
              ],
              "activeLeaseIds": [],
              "sentAtUnixUs": "0",
              "heartbeatId": "0"
            }
            """)
    }

    @Test func aStringHoldingNULIsRejectedAsEncodingRejectsIt() {
        var m = ControlV1.Dag()
        m.dagID = "a\u{0}b"
        #expect(throws: WireError.embeddedNUL(message: "Dag", field: "dag_id")) { try m.jsonString() }
    }

    @Test func badBytesAreRejectedAsDecodingRejectsThem() {
        #expect(throws: WireError.malformed(message: ControlV1.Dag.protoName)) {
            try ControlV1.Dag.jsonString(serializedBytes: [0x0A, 5, 1])
        }
        #expect(throws: WireError.invalidUTF8(message: "Dag", field: "dag_id")) {
            try ControlV1.Dag.jsonString(serializedBytes: [0x0A, 2, 0xC3, 0x28])
        }
    }

    // MARK: Helpers

    private func python(_ arguments: [String]) async throws -> ProcessResult {
        try await onThreadOfItsOwn { try runProcess(Repository.python, [Self.script] + arguments) }
    }

    private func printReferences(_ dir: URL) async throws {
        let printed = try await python(["print", dir.path])
        try #require(printed.status == 0, "\(printed.stdout)\(printed.stderr)")
    }

    private func withScratch(_ body: (URL) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tether-json-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("in"), withIntermediateDirectories: true)
        try await body(dir)
    }

    /// Compares with Python's reference; on a difference shows the first line that differs.
    private func expectSame(_ ours: String, _ dir: URL, _ file: String, _ variant: String,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = dir.appendingPathComponent("out/\(file).\(variant).json")
        let theirs = try String(contentsOf: url, encoding: .utf8)
        guard ours != theirs else { return }
        let (a, b) = (ours.split(separator: "\n", omittingEmptySubsequences: false),
                      theirs.split(separator: "\n", omittingEmptySubsequences: false))
        let line = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
        let show: (ArraySlice<Substring>) -> String = { $0.prefix(1).first.map { String($0.prefix(400)) } ?? "<end>" }
        Issue.record("\(file) \(variant) differs from MessageToJson at line \(line + 1):\n  ours:   \(show(a.dropFirst(line)))\n  Python: \(show(b.dropFirst(line)))",
                     sourceLocation: sourceLocation)
    }
}

private func printDecoded<M: WireMessage>(_ type: M.Type, _ bytes: [UInt8], _ options: WireJSONOptions) throws -> String {
    try M(serializedBytes: bytes).jsonString(options: options)
}

@Suite struct JSONTextTests {
    @Test func anObjectOfStringsIsCompactSortedAndEscapedAsTheProtobufMappingIs() {
        #expect(JSONText.object([:]) == "{}")
        #expect(JSONText.object(["b": "2", "a": "\"q\"\\ é\u{01}\u{08}\n"]) == #"{"a":"\"q\"\\ é\u0001\b\n","b":"2"}"#)
    }
}
