internal import CProtobufC
internal import TetherProtoC

/// Writes the fields of one C message being built for encoding. Every C
/// allocation belongs to the arena, which `serializedBytes()` frees after packing.
public struct WireWriter {
    let arena: WireArena
    let message: UnsafeMutableRawPointer
    let descriptor: UnsafePointer<ProtobufCMessageDescriptor>

    private var messageName: String { String(cString: descriptor.pointee.short_name) }

    private func field(_ number: UInt32, _ types: [ProtobufCType]) -> WireField {
        WireField(number, of: descriptor, as: types)
    }

    /// Stores a field's value and, for a oneof member, marks it as the member set.
    private func store<T>(_ value: T, _ f: WireField) {
        message.storeBytes(of: value, toByteOffset: f.offset, as: T.self)
        if f.isOneofMember {
            message.storeBytes(of: f.number, toByteOffset: f.quantifierOffset, as: UInt32.self)
        }
    }

    func set<T: WireScalar>(_ number: UInt32, _ value: T) {
        store(value, field(number, T.wireTypes))
    }

    func set(_ number: UInt32, _ value: Bool) {
        store(Int32(value ? 1 : 0), field(number, [PROTOBUF_C_TYPE_BOOL]))
    }

    func set<E: WireEnum>(_ number: UInt32, _ value: E) {
        store(value.rawValue, field(number, [PROTOBUF_C_TYPE_ENUM]))
    }

    func set(_ number: UInt32, _ value: String) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_STRING])
        store(try cString(value, f), f)
    }

    func set(_ number: UInt32, _ value: [UInt8]) {
        let f = field(number, [PROTOBUF_C_TYPE_BYTES])
        let data = arena.array(count: value.count, stride: 1)
        data.copyMemory(from: value, byteCount: value.count)
        store(ProtobufCBinaryData(len: value.count, data: data.assumingMemoryBound(to: UInt8.self)), f)
    }

    /// Writes a sub-message; `nil` leaves the field absent.
    func set<M: WireMessage>(_ number: UInt32, _ value: M?) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_MESSAGE])
        assert(f.messageDescriptor == M.wireDescriptor.raw, "\(messageName).\(f.name) is not a \(M.protoName)")
        guard let value else { return }
        store(UnsafeRawPointer(try build(value)), f)
    }

    // MARK: Repeated fields

    private func storeElements(_ f: WireField, count: Int, stride: Int,
                               fill: (UnsafeMutableRawPointer) throws(WireError) -> Void) throws(WireError) {
        precondition(f.isRepeated, "\(messageName).\(f.name) is not repeated")
        guard count > 0 else { return }
        let array = arena.array(count: count, stride: stride)
        try fill(array)
        message.storeBytes(of: count, toByteOffset: f.quantifierOffset, as: Int.self)
        message.storeBytes(of: UnsafeRawPointer(array), toByteOffset: f.offset, as: UnsafeRawPointer.self)
    }

    func set(_ number: UInt32, _ values: [String]) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_STRING])
        try storeElements(f, count: values.count, stride: MemoryLayout<UnsafeRawPointer>.stride) { (array) throws(WireError) in
            for (i, value) in values.enumerated() {
                array.storeBytes(of: UnsafePointer(try cString(value, f)),
                                 toByteOffset: i * MemoryLayout<UnsafeRawPointer>.stride, as: UnsafePointer<CChar>.self)
            }
        }
    }

    func set<T: WireScalar>(_ number: UInt32, _ values: [T]) throws(WireError) {
        let f = field(number, T.wireTypes)
        try storeElements(f, count: values.count, stride: MemoryLayout<T>.stride) { array in
            for (i, value) in values.enumerated() {
                array.storeBytes(of: value, toByteOffset: i * MemoryLayout<T>.stride, as: T.self)
            }
        }
    }

    func set(_ number: UInt32, _ values: [[UInt8]]) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_BYTES])
        let stride = MemoryLayout<ProtobufCBinaryData>.stride
        try storeElements(f, count: values.count, stride: stride) { array in
            for (i, value) in values.enumerated() {
                let data = arena.array(count: value.count, stride: 1)
                data.copyMemory(from: value, byteCount: value.count)
                array.storeBytes(of: ProtobufCBinaryData(len: value.count, data: data.assumingMemoryBound(to: UInt8.self)),
                                 toByteOffset: i * stride, as: ProtobufCBinaryData.self)
            }
        }
    }

    func set<E: WireEnum>(_ number: UInt32, _ values: [E]) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_ENUM])
        try storeElements(f, count: values.count, stride: MemoryLayout<Int32>.stride) { array in
            for (i, value) in values.enumerated() {
                array.storeBytes(of: value.rawValue, toByteOffset: i * MemoryLayout<Int32>.stride, as: Int32.self)
            }
        }
    }

    func set<M: WireMessage>(_ number: UInt32, _ values: [M]) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_MESSAGE])
        assert(f.messageDescriptor == M.wireDescriptor.raw, "\(messageName).\(f.name) is not a \(M.protoName)")
        try storeElements(f, count: values.count, stride: MemoryLayout<UnsafeRawPointer>.stride) { (array) throws(WireError) in
            for (i, value) in values.enumerated() {
                array.storeBytes(of: UnsafeRawPointer(try build(value)),
                                 toByteOffset: i * MemoryLayout<UnsafeRawPointer>.stride, as: UnsafeRawPointer.self)
            }
        }
    }

    /// A `map<string, V>` field, written in key order so encodings are deterministic;
    /// `value` writes field 2 of each entry.
    func set<V>(_ number: UInt32, _ map: [String: V],
                value: (WireWriter, V) throws(WireError) -> Void) throws(WireError) {
        let f = field(number, [PROTOBUF_C_TYPE_MESSAGE])
        let entries = map.sorted { $0.key < $1.key }
        try storeElements(f, count: entries.count, stride: MemoryLayout<UnsafeRawPointer>.stride) { (array) throws(WireError) in
            for (i, entry) in entries.enumerated() {
                let sub = arena.newMessage(f.messageDescriptor)
                let writer = WireWriter(arena: arena, message: sub, descriptor: f.messageDescriptor)
                try writer.set(1, entry.key)
                try value(writer, entry.value)
                array.storeBytes(of: UnsafeRawPointer(sub),
                                 toByteOffset: i * MemoryLayout<UnsafeRawPointer>.stride, as: UnsafeRawPointer.self)
            }
        }
    }

    func set(_ number: UInt32, _ map: [String: String]) throws(WireError) {
        try set(number, map) { (entry, value) throws(WireError) in try entry.set(2, value) }
    }

    private func build<M: WireMessage>(_ value: M) throws(WireError) -> UnsafeMutableRawPointer {
        let sub = arena.newMessage(M.wireDescriptor.raw)
        try value.write(to: WireWriter(arena: arena, message: sub, descriptor: M.wireDescriptor.raw))
        return sub
    }

    private func cString(_ value: String, _ f: WireField) throws(WireError) -> UnsafeMutablePointer<CChar> {
        if value.utf8.contains(0) { throw .embeddedNUL(message: messageName, field: f.name) }
        return arena.cString(value.utf8)
    }
}
