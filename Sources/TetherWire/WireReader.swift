internal import CProtobufC
internal import TetherProtoC

/// Reads the fields of one decoded C message. Valid only inside `init(from:)`:
/// the C message is freed when decoding returns.
public struct WireReader {
    let message: UnsafeRawPointer
    let descriptor: UnsafePointer<ProtobufCMessageDescriptor>

    private var messageName: String { String(cString: descriptor.pointee.short_name) }

    private func field(_ number: UInt32, _ types: [ProtobufCType]) -> WireField {
        WireField(number, of: descriptor, as: types)
    }

    /// Whether a oneof member is the one set, or a message field is present.
    func has(_ number: UInt32) -> Bool {
        let f = WireField(number, of: descriptor, as: [
            PROTOBUF_C_TYPE_MESSAGE, PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_INT64,
            PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_ENUM,
            PROTOBUF_C_TYPE_DOUBLE, PROTOBUF_C_TYPE_BYTES,
        ])
        if f.isOneofMember {
            return message.load(fromByteOffset: f.quantifierOffset, as: UInt32.self) == number
        }
        precondition(f.descriptor.pointee.type == PROTOBUF_C_TYPE_MESSAGE, "has() on a plain scalar")
        return message.load(fromByteOffset: f.offset, as: UnsafeRawPointer?.self) != nil
    }

    /// A oneof member reads as its default unless it is the member set.
    private func isAbsentOneofMember(_ f: WireField) -> Bool {
        f.isOneofMember && message.load(fromByteOffset: f.quantifierOffset, as: UInt32.self) != f.number
    }

    func value<T: WireScalar & ExpressibleByIntegerLiteral>(_ number: UInt32) -> T {
        let f = field(number, T.wireTypes)
        return isAbsentOneofMember(f) ? 0 : message.load(fromByteOffset: f.offset, as: T.self)
    }

    func value(_ number: UInt32) -> Double {
        let f = field(number, Double.wireTypes)
        return isAbsentOneofMember(f) ? 0 : message.load(fromByteOffset: f.offset, as: Double.self)
    }

    func value(_ number: UInt32) -> Bool {
        let f = field(number, [PROTOBUF_C_TYPE_BOOL])
        return isAbsentOneofMember(f) ? false : message.load(fromByteOffset: f.offset, as: Int32.self) != 0
    }

    func value<E: WireEnum>(_ number: UInt32) -> E {
        let f = field(number, [PROTOBUF_C_TYPE_ENUM])
        return E(wireValue: isAbsentOneofMember(f) ? 0 : message.load(fromByteOffset: f.offset, as: Int32.self))
    }

    func value(_ number: UInt32) throws(WireError) -> String {
        let f = field(number, [PROTOBUF_C_TYPE_STRING])
        if isAbsentOneofMember(f) { return "" }
        return try string(message.load(fromByteOffset: f.offset, as: UnsafePointer<CChar>?.self), f)
    }

    func value(_ number: UInt32) -> [UInt8] {
        let f = field(number, [PROTOBUF_C_TYPE_BYTES])
        if isAbsentOneofMember(f) { return [] }
        let data = message.load(fromByteOffset: f.offset, as: ProtobufCBinaryData.self)
        return Array(UnsafeBufferPointer(start: data.data, count: data.len))
    }

    func value<M: WireMessage>(_ number: UInt32) throws(WireError) -> M? {
        let f = field(number, [PROTOBUF_C_TYPE_MESSAGE])
        assert(f.messageDescriptor == M.wireDescriptor.raw, "\(messageName).\(f.name) is not a \(M.protoName)")
        if isAbsentOneofMember(f) { return nil }
        guard let sub = message.load(fromByteOffset: f.offset, as: UnsafeRawPointer?.self) else { return nil }
        return try M(from: WireReader(message: sub, descriptor: M.wireDescriptor.raw))
    }

    // MARK: Repeated fields

    private func elements<T>(_ f: WireField, as: T.Type) -> UnsafeBufferPointer<T> {
        precondition(f.isRepeated, "\(messageName).\(f.name) is not repeated")
        let count = message.load(fromByteOffset: f.quantifierOffset, as: Int.self)
        let start = message.load(fromByteOffset: f.offset, as: UnsafePointer<T>?.self)
        return UnsafeBufferPointer(start: count == 0 ? nil : start, count: count)
    }

    func values(_ number: UInt32) throws(WireError) -> [String] {
        let f = field(number, [PROTOBUF_C_TYPE_STRING])
        var out: [String] = []
        for element in elements(f, as: UnsafePointer<CChar>?.self) { out.append(try string(element, f)) }
        return out
    }

    func values<T: WireScalar>(_ number: UInt32) -> [T] {
        Array(elements(field(number, T.wireTypes), as: T.self))
    }

    func values(_ number: UInt32) -> [[UInt8]] {
        elements(field(number, [PROTOBUF_C_TYPE_BYTES]), as: ProtobufCBinaryData.self).map { data in
            Array(UnsafeBufferPointer(start: data.data, count: data.len))
        }
    }

    func values<E: WireEnum>(_ number: UInt32) -> [E] {
        elements(field(number, [PROTOBUF_C_TYPE_ENUM]), as: Int32.self).map(E.init(wireValue:))
    }

    func values<M: WireMessage>(_ number: UInt32) throws(WireError) -> [M] {
        let f = field(number, [PROTOBUF_C_TYPE_MESSAGE])
        assert(f.messageDescriptor == M.wireDescriptor.raw, "\(messageName).\(f.name) is not a \(M.protoName)")
        var out: [M] = []
        for element in elements(f, as: UnsafeRawPointer.self) {
            out.append(try M(from: WireReader(message: element, descriptor: M.wireDescriptor.raw)))
        }
        return out
    }

    /// A `map<string, V>` field; `value` reads field 2 of each entry. On a
    /// repeated key the last entry wins, as the protobuf spec says.
    func map<V>(_ number: UInt32, value: (WireReader) throws(WireError) -> V) throws(WireError) -> [String: V] {
        let f = field(number, [PROTOBUF_C_TYPE_MESSAGE])
        var out: [String: V] = [:]
        for entry in elements(f, as: UnsafeRawPointer.self) {
            let reader = WireReader(message: entry, descriptor: f.messageDescriptor)
            out[try reader.value(1) as String] = try value(reader)
        }
        return out
    }

    func map(_ number: UInt32) throws(WireError) -> [String: String] {
        try map(number) { (entry) throws(WireError) in try entry.value(2) }
    }

    private func string(_ pointer: UnsafePointer<CChar>?, _ f: WireField) throws(WireError) -> String {
        guard let pointer else { return "" }
        guard let s = String(validatingCString: pointer) else {
            throw .invalidUTF8(message: messageName, field: f.name)
        }
        return s
    }
}
