internal import CProtobufC
internal import TetherProtoC
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// Owns every C allocation made while building one message for encoding and frees
/// them all together. Single-threaded; lives for one `serializedBytes()` call.
///
/// Allocations are carved from `scratch` (memory the caller owns for the arena's life,
/// usually on the stack) while it lasts, so a small message costs no `calloc`; the rest
/// are separate blocks.
final class WireArena {
    private let scratch: UnsafeMutableRawBufferPointer
    private var scratchUsed = 0
    private var blocks: [UnsafeMutableRawPointer] = []

    init(scratch: UnsafeMutableRawBufferPointer) {
        self.scratch = scratch
    }

    deinit {
        for block in blocks { free(block) }
    }

    /// Zeroed memory that lives as long as the arena, aligned for any C field.
    func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        let size = max(size, 1)
        let start = (scratchUsed + 15) & ~15
        if let base = scratch.baseAddress, start + size <= scratch.count {
            scratchUsed = start + size
            let memory = base + start
            memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            return memory
        }
        guard let block = calloc(1, size) else { fatalError("out of memory (\(size) bytes)") }
        blocks.append(block)
        return block
    }

    /// An empty C message of the descriptor's type, initialised by its `message_init`.
    func newMessage(_ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> UnsafeMutableRawPointer {
        let message = allocate(descriptor.pointee.sizeof_message)
        descriptor.pointee.message_init(message.assumingMemoryBound(to: ProtobufCMessage.self))
        return message
    }

    /// A NUL-terminated copy of `utf8`.
    func cString(_ utf8: String.UTF8View) -> UnsafeMutablePointer<CChar> {
        let count = utf8.count
        let block = allocate(count + 1)
        UnsafeMutableRawBufferPointer(start: block, count: count).copyBytes(from: utf8)
        return block.assumingMemoryBound(to: CChar.self)
    }

    /// An array of `count` elements of `stride` bytes each.
    func array(count: Int, stride: Int) -> UnsafeMutableRawPointer {
        allocate(count * stride)
    }
}
