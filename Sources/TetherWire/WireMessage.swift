internal import CProtobufC
internal import TetherProtoC
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// A Swift value type with a protobuf message behind it.
///
/// Conforming types live in this module only: `WireDescriptor`, `WireReader` and
/// `WireWriter` have no public initialisers. Encoding and decoding go through
/// protobuf-c with the message's generated descriptor.
public protocol WireMessage: Sendable, Equatable {
    /// The protobuf-c descriptor of the message.
    static var wireDescriptor: WireDescriptor { get }
    /// An empty message: every field at its proto3 default.
    init()
    /// Reads every field from a decoded C message.
    init(from reader: WireReader) throws(WireError)
    /// Writes every field into an empty C message.
    func write(to writer: WireWriter) throws(WireError)
}

/// Limits applied when decoding.
public enum WireLimits {
    /// Largest message accepted by default: 4 MiB, gRPC's default receive limit.
    public static let defaultMaxMessageBytes = 4 << 20

    /// Most bytes protobuf-c may allocate to decode `inputBytes` of input. Real
    /// messages need well under 8x their size; the slack covers small inputs.
    static func decodeBudget(inputBytes: Int) -> Int { (1 << 20) + 16 * inputBytes }
}

/// A message's protobuf-c descriptor. Opaque outside this module.
public struct WireDescriptor: @unchecked Sendable {
    // Safety: descriptors are immutable C globals with static lifetime.
    let raw: UnsafePointer<ProtobufCMessageDescriptor>

    /// The descriptor that `initFunction` (protoc-c's `foo__init`) stamps into a message.
    /// Taking it from an initialised message yields the real address of the C global.
    init<CMessage>(_ type: CMessage.Type, _ initFunction: (UnsafeMutablePointer<CMessage>?) -> Void) {
        let message = UnsafeMutablePointer<CMessage>.allocate(capacity: 1)
        defer { message.deallocate() }
        initFunction(message)
        // `ProtobufCMessage base` is the first member; its first member is the descriptor.
        raw = UnsafeRawPointer(message).load(as: UnsafePointer<ProtobufCMessageDescriptor>.self)
    }

    /// The fully qualified protobuf name, e.g. "tether.agent.v1.Hello".
    public var fullName: String { String(cString: raw.pointee.name) }
    /// The short name, e.g. "Hello".
    var shortName: String { String(cString: raw.pointee.short_name) }
}

extension WireMessage {
    /// The fully qualified protobuf name of the message, e.g. "tether.agent.v1.Hello".
    public static var protoName: String { wireDescriptor.fullName }

    /// Encodes the message in the protobuf binary format.
    /// - Throws: `WireError.embeddedNUL` if a string holds U+0000.
    public func serializedBytes() throws(WireError) -> [UInt8] {
        try serializedBytes(afterPrefix: 0)
    }

    /// Encodes the message in the protobuf binary format after `prefixLength` zero bytes,
    /// which the caller fills in (a gRPC length prefix, say) without copying the message.
    /// - Throws: `WireError.embeddedNUL` if a string holds U+0000.
    public func serializedBytes(afterPrefix prefixLength: Int) throws(WireError) -> [UInt8] {
        try withCMessage { cMessage in
            let size = protobuf_c_message_get_packed_size(cMessage)
            guard size + prefixLength > 0 else { return [] }
            return [UInt8](unsafeUninitializedCapacity: prefixLength + size) { buffer, count in
                buffer.baseAddress!.initialize(repeating: 0, count: prefixLength)
                count = prefixLength + protobuf_c_message_pack(cMessage, buffer.baseAddress! + prefixLength)
            }
        }
    }

    /// Decodes a message from protobuf binary bytes.
    /// - Parameter maxBytes: inputs longer than this are refused before parsing.
    /// - Throws: `WireError` for oversized input, malformed bytes or invalid strings.
    ///   Never traps; allocation is bounded by `WireLimits.decodeBudget`.
    public init(serializedBytes bytes: UnsafeRawBufferPointer,
                maxBytes: Int = WireLimits.defaultMaxMessageBytes) throws(WireError) {
        self = try Self.withDecoded(bytes, maxBytes: maxBytes) { (decoded) throws(WireError) in
            try Self(from: WireReader(message: decoded, descriptor: Self.wireDescriptor.raw))
        }
    }

    /// Builds the message as a C message and passes it to `body`. The C message and
    /// everything it points to are freed when `body` returns.
    /// - Throws: `WireError.embeddedNUL` if a string holds U+0000; whatever `body` throws.
    func withCMessage<R>(_ body: (UnsafePointer<ProtobufCMessage>) throws(WireError) -> R) throws(WireError) -> R {
        let arena = WireArena()
        let message = arena.newMessage(Self.wireDescriptor.raw)
        try write(to: WireWriter(arena: arena, message: message, descriptor: Self.wireDescriptor.raw))
        return try withExtendedLifetime(arena) { () throws(WireError) in
            try body(UnsafePointer(message.assumingMemoryBound(to: ProtobufCMessage.self)))
        }
    }

    /// Decodes `bytes` with protobuf-c into a C message of this type and passes it to
    /// `body`. The C message is freed when `body` returns.
    /// - Throws: `WireError` for oversized input, malformed bytes or a string holding
    ///   U+0000; whatever `body` throws.
    static func withDecoded<R>(_ bytes: UnsafeRawBufferPointer, maxBytes: Int,
                               _ body: (UnsafeRawPointer) throws(WireError) -> R) throws(WireError) -> R {
        let descriptor = wireDescriptor.raw
        guard bytes.count <= maxBytes else {
            throw .tooLarge(message: protoName, size: bytes.count, limit: maxBytes)
        }
        try WireStringScan.check(bytes, descriptor)
        var budget = DecodeBudget(limit: WireLimits.decodeBudget(inputBytes: bytes.count))
        let decoded: UnsafeMutablePointer<ProtobufCMessage>? = budget.withAllocator { allocator in
            protobuf_c_message_unpack(
                descriptor, allocator, bytes.count,
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyInput)
        }
        guard let decoded else {
            if budget.exceeded {
                throw .tooLarge(message: protoName, size: budget.requested, limit: budget.limit)
            }
            throw .malformed(message: protoName)
        }
        defer { budget.withAllocator { protobuf_c_message_free_unpacked(decoded, $0) } }
        return try body(UnsafeRawPointer(decoded))
    }

    /// Decodes a message from protobuf binary bytes; see `init(serializedBytes:maxBytes:)`.
    public init(serializedBytes bytes: [UInt8],
                maxBytes: Int = WireLimits.defaultMaxMessageBytes) throws(WireError) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(WireError) in try Self(serializedBytes: buffer, maxBytes: maxBytes) }
        }
        self = try result.get()
    }
}

/// protobuf-c wants a non-NULL input pointer even for zero bytes.
nonisolated(unsafe) private let emptyInput = UnsafePointer<UInt8>(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))

/// Caps what one decode may allocate, so a small input cannot make protobuf-c
/// allocate without bound. Used by one decode on one thread; a struct, so a decode
/// allocates nothing for it.
private struct DecodeBudget {
    let limit: Int
    private(set) var requested = 0
    private(set) var exceeded = false

    init(limit: Int) { self.limit = limit }

    /// Calls `body` with an allocator that charges this budget (reached through a pointer
    /// to it, valid for the call).
    mutating func withAllocator<R>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) -> R) -> R {
        withUnsafeMutablePointer(to: &self) { budget in
            var allocator = ProtobufCAllocator(alloc: budgetAlloc, free: budgetFree, allocator_data: UnsafeMutableRawPointer(budget))
            return body(&allocator)
        }
    }

    fileprivate mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        requested += size
        if requested > limit {
            exceeded = true
            return nil
        }
        return malloc(max(size, 1))
    }
}

private func budgetAlloc(_ data: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    guard let data else { return nil }
    return data.assumingMemoryBound(to: DecodeBudget.self).pointee.allocate(size)
}

private func budgetFree(_ data: UnsafeMutableRawPointer?, _ pointer: UnsafeMutableRawPointer?) {
    free(pointer)
}
