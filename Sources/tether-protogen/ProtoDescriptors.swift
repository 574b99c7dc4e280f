/// The parts of `google/protobuf/descriptor.proto` the generator reads, decoded from a
/// `FileDescriptorSet` (`protoc --descriptor_set_out --include_source_info`). Field
/// numbers below are descriptor.proto's; everything else in the set is skipped.

struct ProtoFile {
    var name = ""
    var package = ""
    /// The files it imports, as `import` names them.
    var dependencies: [String] = []
    /// Its `extend` fields at file scope.
    var extensions: [ProtoField] = []
    /// The `FileDescriptorProto` exactly as the set holds it, for server reflection.
    var serialized: [UInt8] = []
    var messages: [ProtoMessage] = []
    var enums: [ProtoEnum] = []
    var services: [ProtoService] = []
    /// Leading (else trailing) comment of each element, by its source path.
    var comments: [[Int32]: String] = [:]
    /// The line each element starts on, by its source path.
    var lines: [[Int32]: Int32] = [:]
}

struct ProtoMessage {
    var name = ""
    var fields: [ProtoField] = []
    var nested: [ProtoMessage] = []
    var enums: [ProtoEnum] = []
    var oneofs: [String] = []
    /// Its `extend` fields (extensions declared inside the message).
    var extensions: [ProtoField] = []
    /// A `map<K, V>` field's synthetic `XEntry` message.
    var isMapEntry = false
}

struct ProtoField {
    enum Label: Int32 { case optional = 1, required = 2, repeated = 3 }
    /// descriptor.proto's `FieldDescriptorProto.Type`.
    enum Kind: Int32 {
        case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes,
             uint32, `enum`, sfixed32, sfixed64, sint32, sint64
    }

    var name = ""
    var number: Int32 = 0
    var label = Label.optional
    var kind = Kind.int32
    /// For messages and enums: the fully qualified type name, with a leading dot.
    var typeName = ""
    /// For an extension: the fully qualified message it extends, with a leading dot.
    var extendee = ""
    var oneofIndex: Int?
    /// proto3 `optional`, which protoc-c 1.4 cannot compile anyway.
    var isProto3Optional = false
}

struct ProtoEnum {
    var name = ""
    var values: [(name: String, number: Int32)] = []
}

struct ProtoService {
    var name = ""
    var methods: [ProtoMethod] = []
}

struct ProtoMethod {
    var name = ""
    var inputType = ""
    var outputType = ""
    var clientStreaming = false
    var serverStreaming = false
}

struct DescriptorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A protobuf binary reader over one message's bytes: just enough for descriptors.
private struct ProtoBytes {
    let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    /// Calls `body` with each field's number and value until the bytes end.
    mutating func forEachField(_ body: (Int32, Value) throws -> Void) throws {
        while index < bytes.endIndex {
            let key = try varint()
            let number = Int32(truncatingIfNeeded: key >> 3)
            switch key & 7 {
            case 0: try body(number, .varint(try varint()))
            case 1: try skip(8)
            case 2:
                let length = Int(try varint())
                guard length <= bytes.endIndex - index else { throw DescriptorError("descriptor set: truncated field \(number)") }
                try body(number, .bytes(bytes[index..<index + length]))
                index += length
            case 5: try skip(4)
            default: throw DescriptorError("descriptor set: wire type \(key & 7) of field \(number) is not supported")
            }
        }
    }

    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)

        var int32: Int32 { if case .varint(let v) = self { Int32(truncatingIfNeeded: v) } else { 0 } }
        var bool: Bool { if case .varint(let v) = self { v != 0 } else { false } }
        var string: String { if case .bytes(let b) = self { String(decoding: b, as: UTF8.self) } else { "" } }
        var message: ProtoBytes { if case .bytes(let b) = self { ProtoBytes(b) } else { ProtoBytes([]) } }
        /// A repeated int32, packed or not.
        var int32s: [Int32] {
            get throws {
                switch self {
                case .varint(let v): return [Int32(truncatingIfNeeded: v)]
                case .bytes(let b):
                    var reader = ProtoBytes(b), out: [Int32] = []
                    while reader.index < b.endIndex { out.append(Int32(truncatingIfNeeded: try reader.varint())) }
                    return out
                }
            }
        }
    }

    private mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard index < bytes.endIndex else { throw DescriptorError("descriptor set: truncated varint") }
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7f) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw DescriptorError("descriptor set: varint longer than 10 bytes")
    }

    private mutating func skip(_ count: Int) throws {
        guard count <= bytes.endIndex - index else { throw DescriptorError("descriptor set: truncated fixed field") }
        index += count
    }
}

/// Decodes a `FileDescriptorSet`.
func decodeFileDescriptorSet(_ bytes: [UInt8]) throws -> [ProtoFile] {
    var files: [ProtoFile] = []
    var set = ProtoBytes(bytes[...])
    try set.forEachField { number, value in
        guard number == 1, case .bytes(let bytes) = value else { return }
        var file = try decodeFile(value.message)
        file.serialized = Array(bytes)
        files.append(file)
    }
    return files
}

private func decodeFile(_ bytes: ProtoBytes) throws -> ProtoFile {
    var file = ProtoFile(), reader = bytes
    try reader.forEachField { number, value in
        switch number {
        case 1: file.name = value.string
        case 2: file.package = value.string
        case 3: file.dependencies.append(value.string)
        case 7: file.extensions.append(try decodeField(value.message))
        case 4: file.messages.append(try decodeMessage(value.message))
        case 5: file.enums.append(try decodeEnum(value.message))
        case 6: file.services.append(try decodeService(value.message))
        case 9: try decodeSourceInfo(value.message, into: &file)
        default: break
        }
    }
    return file
}

private func decodeMessage(_ bytes: ProtoBytes) throws -> ProtoMessage {
    var message = ProtoMessage(), reader = bytes
    try reader.forEachField { number, value in
        switch number {
        case 1: message.name = value.string
        case 2: message.fields.append(try decodeField(value.message))
        case 3: message.nested.append(try decodeMessage(value.message))
        case 4: message.enums.append(try decodeEnum(value.message))
        case 6: message.extensions.append(try decodeField(value.message))
        case 7:  // MessageOptions
            var options = value.message
            try options.forEachField { number, value in if number == 7 { message.isMapEntry = value.bool } }
        case 8:  // OneofDescriptorProto
            var oneof = value.message, name = ""
            try oneof.forEachField { number, value in if number == 1 { name = value.string } }
            message.oneofs.append(name)
        default: break
        }
    }
    return message
}

private func decodeField(_ bytes: ProtoBytes) throws -> ProtoField {
    var field = ProtoField(), reader = bytes
    try reader.forEachField { number, value in
        switch number {
        case 1: field.name = value.string
        case 2: field.extendee = value.string
        case 3: field.number = value.int32
        case 4:
            guard let label = ProtoField.Label(rawValue: value.int32) else { throw DescriptorError("field \(field.name): label \(value.int32)") }
            field.label = label
        case 5:
            guard let kind = ProtoField.Kind(rawValue: value.int32) else { throw DescriptorError("field \(field.name): type \(value.int32)") }
            field.kind = kind
        case 6: field.typeName = value.string
        case 9: field.oneofIndex = Int(value.int32)
        case 17: field.isProto3Optional = value.bool
        default: break
        }
    }
    return field
}

private func decodeEnum(_ bytes: ProtoBytes) throws -> ProtoEnum {
    var result = ProtoEnum(), reader = bytes
    try reader.forEachField { number, value in
        switch number {
        case 1: result.name = value.string
        case 2:
            var entry = value.message, name = "", valueNumber: Int32 = 0
            try entry.forEachField { number, value in
                if number == 1 { name = value.string } else if number == 2 { valueNumber = value.int32 }
            }
            result.values.append((name, valueNumber))
        default: break
        }
    }
    return result
}

private func decodeService(_ bytes: ProtoBytes) throws -> ProtoService {
    var service = ProtoService(), reader = bytes
    try reader.forEachField { number, value in
        switch number {
        case 1: service.name = value.string
        case 2:
            var method = ProtoMethod(), entry = value.message
            try entry.forEachField { number, value in
                switch number {
                case 1: method.name = value.string
                case 2: method.inputType = value.string
                case 3: method.outputType = value.string
                case 5: method.clientStreaming = value.bool
                case 6: method.serverStreaming = value.bool
                default: break
                }
            }
            service.methods.append(method)
        default: break
        }
    }
    return service
}

private func decodeSourceInfo(_ bytes: ProtoBytes, into file: inout ProtoFile) throws {
    var reader = bytes
    try reader.forEachField { number, value in
        guard number == 1 else { return }  // Location
        var location = value.message, path: [Int32] = [], span: [Int32] = [], leading = "", trailing = ""
        try location.forEachField { number, value in
            switch number {
            case 1: path += try value.int32s
            case 2: span += try value.int32s
            case 3: leading = value.string
            case 4: trailing = value.string
            default: break
            }
        }
        let text = leading.isEmpty ? trailing : leading
        if !text.isEmpty { file.comments[path] = text }
        if let line = span.first { file.lines[path] = line }
    }
}
