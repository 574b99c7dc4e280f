import Testing
import TetherTestSupport
@testable import GRPC

@Suite struct GRPCMessageFramingTests {
    /// Feeds `bytes` in the given chunk sizes, draining messages after each chunk.
    static func deframe(_ bytes: [UInt8], chunks: [Int], into deframer: inout GRPCMessageDeframer) throws(GRPCStatus) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var offset = 0
        for size in chunks {
            let end = min(offset + size, bytes.count)
            bytes[offset..<end].withUnsafeBytes { deframer.append($0) }
            offset = end
            while let message = try deframer.next() { messages.append(message) }
        }
        return messages
    }

    @Test func framedMessageHasFlagZeroAndBigEndianLength() throws {
        let framed = try GRPCMessageFramer().frame([0xAA, 0xBB, 0xCC])
        #expect(framed == [0, 0, 0, 0, 3, 0xAA, 0xBB, 0xCC])
        #expect(try GRPCMessageFramer().frame([]) == [0, 0, 0, 0, 0])
        let big = try GRPCMessageFramer().frame([UInt8](repeating: 7, count: 0x01_02_03))
        #expect(Array(big.prefix(5)) == [0, 0, 0x01, 0x02, 0x03])
    }

    @Test func framingAppendsToAnExistingBuffer() throws {
        var buffer: [UInt8] = [9]
        try GRPCMessageFramer().frame([1], into: &buffer)
        try [UInt8]([2, 3]).withUnsafeBytes { bytes in try GRPCMessageFramer().frame(bytes, into: &buffer) }
        #expect(buffer == [9, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 2, 2, 3])
    }

    @Test func framingAMessageOverTheSendLimitFailsWithResourceExhausted() {
        var buffer: [UInt8] = [1]
        let framer = GRPCMessageFramer(maxMessageBytes: 4)
        #expect(throws: GRPCStatus.self) { try framer.frame([1, 2, 3, 4, 5], into: &buffer) }
        #expect(buffer == [1])
        do {
            _ = try framer.frame([1, 2, 3, 4, 5])
        } catch {
            #expect(error.code == .resourceExhausted)
        }
        #expect(GRPCMessageFramer(maxMessageBytes: .max).maxMessageBytes == Int(UInt32.max))
    }

    @Test func framingInPlaceFillsThePrefixLeftBeforeTheMessage() throws {
        let framer = GRPCMessageFramer(maxMessageBytes: 4)
        #expect(try framer.frame(prefixed: [9, 9, 9, 9, 9, 1, 2, 3]) == framer.frame([1, 2, 3]))
        #expect(try framer.frame(prefixed: [0, 0, 0, 0, 0]) == [0, 0, 0, 0, 0])
        do {
            _ = try framer.frame(prefixed: [0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
            Issue.record("a message over the limit was framed")
        } catch {
            #expect(error.code == .resourceExhausted)
        }
    }

    @Test func deliveringAppendYieldsWhatAppendAndNextYield() throws {
        var generator = SplitMix64(seed: 0xFACADE)
        for _ in 0..<200 {
            let messages: [[UInt8]] = (0..<Int.random(in: 0...20, using: &generator)).map { _ in
                (0..<Int.random(in: 0...(Bool.random(using: &generator) ? 16 : 3000), using: &generator)).map { _ in
                    UInt8.random(in: .min ... .max, using: &generator)
                }
            }
            var stream: [UInt8] = []
            for message in messages { try GRPCMessageFramer().frame(message, into: &stream) }
            var deframer = GRPCMessageDeframer(maxMessageBytes: 3000)
            var received: [[UInt8]] = []
            var offset = 0
            while offset < stream.count {
                // Whole messages, several at once, and cuts anywhere, prefixes included.
                let end = min(stream.count, offset + Int.random(in: 1...(Bool.random(using: &generator) ? 9 : 8000), using: &generator))
                try stream[offset..<end].withUnsafeBytes { bytes in
                    try deframer.append(bytes) { received.append($0) }
                }
                offset = end
            }
            #expect(received == messages)
            #expect(!deframer.hasPartialMessage)
        }
    }

    @Test func deliveringAppendHandsOverTheMessagesBeforeAFailure() throws {
        var stream: [UInt8] = []
        try GRPCMessageFramer().frame([1], into: &stream)
        try GRPCMessageFramer().frame([2, 2], into: &stream)
        stream += [1, 0, 0, 0, 1, 3]   // compressed
        var deframer = GRPCMessageDeframer()
        var received: [[UInt8]] = []
        do {
            try stream.withUnsafeBytes { bytes in try deframer.append(bytes) { received.append($0) } }
            Issue.record("a compressed message was accepted")
        } catch let error as GRPCStatus {
            #expect(error.code == .unimplemented)
        }
        #expect(received == [[1], [2, 2]])
        #expect(throws: GRPCStatus.self) { try deframer.next() }
    }

    @Test func deframerFedOneByteAtATimeYieldsEachMessage() throws {
        let messages: [[UInt8]] = [[1, 2, 3], [], [4], Array(repeating: 5, count: 300)]
        var stream: [UInt8] = []
        for message in messages { try GRPCMessageFramer().frame(message, into: &stream) }
        var deframer = GRPCMessageDeframer()
        var received: [[UInt8]] = []
        for byte in stream {
            deframer.append([byte])
            while let message = try deframer.next() { received.append(message) }
        }
        #expect(received == messages)
        #expect(!deframer.hasPartialMessage)
    }

    @Test func manyMessagesInOneChunkAreAllYielded() throws {
        var stream: [UInt8] = []
        for i in 0..<1000 { try GRPCMessageFramer().frame([UInt8(i % 256), UInt8(i / 256)], into: &stream) }
        var deframer = GRPCMessageDeframer()
        deframer.append(stream)
        var count = 0
        while let message = try deframer.next() {
            #expect(message == [UInt8(count % 256), UInt8(count / 256)])
            count += 1
        }
        #expect(count == 1000)
        #expect(!deframer.hasPartialMessage)
        #expect(deframer.bufferedByteCount == 0)
    }

    @Test func fourGiBLengthPrefixIsRejectedBeforeBufferingIt() {
        var deframer = GRPCMessageDeframer()
        deframer.append([0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3])
        #expect(deframer.bufferCapacity < 1024)
        do {
            _ = try deframer.next()
            Issue.record("a 4 GiB message was not refused")
        } catch {
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("4294967295"))
        }
        #expect(deframer.bufferCapacity < 1024)
        #expect(deframer.bufferedByteCount == 0)
    }

    @Test func oversizedPrefixIsRejectedAsSoonAsItsFifthByteArrives() {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 10)
        deframer.append([0, 0, 0, 0])
        #expect(throws: Never.self) { try deframer.next() }
        deframer.append([11])
        #expect(throws: GRPCStatus.self) { try deframer.next() }
    }

    @Test func messageExactlyAtTheLimitIsAccepted() throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 16)
        deframer.append(try GRPCMessageFramer().frame([UInt8](repeating: 1, count: 16)))
        #expect(try deframer.next()?.count == 16)
        deframer.append(try GRPCMessageFramer().frame([UInt8](repeating: 1, count: 17)))
        #expect(throws: GRPCStatus.self) { try deframer.next() }
    }

    @Test func defaultLimitIsFourMiB() throws {
        var deframer = GRPCMessageDeframer()
        #expect(deframer.maxMessageBytes == 4 * 1024 * 1024)
        deframer.append([0, 0x00, 0x40, 0x00, 0x00])  // exactly 4 MiB: accepted, waits for the body
        #expect(try deframer.next() == nil)
        #expect(deframer.hasPartialMessage)
        var over = GRPCMessageDeframer()
        over.append([0, 0x00, 0x40, 0x00, 0x01])
        #expect(throws: GRPCStatus.self) { try over.next() }
    }

    @Test func compressedFlagIsRejectedWithUnimplemented() {
        var deframer = GRPCMessageDeframer()
        deframer.append([1, 0, 0, 0, 1, 0x42])
        do {
            _ = try deframer.next()
            Issue.record("compressed message accepted")
        } catch {
            #expect(error.code == .unimplemented)
        }
    }

    @Test func undefinedFlagValueIsRejectedWithInternal() {
        var deframer = GRPCMessageDeframer()
        deframer.append([2, 0, 0, 0, 0])
        do {
            _ = try deframer.next()
            Issue.record("flag 2 accepted")
        } catch {
            #expect(error.code == .internal)
        }
    }

    @Test func failureIsStickyAndLaterBytesAreIgnored() {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 1)
        deframer.append([0, 0, 0, 0, 2])
        #expect(throws: GRPCStatus.self) { try deframer.next() }
        deframer.append([0, 0, 0, 0, 0])
        #expect(throws: GRPCStatus.self) { try deframer.next() }
        #expect(deframer.bufferedByteCount == 0)
        #expect(!deframer.hasPartialMessage)
    }

    @Test func truncatedMessageIsDetectedAtEndOfStream() throws {
        let framed = try GRPCMessageFramer().frame([1, 2, 3, 4])
        for cut in 1..<framed.count {
            var deframer = GRPCMessageDeframer()
            deframer.append(Array(framed.prefix(cut)))
            #expect(try deframer.next() == nil)
            #expect(deframer.hasPartialMessage, "cut at \(cut)")
        }
        var whole = GRPCMessageDeframer()
        #expect(!whole.hasPartialMessage)
        whole.append(framed)
        #expect(try whole.next() == [1, 2, 3, 4])
        #expect(try whole.next() == nil)
        #expect(!whole.hasPartialMessage)
    }

    @Test func emptyMessageIsYielded() throws {
        var deframer = GRPCMessageDeframer()
        deframer.append([0, 0, 0, 0, 0])
        #expect(try deframer.next() == [])
        #expect(try deframer.next() == nil)
    }

    @Test func randomMessagesSplitAtRandomBoundariesDeframeIdentically() throws {
        var generator = SplitMix64(seed: 0xC0FFEE)
        for _ in 0..<200 {
            let messages: [[UInt8]] = (0..<Int.random(in: 0...30, using: &generator)).map { _ in
                let size = Bool.random(using: &generator) ? Int.random(in: 0...16, using: &generator) : Int.random(in: 0...5000, using: &generator)
                return (0..<size).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            }
            var stream: [UInt8] = []
            for message in messages { try GRPCMessageFramer().frame(message, into: &stream) }
            var chunks: [Int] = []
            var remaining = stream.count
            while remaining > 0 {
                let size = min(remaining, Int.random(in: 1...(Bool.random(using: &generator) ? 7 : 3000), using: &generator))
                chunks.append(size)
                remaining -= size
            }
            var deframer = GRPCMessageDeframer(maxMessageBytes: 5000)
            #expect(try Self.deframe(stream, chunks: chunks, into: &deframer) == messages)
            #expect(!deframer.hasPartialMessage)
        }
    }

    @Test func bufferDoesNotGrowWithTheStreamWhenMessagesAreDrained() throws {
        var stream: [UInt8] = []
        for _ in 0..<64 { try GRPCMessageFramer().frame([UInt8](repeating: 3, count: 1000), into: &stream) }
        var deframer = GRPCMessageDeframer()
        var received = 0
        for _ in 0..<50 {
            // 7-byte chunks never align with the 1005-byte frames, so bytes are always left over.
            received += try Self.deframe(stream, chunks: Array(repeating: 7, count: stream.count / 7 + 1), into: &deframer).count
        }
        #expect(received == 64 * 50)
        #expect(deframer.bufferCapacity < 8 * 1024)
    }

    @Test func largeBufferIsReleasedOnceDrained() throws {
        var deframer = GRPCMessageDeframer()
        deframer.append(try GRPCMessageFramer().frame([UInt8](repeating: 1, count: 1 << 20)))
        #expect(try deframer.next()?.count == 1 << 20)
        #expect(deframer.bufferCapacity < 64 * 1024 + 1)
    }
}
