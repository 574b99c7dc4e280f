// The gRPC message framing (gRPC PROTOCOL-HTTP2, *Length-Prefixed-Message*): each message
// is sent as a 1-byte compressed flag, a 4-byte big-endian length, then the message bytes.
// DATA frame boundaries have no relation to message boundaries.
//
// We send and accept only uncompressed (`identity`) messages, so the flag written is 0.

/// Writes length-prefixed messages. A value type with no state but its limit; use from any
/// thread.
public struct GRPCMessageFramer: Sendable {
    /// Bytes before each message: the compressed flag and the 4-byte length.
    public static let prefixLength = 5

    /// The largest message this framer writes; at most `UInt32.max`, which the 4-byte
    /// length field can express.
    public let maxMessageBytes: Int

    /// A framer refusing messages longer than `maxMessageBytes` (clamped to
    /// 0 ... `UInt32.max`; the default is that maximum).
    public init(maxMessageBytes: Int = Int(UInt32.max)) {
        self.maxMessageBytes = min(max(maxMessageBytes, 0), Int(UInt32.max))
    }

    /// Appends the prefix and `message` to `buffer` (one copy of the message, no other
    /// allocation once `buffer` has the capacity).
    /// - Throws: RESOURCE_EXHAUSTED if `message` is longer than ``maxMessageBytes``;
    ///   `buffer` is then unchanged.
    public func frame(_ message: UnsafeRawBufferPointer, into buffer: inout [UInt8]) throws(GRPCStatus) {
        try checkLength(message.count)
        Self.appendPrefix(length: message.count, to: &buffer)
        buffer.append(contentsOf: message)
    }

    /// Appends the prefix and `message` to `buffer`.
    /// - Throws: RESOURCE_EXHAUSTED if `message` is longer than ``maxMessageBytes``.
    public func frame(_ message: [UInt8], into buffer: inout [UInt8]) throws(GRPCStatus) {
        try checkLength(message.count)
        Self.appendPrefix(length: message.count, to: &buffer)
        buffer.append(contentsOf: message)
    }

    private func checkLength(_ count: Int) throws(GRPCStatus) {
        guard count <= maxMessageBytes else {
            throw GRPCStatus(
                code: .resourceExhausted,
                message: "message of \(count) bytes is larger than the send limit of \(maxMessageBytes) bytes"
            )
        }
    }

    /// No `reserveCapacity` here: it allocates exactly what is asked, so reserving per message
    /// while appending many to one buffer would reallocate every time; `append` grows
    /// geometrically.
    private static func appendPrefix(length: Int, to buffer: inout [UInt8]) {
        let length = UInt32(length)
        buffer.append(0)
        buffer.append(UInt8(truncatingIfNeeded: length >> 24))
        buffer.append(UInt8(truncatingIfNeeded: length >> 16))
        buffer.append(UInt8(truncatingIfNeeded: length >> 8))
        buffer.append(UInt8(truncatingIfNeeded: length))
    }

    /// `buffer` framed in place: its first ``prefixLength`` bytes, left free by
    /// `WireMessage.serializedBytes(afterPrefix:)`, get the prefix of the message after them,
    /// which is not copied.
    /// - Throws: RESOURCE_EXHAUSTED if that message is longer than ``maxMessageBytes``.
    public func frame(prefixed buffer: consuming [UInt8]) throws(GRPCStatus) -> [UInt8] {
        precondition(buffer.count >= Self.prefixLength, "no room for the prefix")
        let length = buffer.count - Self.prefixLength
        try checkLength(length)
        var buffer = buffer
        buffer.withUnsafeMutableBufferPointer { bytes in
            bytes[0] = 0
            bytes[1] = UInt8(truncatingIfNeeded: length >> 24)
            bytes[2] = UInt8(truncatingIfNeeded: length >> 16)
            bytes[3] = UInt8(truncatingIfNeeded: length >> 8)
            bytes[4] = UInt8(truncatingIfNeeded: length)
        }
        return buffer
    }

    /// `message` with its prefix, as a new array.
    /// - Throws: RESOURCE_EXHAUSTED if `message` is longer than ``maxMessageBytes``.
    public func frame(_ message: [UInt8]) throws(GRPCStatus) -> [UInt8] {
        try checkLength(message.count)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.prefixLength + message.count)
        Self.appendPrefix(length: message.count, to: &buffer)
        buffer.append(contentsOf: message)
        return buffer
    }
}

/// Reads length-prefixed messages from a stream's DATA, incrementally.
///
/// Feed each DATA payload to ``append(_:)`` as it arrives, in any chunking, then call
/// ``next()`` until it returns `nil`. At end of stream, ``hasPartialMessage`` says whether
/// the peer stopped in the middle of a message (answer INTERNAL). A value type: one per
/// stream, used by one thread at a time.
///
/// Memory: bytes are buffered only as they arrive — the announced length is checked against
/// ``maxMessageBytes`` as soon as the 5-byte prefix is complete, and nothing is reserved for
/// it, so a peer announcing 4 GiB costs nothing. Consumed bytes are dropped without
/// re-copying the whole buffer per chunk (amortised O(1) per byte), and a large buffer is
/// released once it drains.
public struct GRPCMessageDeframer: Sendable {
    /// 4 MiB, gRPC's customary default receive limit.
    public static let defaultMaxMessageBytes = 4 * 1024 * 1024

    /// The largest message accepted.
    public let maxMessageBytes: Int

    private enum State: Sendable {
        /// Between messages: the next bytes are a prefix.
        case awaitingPrefix
        /// A prefix announced a message of `length` bytes; waiting for all of them.
        case awaitingMessage(length: Int)
        /// Failed for good; every later ``next()`` throws the same status.
        case failed(GRPCStatus)
    }

    private var state = State.awaitingPrefix
    /// Received bytes; those before `readIndex` are consumed.
    private var storage: [UInt8] = []
    private var readIndex = 0

    /// Capacity kept for reuse when the buffer drains; anything larger is freed, so a stream
    /// that once carried a big message does not hold its buffer for life.
    private static let retainedCapacity = 64 * 1024

    /// A deframer accepting messages of up to `maxMessageBytes` bytes.
    public init(maxMessageBytes: Int = defaultMaxMessageBytes) {
        self.maxMessageBytes = max(maxMessageBytes, 0)
    }

    /// Buffers the next bytes of the stream (copies them; `bytes` may be reused afterwards).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        if case .failed = state { return }
        // Drop consumed bytes once they are at least half the buffer: each move of a byte is
        // paid for by a consumed byte, so the total copying stays linear.
        if readIndex > 0, readIndex * 2 >= storage.count {
            storage.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        storage.append(contentsOf: bytes)
    }

    /// Takes the next bytes of the stream and hands each message they complete to `deliver`,
    /// in order: the same as ``append(_:)`` and then ``next()`` until `nil`, but a message
    /// that arrives whole in `bytes` while nothing is buffered is copied once, straight out
    /// of `bytes`, and never buffered.
    /// - Throws: as ``next()``, after delivering the messages before the failure.
    public mutating func append(_ bytes: UnsafeRawBufferPointer, delivering deliver: ([UInt8]) -> Void) throws(GRPCStatus) {
        var rest = bytes
        while readIndex == storage.count, case .awaitingPrefix = state, rest.count >= GRPCMessageFramer.prefixLength {
            let flag = rest[0]
            let length = Int(rest[1]) << 24 | Int(rest[2]) << 16 | Int(rest[3]) << 8 | Int(rest[4])
            if let status = Self.refusal(flag: flag, length: length, maxMessageBytes: maxMessageBytes) {
                fail(status)
                throw status
            }
            let end = GRPCMessageFramer.prefixLength + length
            guard rest.count >= end else { break }
            deliver(Array(rest[GRPCMessageFramer.prefixLength..<end]))
            rest = UnsafeRawBufferPointer(rebasing: rest[end...])
        }
        append(rest)
        while let message = try next() { deliver(message) }
    }

    /// Buffers the next bytes of the stream.
    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The next complete message, or `nil` if more bytes are needed.
    /// - Throws: a ``GRPCStatus`` to end the call with, and the same one on every later call:
    ///   - RESOURCE_EXHAUSTED when a prefix announces more than ``maxMessageBytes``;
    ///   - UNIMPLEMENTED when the compressed flag is 1. We accept only `identity` and the
    ///     request was already refused if it named another `grpc-encoding`, so a set flag
    ///     means compression we do not implement. (grpc-go answers INTERNAL here, treating
    ///     it as a protocol violation; UNIMPLEMENTED tells the client what to change.)
    ///   - INTERNAL when the flag is neither 0 nor 1 (a corrupt stream).
    public mutating func next() throws(GRPCStatus) -> [UInt8]? {
        while true {
            switch state {
            case .failed(let status):
                throw status
            case .awaitingPrefix:
                guard storage.count - readIndex >= GRPCMessageFramer.prefixLength else { return nil }
                let flag = storage[readIndex]
                let length = Int(storage[readIndex + 1]) << 24 | Int(storage[readIndex + 2]) << 16
                    | Int(storage[readIndex + 3]) << 8 | Int(storage[readIndex + 4])
                if let status = Self.refusal(flag: flag, length: length, maxMessageBytes: maxMessageBytes) {
                    fail(status)
                    throw status
                }
                readIndex += GRPCMessageFramer.prefixLength
                state = .awaitingMessage(length: length)
            case .awaitingMessage(let length):
                guard storage.count - readIndex >= length else { return nil }
                let message = Array(storage[readIndex..<readIndex + length])
                readIndex += length
                state = .awaitingPrefix
                if readIndex == storage.count { releaseConsumed() }
                return message
            }
        }
    }

    /// Whether the bytes buffered so far end inside a message (a prefix or its body).
    /// Ask after ``next()`` returned `nil`: then `true` at end of stream means the last
    /// message was truncated, which gRPC implementations answer with INTERNAL. `false` after
    /// a failure.
    public var hasPartialMessage: Bool {
        switch state {
        case .failed: false
        case .awaitingMessage: true
        case .awaitingPrefix: readIndex < storage.count
        }
    }

    /// Bytes buffered and not yet returned (prefix included). For tests and diagnostics.
    var bufferedByteCount: Int { storage.count - readIndex }

    /// Capacity of the buffer, to check that nothing is reserved ahead of the bytes.
    var bufferCapacity: Int { storage.capacity }

    private static func refusal(flag: UInt8, length: Int, maxMessageBytes: Int) -> GRPCStatus? {
        switch flag {
        case 0:
            break
        case 1:
            return GRPCStatus(
                code: .unimplemented,
                message: "compressed message received, but only identity encoding is supported"
            )
        default:
            return GRPCStatus(code: .internal, message: "invalid compressed flag \(flag) in message prefix")
        }
        guard length <= maxMessageBytes else {
            return GRPCStatus(
                code: .resourceExhausted,
                message: "message of \(length) bytes is larger than the limit of \(maxMessageBytes) bytes"
            )
        }
        return nil
    }

    private mutating func fail(_ status: GRPCStatus) {
        state = .failed(status)
        storage = []
        readIndex = 0
    }

    private mutating func releaseConsumed() {
        if storage.capacity > Self.retainedCapacity {
            storage = []
        } else {
            storage.removeAll(keepingCapacity: true)
        }
        readIndex = 0
    }
}
