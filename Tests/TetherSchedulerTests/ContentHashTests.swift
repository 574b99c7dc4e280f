import Testing
import TetherScheduler

/// FIPS 180-2 appendix B vectors.
@Suite struct ContentHashSHA256Tests {
    @Test func emptyMessage() {
        #expect(SHA256.hexDigest(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func oneBlockMessageABC() {
        #expect(SHA256.hexDigest(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func twoBlockMessageOf448Bits() {
        let message = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hexDigest(of: message) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func oneMillionAsFedInUnevenPieces() {
        var hasher = SHA256()
        var remaining = 1_000_000
        var piece = 1
        while remaining > 0 {
            let size = min(piece, remaining)
            hasher.update(repeatElement(UInt8(ascii: "a"), count: size))
            remaining -= size
            piece = piece % 997 + 13
        }
        let digest = hasher.finalize().map { byte in String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }
        #expect(digest.joined() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite struct ContentHashTests {
    static func sample() -> DAGSpec {
        DAGSpec(
            dagID: "nightly_etl", description: "ETL", schedule: "@daily",
            params: ["region": "eu", "day": "today"],
            tasks: [
                TaskSpec(id: "extract", entrypoint: "extract"),
                TaskSpec(id: "clean", entrypoint: "clean", dependsOn: ["extract"], params: ["a": "1", "b": "2"]),
                TaskSpec(id: "load", entrypoint: "load", queue: "gpu", dependsOn: ["extract", "clean"]),
            ]
        )
    }

    @Test func hashIsSixtyFourLowercaseHexCharacters() {
        let hash = Self.sample().contentHash
        #expect(hash.count == 64)
        #expect(hash.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test func identicalSpecsHashIdentically() {
        #expect(Self.sample().contentHash == Self.sample().contentHash)
    }

    @Test func taskOrderDependencyOrderAndParamOrderDoNotChangeTheHash() {
        var reordered = Self.sample()
        reordered.tasks.reverse()
        reordered.tasks[0].dependsOn.reverse()
        // Rebuilt maps insert keys in another order; the encoding sorts them.
        reordered.params = Dictionary(uniqueKeysWithValues: reordered.params.sorted { $0.key > $1.key })
        #expect(reordered.contentHash == Self.sample().contentHash)
    }

    @Test func defaultsWrittenOutExplicitlyDoNotChangeTheHash() {
        let implicit = DAGSpec(dagID: "d", tasks: [TaskSpec(id: "t", entrypoint: "e")])
        let explicit = DAGSpec(
            dagID: "d", description: "", schedule: "", paused: false, maxActiveRuns: 16, maxActiveTasks: 0, params: [:],
            tasks: [TaskSpec(id: "t", entrypoint: "e", queue: "default", dependsOn: [], triggerRule: .allSuccess,
                             retry: RetryPolicy(retries: 0, delayMilliseconds: 0), executionTimeoutMilliseconds: nil, priority: 0)]
        )
        #expect(implicit.contentHash == explicit.contentHash)
    }

    @Test func everySemanticFieldChangesTheHash() {
        let base = Self.sample()
        let changes: [(String, (inout DAGSpec) -> Void)] = [
            ("dag_id", { $0.dagID = "other" }),
            ("description", { $0.description = "ETL!" }),
            ("schedule", { $0.schedule = "@hourly" }),
            ("paused", { $0.paused = true }),
            ("max_active_runs", { $0.maxActiveRuns = 3 }),
            ("max_active_tasks", { $0.maxActiveTasks = 3 }),
            ("params value", { $0.params["region"] = "us" }),
            ("params key", { $0.params["extra"] = "" }),
            ("task added", { $0.tasks.append(TaskSpec(id: "z", entrypoint: "z")) }),
            ("task id", { $0.tasks[0].id = "extract2" }),
            ("entrypoint", { $0.tasks[0].entrypoint = "other" }),
            ("queue", { $0.tasks[0].queue = "cpu" }),
            ("depends_on", { $0.tasks[2].dependsOn = ["clean"] }),
            ("trigger_rule", { $0.tasks[0].triggerRule = .allDone }),
            ("retries", { $0.tasks[0].retry.retries = 1 }),
            ("retry_delay", { $0.tasks[0].retry.delayMilliseconds = 1 }),
            ("retry_exponential_backoff", { $0.tasks[0].retry.exponentialBackoff = true }),
            ("max_retry_delay", { $0.tasks[0].retry.maxDelayMilliseconds = 1 }),
            ("execution_timeout", { $0.tasks[0].executionTimeoutMilliseconds = 86_400_000 }),
            ("priority", { $0.tasks[0].priority = -1 }),
            ("task params", { $0.tasks[1].params["a"] = "2" }),
        ]
        var seen: Set<String> = [base.contentHash]
        for (name, change) in changes {
            var changed = base
            change(&changed)
            #expect(seen.insert(changed.contentHash).inserted, "changing \(name) kept an earlier hash")
        }
    }

    @Test func lengthPrefixesKeepAdjacentStringsApart() {
        // Without length prefixes these two would encode the same concatenated bytes.
        let a = DAGSpec(dagID: "ab", description: "c", tasks: [TaskSpec(id: "t", entrypoint: "e")])
        let b = DAGSpec(dagID: "a", description: "bc", tasks: [TaskSpec(id: "t", entrypoint: "e")])
        #expect(a.contentHash != b.contentHash)
        let p = DAGSpec(dagID: "d", params: ["k": "v1"], tasks: [TaskSpec(id: "t", entrypoint: "e")])
        let q = DAGSpec(dagID: "d", params: ["k": "v", "1": ""], tasks: [TaskSpec(id: "t", entrypoint: "e")])
        #expect(p.contentHash != q.contentHash)
    }

    @Test func canonicalEncodingIsPinnedSoStoredHashesStayValid() {
        // If this fails the encoding changed: bump its version prefix instead of editing the
        // expected value, or every stored DAG version looks changed on the next apply.
        let spec = DAGSpec(dagID: "d", tasks: [TaskSpec(id: "t", entrypoint: "e")])
        #expect(spec.canonicalEncoding.starts(with: Array("tether.dagspec.v1\u{0}".utf8)))
        #expect(spec.contentHash == Self.pinnedHash)
    }

    /// Computed from the documented layout by an independent Python script.
    static let pinnedHash = "ef98bfd75390195b0543d68c60666e73136995eccb9d339954f963c72ae8c918"
}
