/// How `jsonString` lays out its output and which fields it prints.
///
/// The defaults give exactly what Python's `json_format.MessageToJson(message)` prints
/// (protobuf 7.36 with upb, as in the project venv), map entries aside: see
/// `jsonString(options:)`.
public struct WireJSONOptions: Sendable, Equatable {
    /// Whitespace between tokens.
    public enum Layout: Sendable, Equatable {
        /// One member or element per line, indented by two spaces per level, `": "`
        /// after keys: `MessageToJson`'s default `indent=2` layout.
        case pretty
        /// No whitespace at all (`json.dumps(…, separators=(",", ":"))`), for machines.
        case compact
    }

    /// Whitespace between tokens; `.pretty` by default.
    public var layout: Layout
    /// Also print fields without presence that hold their default: scalars (`0`, `""`,
    /// `false`, the zero enum value's name), repeated fields (`[]`) and maps (`{}`).
    /// Message fields and oneof members have presence and still print only when set.
    /// Python's `always_print_fields_with_no_presence=True`; false by default.
    public var alwaysPrintsFieldsWithoutPresence: Bool
    /// Escape every character outside printable ASCII as `\uXXXX` (UTF-16, lowercase
    /// hex), as `MessageToJson`'s default `ensure_ascii=True` does; when false, non-ASCII
    /// text is written as UTF-8 (`ensure_ascii=False`, and what grpcurl prints). True by default.
    public var escapesNonASCII: Bool

    public init(layout: Layout = .pretty, alwaysPrintsFieldsWithoutPresence: Bool = false,
                escapesNonASCII: Bool = true) {
        self.layout = layout
        self.alwaysPrintsFieldsWithoutPresence = alwaysPrintsFieldsWithoutPresence
        self.escapesNonASCII = escapesNonASCII
    }
}

extension WireMessage {
    /// The message in protobuf's canonical proto3 JSON mapping, as Python's
    /// `json_format.MessageToJson` prints it, with no trailing newline.
    ///
    /// Everything comes from the protobuf-c descriptors, so every message type works
    /// with no code of its own: keys are each field's `json_name` (lowerCamelCase,
    /// computed as protoc does); fields print in field-number order (see
    /// `WireJSONOptions.alwaysPrintsFieldsWithoutPresence` for the ones it adds); a field
    /// at its default is left out unless it is the oneof member set; 64-bit integers are
    /// decimal strings, other integers numbers; `float`/`double` print as Python's
    /// `repr` does, or as `"NaN"`, `"Infinity"`, `"-Infinity"`; enums by value name;
    /// bytes as padded standard base64; maps as objects with string keys.
    ///
    /// The one difference from `MessageToJson`: map entries print sorted by key (string
    /// keys by code point, number keys by value), where Python prints them in the upb
    /// map's own iteration order, which is not deterministic across builds.
    ///
    /// Enum fields print the value the Swift type holds; a number this build does not
    /// know has already become the zero value when the bytes were decoded. Use
    /// `jsonString(serializedBytes:options:maxBytes:)` to print such numbers as received.
    /// - Throws: `WireError.embeddedNUL` if a string holds U+0000 (such a message cannot
    ///   be encoded either).
    public func jsonString(options: WireJSONOptions = WireJSONOptions()) throws(WireError) -> String {
        var text = ""
        try withCMessage(Self.wireDescriptor.raw, write: { (writer) throws(WireError) in try write(to: writer) }) { (message) throws(WireError) in
            text = try WireJSONPrinter.print(UnsafeRawPointer(message), Self.wireDescriptor.raw, options)
        }
        return text
    }

    /// Protobuf binary bytes of this message type, printed as `jsonString(options:)`
    /// prints a message, without decoding them into a Swift value first: an enum number
    /// this build does not know prints as that number, as `MessageToJson` prints it.
    /// Fields the schema does not know are left out, as `MessageToJson` does.
    /// - Parameter maxBytes: inputs longer than this are refused before parsing.
    /// - Throws: `WireError` for oversized input, malformed bytes or invalid strings,
    ///   as `init(serializedBytes:maxBytes:)` does.
    public static func jsonString(serializedBytes bytes: [UInt8], options: WireJSONOptions = WireJSONOptions(),
                                  maxBytes: Int = WireLimits.defaultMaxMessageBytes) throws(WireError) -> String {
        var text = ""
        var failure: WireError?
        bytes.withUnsafeBytes { buffer in
            do throws(WireError) {
                try withDecodedMessage(buffer, wireDescriptor.raw, maxBytes: maxBytes) { (message) throws(WireError) in
                    text = try WireJSONPrinter.print(message, wireDescriptor.raw, options)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return text
    }
}
