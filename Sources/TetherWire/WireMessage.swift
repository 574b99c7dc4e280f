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

    /// Stack memory an encode or decode uses for its C message before it allocates: a
    /// small message needs no allocation for it at all.
    static let scratchBytes = 1024
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
        var bytes: [UInt8] = []
        try withCMessage(Self.wireDescriptor.raw, write: { (writer) throws(WireError) in try write(to: writer) }) { cMessage in
            let size = protobuf_c_message_get_packed_size(cMessage)
            guard size + prefixLength > 0 else { return }
            bytes = [UInt8](unsafeUninitializedCapacity: prefixLength + size) { buffer, count in
                buffer.baseAddress!.initialize(repeating: 0, count: prefixLength)
                count = prefixLength + protobuf_c_message_pack(cMessage, buffer.baseAddress! + prefixLength)
            }
        }
        return bytes
    }

    /// Decodes a message from protobuf binary bytes.
    /// - Parameter maxBytes: inputs longer than this are refused before parsing.
    /// - Throws: `WireError` for oversized input, malformed bytes or invalid strings.
    ///   Never traps; allocation is bounded by `WireLimits.decodeBudget`.
    public init(serializedBytes bytes: UnsafeRawBufferPointer,
                maxBytes: Int = WireLimits.defaultMaxMessageBytes) throws(WireError) {
        var value = Self()
        try withDecodedMessage(bytes, Self.wireDescriptor.raw, maxBytes: maxBytes) { (decoded) throws(WireError) in
            value = try Self(from: WireReader(message: decoded, descriptor: Self.wireDescriptor.raw))
        }
        self = value
    }

    /// Decodes a message from protobuf binary bytes; see `init(serializedBytes:maxBytes:)`.
    public init(serializedBytes bytes: [UInt8],
                maxBytes: Int = WireLimits.defaultMaxMessageBytes) throws(WireError) {
        // `withUnsafeBytes` rethrows untyped errors, hence the failure carried out by hand.
        var value = Self()
        var failure: WireError?
        bytes.withUnsafeBytes { buffer in
            do throws(WireError) {
                value = try Self(serializedBytes: buffer, maxBytes: maxBytes)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        self = value
    }
}

// The C side of encoding and decoding is not generic: a message type's generic code that
// runs unspecialised (called from another module) would otherwise look up generic
// metadata (the scratch allocation's, a result's) on every message.

/// Builds a C message of `descriptor`'s type, has `write` fill it in, and passes it to
/// `body`. The C message and everything it points to are freed when `body` returns.
/// - Throws: whatever `write` or `body` throws (`WireError.embeddedNUL` if a string holds U+0000).
func withCMessage(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                  write: (WireWriter) throws(WireError) -> Void,
                  _ body: (UnsafePointer<ProtobufCMessage>) throws(WireError) -> Void) throws(WireError) {
    try withUnsafeTemporaryAllocation(byteCount: WireLimits.scratchBytes, alignment: 16) { (scratch) throws(WireError) in
        let arena = WireArena(scratch: scratch)
        let message = arena.newMessage(descriptor)
        try write(WireWriter(arena: arena, message: message, descriptor: descriptor))
        try withExtendedLifetime(arena) { () throws(WireError) in
            try body(UnsafePointer(message.assumingMemoryBound(to: ProtobufCMessage.self)))
        }
    }
}

/// Decodes `bytes` with protobuf-c into a C message of `descriptor`'s type and passes it
/// to `body`. The C message is freed when `body` returns.
/// - Throws: `WireError` for oversized input, malformed bytes or a string holding
///   U+0000; whatever `body` throws.
func withDecodedMessage(_ bytes: UnsafeRawBufferPointer, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                        maxBytes: Int, _ body: (UnsafeRawPointer) throws(WireError) -> Void) throws(WireError) {
    let protoName = { String(cString: descriptor.pointee.name) }
    guard bytes.count <= maxBytes else {
        throw .tooLarge(message: protoName(), size: bytes.count, limit: maxBytes)
    }
    try WireStringScan.check(bytes, descriptor)
    try withUnsafeTemporaryAllocation(byteCount: WireLimits.scratchBytes, alignment: 16) { (scratch) throws(WireError) in
        var budget = DecodeBudget(limit: WireLimits.decodeBudget(inputBytes: bytes.count), scratch: scratch)
        let decoded: UnsafeMutablePointer<ProtobufCMessage>? = budget.withAllocator { allocator in
            protobuf_c_message_unpack(
                descriptor, allocator, bytes.count,
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyInput)
        }
        guard let decoded else {
            if budget.exceeded {
                throw .tooLarge(message: protoName(), size: budget.requested, limit: budget.limit)
            }
            throw .malformed(message: protoName())
        }
        defer { budget.withAllocator { protobuf_c_message_free_unpacked(decoded, $0) } }
        try body(UnsafeRawPointer(decoded))
    }
}

/// protobuf-c wants a non-NULL input pointer even for zero bytes.
nonisolated(unsafe) private let emptyInput = UnsafePointer<UInt8>(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))

/// Caps what one decode may allocate, so a small input cannot make protobuf-c
/// allocate without bound. Used by one decode on one thread; a struct, so a decode
/// allocates nothing for it. Allocations are carved from `scratch` (stack memory of the
/// decode) while it lasts, and `malloc`ed after; freeing one from `scratch` does nothing.
private struct DecodeBudget {
    let limit: Int
    private(set) var requested = 0
    private(set) var exceeded = false
    private let scratch: UnsafeMutableRawBufferPointer
    private var scratchUsed = 0

    init(limit: Int, scratch: UnsafeMutableRawBufferPointer) {
        self.limit = limit
        self.scratch = scratch
    }

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
        let size = max(size, 1)
        let start = (scratchUsed + 15) & ~15
        if let base = scratch.baseAddress, start + size <= scratch.count {
            scratchUsed = start + size
            return base + start
        }
        return malloc(size)
    }

    fileprivate func release(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return }
        if let base = scratch.baseAddress, pointer >= base, pointer < base + scratch.count { return }
        free(pointer)
    }
}

private func budgetAlloc(_ data: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    guard let data else { return nil }
    return data.assumingMemoryBound(to: DecodeBudget.self).pointee.allocate(size)
}

private func budgetFree(_ data: UnsafeMutableRawPointer?, _ pointer: UnsafeMutableRawPointer?) {
    data?.assumingMemoryBound(to: DecodeBudget.self).pointee.release(pointer)
}
