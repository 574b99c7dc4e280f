internal import CProtobufC
internal import TetherProtoC

/// protobuf-c hands strings to us NUL-terminated, so a string holding U+0000
/// (valid protobuf) would arrive silently cut short. This walk over the wire
/// bytes finds such strings first, so decoding fails loudly instead of losing
/// data. It looks only at fields the schema knows; anything malformed is left
/// for protobuf-c to reject.
enum WireStringScan {
    static func check(_ bytes: UnsafeRawBufferPointer,
                      _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) throws(WireError) {
        var i = 0
        let count = bytes.count
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while i < count, shift < 64 {
                let byte = bytes[i]
                i += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while i < count {
            guard let tag = varint() else { return }
            switch tag & 7 {
            case 0: guard varint() != nil else { return }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let length = varint(), length <= UInt64(count - i) else { return }
                let start = i
                i += Int(length)
                guard tag >> 3 <= UInt64(UInt32.max),
                      let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(tag >> 3)) else { continue }
                let value = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                if field.pointee.type == PROTOBUF_C_TYPE_STRING, value.contains(0) {
                    throw .embeddedNUL(message: String(cString: descriptor.pointee.short_name),
                                       field: String(cString: field.pointee.name))
                }
                if field.pointee.type == PROTOBUF_C_TYPE_MESSAGE {
                    try check(value, field.pointee.descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self))
                }
            default: return
            }
        }
    }
}
