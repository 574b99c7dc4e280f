/// One `.proto` file as protoc compiled it: its serialized `google.protobuf.FileDescriptorProto`
/// and what gRPC server reflection looks up in it. `WireRegistry.fileDescriptors` holds one per
/// file in Protos/, written by tether-protogen from the same descriptor set as the rest of the
/// generated code, so the names below and the bytes cannot disagree. Immutable.
public struct ProtoFileDescriptor: Sendable {
    /// An extension field a file defines: the message it extends and its field number.
    public struct Extension: Sendable, Hashable {
        /// Fully qualified, without a leading dot: `tether.control.v1.Run`.
        public let extendee: String
        public let number: Int32

        public init(extendee: String, number: Int32) {
            self.extendee = extendee
            self.number = number
        }
    }

    /// The file's path under Protos/ as imports name it: `tether/control/v1/control.proto`.
    public let name: String
    /// The files it imports, by `name`.
    public let dependencies: [String]
    /// Every fully qualified name it declares, without a leading dot: messages, their fields,
    /// oneofs and nested types, enums and their values, services and their methods, extensions.
    public let symbols: [String]
    /// The message types among `symbols`, nested ones included.
    public let messageTypes: [String]
    /// The extensions it defines.
    public let extensions: [Extension]
    /// The serialized `FileDescriptorProto`.
    public let serializedBytes: [UInt8]

    public init(name: String, dependencies: [String], symbols: [String], messageTypes: [String], extensions: [Extension], serializedBytes: [UInt8]) {
        self.name = name
        self.dependencies = dependencies
        self.symbols = symbols
        self.messageTypes = messageTypes
        self.extensions = extensions
        self.serializedBytes = serializedBytes
    }

    /// For generated code: `serializedBytes` as base64 (RFC 4648, padded), lines separated
    /// by whitespace. Traps on any other character: the generator wrote it, so it is a bug.
    public init(name: String, dependencies: [String], symbols: [String], messageTypes: [String], extensions: [Extension], base64: String) {
        guard let bytes = Self.decodeBase64(base64) else { preconditionFailure("\(name): the generated descriptor is not base64") }
        self.init(name: name, dependencies: dependencies, symbols: symbols, messageTypes: messageTypes, extensions: extensions, serializedBytes: bytes)
    }

    /// Standard base64 with padding, whitespace ignored; nil for anything else.
    static func decodeBase64(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 4 * 3)
        var group: UInt32 = 0, count = 0, padding = 0
        for byte in text.utf8 {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="): padding += 1; value = 0
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
            default: return nil
            }
            // Nothing but more padding may follow padding.
            if padding > 0 && byte != UInt8(ascii: "=") { return nil }
            group = group << 6 | value
            count += 1
            if count == 4 {
                guard padding <= 2 else { return nil }
                let bytes = [UInt8(truncatingIfNeeded: group >> 16), UInt8(truncatingIfNeeded: group >> 8), UInt8(truncatingIfNeeded: group)]
                out += bytes.prefix(3 - padding)
                group = 0
                count = 0
                if padding > 0 { padding = 3 }  // the group that ends the text
            }
        }
        return count == 0 ? out : nil
    }
}
