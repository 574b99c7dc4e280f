/// What a `GroupCommitWriter` has done so far.
public struct GroupCommitStats: Sendable, Equatable, CustomStringConvertible {
    /// Batches run, each ending in one COMMIT (or a failed BEGIN/COMMIT).
    public private(set) var batches = 0
    /// Batches whose transaction failed, failing every change in them.
    public private(set) var failedBatches = 0
    /// Changes run, including ones that threw.
    public private(set) var changes = 0
    public private(set) var largestBatch = 0
    /// `batchSizeBuckets[i]` counts batches of `2^i ..< 2^(i+1)` changes.
    public private(set) var batchSizeBuckets: [Int] = []

    public init() {}

    public var meanBatchSize: Double { batches == 0 ? 0 : Double(changes) / Double(batches) }

    mutating func record(batchSize: Int, committed: Bool) {
        batches += 1
        if !committed { failedBatches += 1 }
        changes += batchSize
        largestBatch = max(largestBatch, batchSize)
        let bucket = Int.bitWidth - 1 - max(batchSize, 1).leadingZeroBitCount
        if batchSizeBuckets.count <= bucket {
            batchSizeBuckets += Array(repeating: 0, count: bucket + 1 - batchSizeBuckets.count)
        }
        batchSizeBuckets[bucket] += 1
    }

    /// e.g. "3 batches (0 failed), 1001 changes, batch size mean 333.7, max 512; sizes 1: 1, 256-511: 1, 512-1023: 1".
    public var description: String {
        let mean = (meanBatchSize * 10).rounded() / 10
        let sizes = batchSizeBuckets.enumerated().filter { $0.element > 0 }.map { bucket, count in
            let low = 1 << bucket, high = (1 << (bucket + 1)) - 1
            return low == high ? "\(low): \(count)" : "\(low)-\(high): \(count)"
        }
        return "\(batches) batches (\(failedBatches) failed), \(changes) changes, batch size mean \(mean), "
            + "max \(largestBatch); sizes \(sizes.joined(separator: ", "))"
    }
}

/// One batch of a `GroupCommitWriter`, as `observeBatches` reports it.
public struct GroupCommitBatch: Sendable, Equatable {
    /// Changes in the batch.
    public var size: Int
    /// From BEGIN to the end of COMMIT (with `synchronous = full`, the WAL fsync included),
    /// on the monotonic clock; completions not included.
    public var duration: Duration
    /// Whether the COMMIT succeeded (a change that threw alone does not fail the batch).
    public var committed: Bool

    public init(size: Int, duration: Duration, committed: Bool) {
        self.size = size
        self.duration = duration
        self.committed = committed
    }
}
