internal import CProtobufC
internal import TetherProtoC

/// Where one field of a C message lives, from its protobuf-c field descriptor.
struct WireField {
    let descriptor: UnsafePointer<ProtobufCFieldDescriptor>

    /// The field numbered `number` of `message`. A mapping that names a field the
    /// `.proto` does not have, or reads it as the wrong type, is a programming error
    /// in this module (caught by the round-trip tests), so it traps.
    init(_ number: UInt32, of message: UnsafePointer<ProtobufCMessageDescriptor>, as types: [ProtobufCType]) {
        guard let field = protobuf_c_message_descriptor_get_field(message, number) else {
            preconditionFailure("\(String(cString: message.pointee.name)) has no field \(number)")
        }
        precondition(types.contains(field.pointee.type),
                     "\(String(cString: message.pointee.name)).\(String(cString: field.pointee.name)) has another type")
        descriptor = field
    }

    /// The field `descriptor` describes, for code that walks every field of a message.
    init(_ descriptor: UnsafePointer<ProtobufCFieldDescriptor>) {
        self.descriptor = descriptor
    }

    /// Every field of `message`, in field-number order (protoc-c sorts them so).
    static func all(of message: UnsafePointer<ProtobufCMessageDescriptor>) -> [WireField] {
        (0..<Int(message.pointee.n_fields)).map { WireField(message.pointee.fields + $0) }
    }

    var number: UInt32 { descriptor.pointee.id }
    var name: String { String(cString: descriptor.pointee.name) }
    var type: ProtobufCType { descriptor.pointee.type }
    var offset: Int { Int(descriptor.pointee.offset) }
    var quantifierOffset: Int { Int(descriptor.pointee.quantifier_offset) }
    var isRepeated: Bool { descriptor.pointee.label == PROTOBUF_C_LABEL_REPEATED }
    var isOneofMember: Bool { descriptor.pointee.flags & UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue) != 0 }
    /// The sub-message descriptor of a message (or map) field.
    var messageDescriptor: UnsafePointer<ProtobufCMessageDescriptor> {
        descriptor.pointee.descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
    }
}

/// A fixed-size proto3 scalar and the protobuf-c field types stored in it.
protocol WireScalar {
    static var wireTypes: [ProtobufCType] { get }
}

extension Int32: WireScalar {
    static var wireTypes: [ProtobufCType] { [PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_SFIXED32] }
}
extension UInt32: WireScalar {
    static var wireTypes: [ProtobufCType] { [PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_FIXED32] }
}
extension Int64: WireScalar {
    static var wireTypes: [ProtobufCType] { [PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_SFIXED64] }
}
extension UInt64: WireScalar {
    static var wireTypes: [ProtobufCType] { [PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_FIXED64] }
}
extension Double: WireScalar {
    static var wireTypes: [ProtobufCType] { [PROTOBUF_C_TYPE_DOUBLE] }
}
extension Float: WireScalar {
    static var wireTypes: [ProtobufCType] { [PROTOBUF_C_TYPE_FLOAT] }
}
