internal import CProtobufC
internal import TetherProtoC
internal import Glibc
internal import Synchronization

/// Prints a C message, and every message inside it, in the proto3 JSON mapping as
/// Python's `json_format.MessageToJson` does, reading it through its protobuf-c
/// descriptors only. Proto3 only: a proto2 field (`required`, `optional` with a
/// `has_` flag) is a programming error and traps.
///
/// Lives for one `jsonString` call on one thread; the C message must outlive it.
struct WireJSONPrinter {
    private var text: WireJSONText
    private let alwaysPrintsFieldsWithoutPresence: Bool

    /// `message`, of the type `descriptor` describes, as JSON text.
    /// - Throws: `WireError.invalidUTF8` if a string field is not valid UTF-8.
    static func print(_ message: UnsafeRawPointer, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                      _ options: WireJSONOptions) throws(WireError) -> String {
        var printer = WireJSONPrinter(text: WireJSONText(options),
                                      alwaysPrintsFieldsWithoutPresence: options.alwaysPrintsFieldsWithoutPresence)
        try printer.message(message, descriptor)
        return printer.text.string
    }

    /// A message as an object. `nil` (a map entry whose value message is missing on the
    /// wire) prints as the empty message.
    private mutating func message(_ message: UnsafeRawPointer?,
                                  _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) {
        let layout = JSONMessageLayout.of(descriptor)
        text.beginObject()
        // MessageToJson prints the fields set (upb's ListFields: field-number order),
        // then, when asked, the unset fields without presence in declaration order.
        // protobuf-c keeps number order only; WireJSONTests checks that every .proto
        // declares its fields in that order.
        var unset = 0
        for (index, field) in layout.fields.enumerated() {
            guard let message, Self.isSet(field, in: message) else {
                unset += 1
                continue
            }
            text.key(quoted: layout.keys[index])
            try value(of: field, in: message, isMap: layout.isMap[index], descriptor)
        }
        if alwaysPrintsFieldsWithoutPresence && unset > 0 {
            for (index, field) in layout.fields.enumerated() where !field.hasPresence && !(message.map { Self.isSet(field, in: $0) } ?? false) {
                text.key(quoted: layout.keys[index])
                try defaultValue(of: field, isMap: layout.isMap[index], descriptor)
            }
        }
        text.endObject()
    }

    /// The value of a field that is set: an array, a map's object or a single value.
    private mutating func value(of field: WireField, in message: UnsafeRawPointer, isMap: Bool,
                                _ owner: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) {
        guard field.isRepeated else {
            return try element(field, at: message + field.offset, owner)
        }
        let count = message.load(fromByteOffset: field.quantifierOffset, as: Int.self)
        guard let array = message.load(fromByteOffset: field.offset, as: UnsafeRawPointer?.self) else {
            preconditionFailure("\(String(cString: owner.pointee.name)).\(field.name) has \(count) elements and no array")
        }
        if isMap {
            return try map(field, entries: UnsafeBufferPointer(start: array.assumingMemoryBound(to: UnsafeRawPointer.self),
                                                               count: count))
        }
        text.beginArray()
        for i in 0..<count {
            text.element()
            try element(field, at: array + i * field.elementSize, owner)
        }
        text.endArray()
    }

    /// An unset field without presence: what `MessageToJson` prints for
    /// `always_print_fields_with_no_presence`.
    private mutating func defaultValue(of field: WireField, isMap: Bool,
                                       _ owner: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) {
        if field.isRepeated {
            if isMap {
                text.beginObject()
                text.endObject()
            } else {
                text.beginArray()
                text.endArray()
            }
            return
        }
        // An unset proto3 scalar is all zero bytes in protobuf-c, whatever its type.
        let zeros: (UInt64, UInt64) = (0, 0)
        try withUnsafeBytes(of: zeros) { (storage) throws(WireError) in
            try element(field, at: storage.baseAddress!, owner)
        }
    }

    /// One value of `field`'s type stored at `address` (the field in its message, or
    /// one element of a repeated field's array).
    private mutating func element(_ field: WireField, at address: UnsafeRawPointer,
                                  _ owner: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) {
        switch field.type {
        case PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_SFIXED32:
            text.literal(String(address.load(as: Int32.self)))
        case PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_FIXED32:
            text.literal(String(address.load(as: UInt32.self)))
        case PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_SFIXED64:
            text.string(String(address.load(as: Int64.self)))
        case PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_FIXED64:
            text.string(String(address.load(as: UInt64.self)))
        case PROTOBUF_C_TYPE_FLOAT:
            text.number(address.load(as: Float.self))
        case PROTOBUF_C_TYPE_DOUBLE:
            text.number(address.load(as: Double.self))
        case PROTOBUF_C_TYPE_BOOL:
            text.literal(address.load(as: protobuf_c_boolean.self) != 0 ? "true" : "false")
        case PROTOBUF_C_TYPE_ENUM:
            let number = address.load(as: Int32.self)
            let enumDescriptor = field.descriptor.pointee.descriptor.assumingMemoryBound(to: ProtobufCEnumDescriptor.self)
            if let value = protobuf_c_enum_descriptor_get_value(enumDescriptor, number) {
                // protoc allows only ASCII identifiers as names.
                text.string(utf8: UnsafeBufferPointer(start: UnsafeRawPointer(value.pointee.name).assumingMemoryBound(to: UInt8.self),
                                                      count: strlen(value.pointee.name)))
            } else {
                // proto3 enums are open: a number without a name prints as the number.
                text.literal(String(number))
            }
        case PROTOBUF_C_TYPE_STRING:
            guard let pointer = address.load(as: UnsafePointer<CChar>?.self) else { return text.string("") }
            let utf8 = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: strlen(pointer))
            if utf8.allSatisfy({ $0 < 0x80 }) {
                text.string(utf8: utf8)  // ASCII: valid UTF-8 as it is
            } else {
                text.string(try Self.string(pointer, field, owner))
            }
        case PROTOBUF_C_TYPE_BYTES:
            let data = address.load(as: ProtobufCBinaryData.self)
            text.string(WireJSONText.base64(UnsafeBufferPointer(start: data.len == 0 ? nil : data.data, count: data.len)))
        case PROTOBUF_C_TYPE_MESSAGE:
            try message(address.load(as: UnsafeRawPointer?.self), field.messageDescriptor)
        default:
            preconditionFailure("\(String(cString: owner.pointee.name)).\(field.name) has unknown protobuf-c type \(field.type)")
        }
    }

    /// A map field as an object, keys sorted (see `WireMessage.jsonString`). On a
    /// repeated key the last entry wins, as the protobuf spec says.
    private mutating func map(_ field: WireField, entries: UnsafeBufferPointer<UnsafeRawPointer>) throws(WireError) {
        let entry = field.messageDescriptor
        guard let keyField = protobuf_c_message_descriptor_get_field(entry, 1).map(WireField.init),
              let valueField = protobuf_c_message_descriptor_get_field(entry, 2).map(WireField.init) else {
            preconditionFailure("\(String(cString: entry.pointee.name)) is not a map entry")
        }
        var keys: [MapKey] = []
        var index: [[UInt8]: Int] = [:]
        for (i, pointer) in entries.enumerated() {
            let key = try MapKey(keyField, at: pointer + keyField.offset, entry: i, entry)
            if let earlier = index[key.utf8] {
                keys[earlier] = key
            } else {
                index[key.utf8] = keys.count
                keys.append(key)
            }
        }
        text.beginObject()
        for key in keys.sorted() {
            text.key(key.text)
            try element(valueField, at: entries[key.entry] + valueField.offset, entry)
        }
        text.endObject()
    }

    // MARK: Reading the C message

    /// Whether `MessageToJson` counts the field as set (upb's `ListFields`): a proto3
    /// scalar is set when any byte of it is non-zero, so -0.0 counts, as it does on
    /// the wire.
    private static func isSet(_ field: WireField, in message: UnsafeRawPointer) -> Bool {
        if field.isRepeated {
            return message.load(fromByteOffset: field.quantifierOffset, as: Int.self) > 0
        }
        if field.isOneofMember {
            return message.load(fromByteOffset: field.quantifierOffset, as: UInt32.self) == field.number
        }
        precondition(field.descriptor.pointee.label == PROTOBUF_C_LABEL_NONE,
                     "\(field.name): proto2 labels are not supported by the JSON printer")
        switch field.type {
        case PROTOBUF_C_TYPE_MESSAGE:
            return message.load(fromByteOffset: field.offset, as: UnsafeRawPointer?.self) != nil
        case PROTOBUF_C_TYPE_STRING:
            guard let s = message.load(fromByteOffset: field.offset, as: UnsafePointer<CChar>?.self) else { return false }
            return s.pointee != 0
        case PROTOBUF_C_TYPE_BYTES:
            return message.load(fromByteOffset: field.offset, as: ProtobufCBinaryData.self).len > 0
        default:
            let storage = UnsafeRawBufferPointer(start: message + field.offset, count: field.elementSize)
            return storage.contains { $0 != 0 }
        }
    }

    fileprivate static func string(_ pointer: UnsafePointer<CChar>?, _ field: WireField,
                                   _ owner: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) -> String {
        guard let pointer else { return "" }
        guard let s = String(validatingCString: pointer) else {
            throw .invalidUTF8(message: String(cString: owner.pointee.short_name), field: field.name)
        }
        return s
    }
}

/// One key of a map field: its JSON text and where it sorts.
private struct MapKey: Comparable {
    /// The key as JSON prints it: the string itself, or the number or bool as text.
    let text: String
    let utf8: [UInt8]
    /// Number keys sort by value; string keys (all 0 here) by `utf8`, i.e. code point.
    let number: Int128
    /// Index of the entry in the map field's array.
    let entry: Int

    init(_ field: WireField, at address: UnsafeRawPointer, entry: Int,
         _ owner: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) {
        switch field.type {
        case PROTOBUF_C_TYPE_STRING:
            text = try WireJSONPrinter.string(address.load(as: UnsafePointer<CChar>?.self), field, owner)
            number = 0
        case PROTOBUF_C_TYPE_BOOL:
            let value = address.load(as: protobuf_c_boolean.self) != 0
            text = value ? "true" : "false"
            number = value ? 1 : 0
        case PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_SFIXED32:
            let value = address.load(as: Int32.self)
            (text, number) = (String(value), Int128(value))
        case PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_FIXED32:
            let value = address.load(as: UInt32.self)
            (text, number) = (String(value), Int128(value))
        case PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_SFIXED64:
            let value = address.load(as: Int64.self)
            (text, number) = (String(value), Int128(value))
        case PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_FIXED64:
            let value = address.load(as: UInt64.self)
            (text, number) = (String(value), Int128(value))
        default:
            preconditionFailure("\(String(cString: owner.pointee.name)).\(field.name) cannot be a map key")
        }
        utf8 = Array(text.utf8)
        self.entry = entry
    }

    static func < (a: MapKey, b: MapKey) -> Bool {
        a.number != b.number ? a.number < b.number : a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func == (a: MapKey, b: MapKey) -> Bool { a.utf8 == b.utf8 }
}

/// What printing needs of one message type, worked out once per type: its fields in
/// number order, each one's JSON key as a quoted string, and which are maps. Types are
/// the static descriptors protoc-c generated, so the cache holds at most one entry each.
private final class JSONMessageLayout: @unchecked Sendable {
    let fields: [WireField]
    let keys: [[UInt8]]
    let isMap: [Bool]

    private init(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) {
        fields = WireField.all(of: descriptor)
        keys = fields.map { field in
            var text = WireJSONText(WireJSONOptions(layout: .compact))
            text.string(field.jsonName)
            return text.bytes
        }
        isMap = fields.map { $0.isMapField(of: descriptor) }
    }

    private static let cache = Mutex<[UInt: JSONMessageLayout]>([:])

    static func of(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> JSONMessageLayout {
        let key = UInt(bitPattern: descriptor)
        if let known = cache.withLock({ $0[key] }) { return known }
        let layout = JSONMessageLayout(descriptor)
        return cache.withLock { cache in
            if let known = cache[key] { return known }
            cache[key] = layout
            return layout
        }
    }
}

extension WireField {
    /// The proto3 JSON key: protoc's `ToJsonName` (each `_` dropped and the character
    /// after it upper-cased; nothing else changes). protobuf-c keeps the proto name only,
    /// so a `json_name` option in a .proto would be ignored here; WireJSONTests checks
    /// that none is used.
    var jsonName: String { Self.camelCase(name, upperFirst: false) }

    /// Whether the field has presence in proto3 (only set values print, even with
    /// `alwaysPrintsFieldsWithoutPresence`): a oneof member or a singular message.
    var hasPresence: Bool {
        isOneofMember || (!isRepeated && type == PROTOBUF_C_TYPE_MESSAGE)
    }

    /// Bytes of one value in the C message, or of one element of a repeated field's array.
    var elementSize: Int {
        switch type {
        case PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_SFIXED64,
             PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_DOUBLE:
            return 8
        case PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_MESSAGE:
            return MemoryLayout<UnsafeRawPointer>.stride
        case PROTOBUF_C_TYPE_BYTES:
            return MemoryLayout<ProtobufCBinaryData>.stride
        default:
            return 4   // 32-bit integers, float, bool (protobuf_c_boolean is int), enum
        }
    }

    /// Whether this repeated field is a `map<K, V>`. protobuf-c has no map_entry flag,
    /// so this goes by shape: protoc names the entry type `<Message>.<FieldName>Entry`
    /// (its `MapEntryName`) with fields `key = 1` and `value = 2`. A hand-written nested
    /// message of exactly that shape behind a repeated field of that name would pass for
    /// a map; WireJSONTests checks that no message in Protos/ has one.
    func isMapField(of owner: UnsafePointer<ProtobufCMessageDescriptor>) -> Bool {
        guard isRepeated, type == PROTOBUF_C_TYPE_MESSAGE else { return false }
        let entry = messageDescriptor
        let expected = "\(String(cString: owner.pointee.name)).\(Self.camelCase(name, upperFirst: true))Entry"
        guard String(cString: entry.pointee.name) == expected, entry.pointee.n_fields == 2 else { return false }
        let fields = WireField.all(of: entry)
        return fields[0].number == 1 && fields[0].name == "key" && fields[1].number == 2 && fields[1].name == "value"
    }

    /// `name` with each `_` dropped and the ASCII letter after it (and the first, if
    /// `upperFirst`) upper-cased, as protoc's `ToJsonName` and `MapEntryName` do.
    private static func camelCase(_ name: String, upperFirst: Bool) -> String {
        var out = ""
        var upper = upperFirst
        for c in name.unicodeScalars {
            if c == "_" {
                upper = true
            } else {
                out.unicodeScalars.append(upper && ("a"..."z").contains(c) ? Unicode.Scalar(c.value - 32)! : c)
                upper = false
            }
        }
        return out
    }
}
