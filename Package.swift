// swift-tools-version:6.0
import PackageDescription

/// One set of Swift settings for every target: Swift 6 language mode (strict concurrency).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The transport (H2, GRPC) adds one setting: release builds skip Swift's run-time
/// exclusivity checks. Its per-call path touches many class properties on one loop thread,
/// and the checks (a thread-local access set per property access) cost ~12% of the server's
/// CPU per unary call (BENCHMARKS.md, "Exclusivity checks"). Debug builds, and so every
/// test run, keep them.
let transportSwiftSettings = swiftSettings + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "tether",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tether", targets: ["tether"]),
        .executable(name: "tether-echo", targets: ["tether-echo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // Metrics: swift-metrics is the instrument API, swift-prometheus the registry and the
        // text exposition behind /metrics. swift-log: the daemons' log lines (human or JSON).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System libraries: module.modulemap + shim.h only. apt packages in Scripts/bootstrap.
        .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c", providers: [.apt(["libprotobuf-c-dev"])]),
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // nodejs http_parser 2.9: HTTP/1.1 requests for the server's HTTP/1.1 connections (no .pc file).
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),

        // protoc-c output for Protos/, committed; Scripts/generate-protos rewrites it.
        .target(
            name: "TetherProtoC",
            dependencies: ["CProtobufC"],
            path: "Generated",
            publicHeadersPath: "."
        ),

        // Swift value types <-> protobuf bytes, through protobuf-c.
        .target(name: "TetherWire", dependencies: ["TetherProtoC", "CProtobufC"], swiftSettings: swiftSettings),
        // HTTP transport: event loop, sockets, TLS, nghttp2 sessions, HTTP/1.1 connections on the
        // same port. Knows nothing of Tether.
        .target(name: "H2", dependencies: ["CLinux", "CNGHTTP2", "COpenSSL", "CHTTPParser"], swiftSettings: transportSwiftSettings),
        // gRPC over HTTP/2: status, metadata, deadlines, 5-byte framing, server and client calls.
        .target(name: "GRPC", dependencies: ["H2", "TetherWire"], swiftSettings: transportSwiftSettings),
        // The orchestration plane: RPC handlers, auth, dashboard, metrics, health.
        .target(
            name: "TetherServer",
            dependencies: ["GRPC", "H2", "TetherWire", "TetherStore", "TetherScheduler", "TetherSchedulerSQLite", "TetherDAGFile", "TetherSyntax",
                           .product(name: "CoreMetrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            // The web dashboard's files, compiled into the binary (DashboardAssets).
            resources: ["index.html", "login.html", "login.js", "dashboard.js", "dashboard.css", "favicon.svg"]
                .map { .embedInCode("Dashboard/Assets/\($0)") },
            swiftSettings: swiftSettings
        ),
        // The execution plane: connection loop, task runner, local logs, durable event outbox.
        .target(
            name: "TetherAgent",
            dependencies: ["CLinux", "GRPC", "H2", "TetherWire", "TetherStore", "TetherSyntax", "TetherYAML",
                           .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // SQLite: connection, statements, transactions, migrations, group commit.
        .target(name: "TetherStore", dependencies: ["CLinux", "CSQLite"], swiftSettings: swiftSettings),
        // Domain core: DAG specs and versions, runs, task state, cron, retries, lease dispatcher.
        // Pure Swift over an injected clock and a store protocol; no C, no I/O.
        .target(name: "TetherScheduler", dependencies: ["TetherSyntax"], swiftSettings: swiftSettings),
        // Names and durations as Tether's files, flags and APIs write them: one rule each.
        .target(name: "TetherSyntax", swiftSettings: swiftSettings),
        // How YAML readers (DAG files, agent configs) explain a problem.
        .target(name: "TetherYAML", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: swiftSettings),
        // The scheduler's state in SQLite: the SchedulerStore the server runs on.
        .target(name: "TetherSchedulerSQLite", dependencies: ["TetherScheduler", "TetherStore"], swiftSettings: swiftSettings),
        // DAG files: YAML -> TetherScheduler.DAGSpec, with errors naming file, line, task and field.
        .target(
            name: "TetherDAGFile",
            dependencies: ["TetherScheduler", "TetherSyntax", "TetherYAML", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "tether",
            dependencies: [
                "TetherWire", "H2", "GRPC", "TetherStore", "TetherServer", "TetherAgent", "TetherScheduler", "TetherDAGFile", "TetherSyntax",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["BuildInfoPlugin"]
        ),
        // The echo service on our transport, for interop tests and benchmarks.
        .target(name: "TetherEcho", dependencies: ["GRPC", "TetherWire"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "tether-echo",
            dependencies: ["GRPC", "H2", "TetherEcho", "TetherWire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        // kill -9 torture tests and benchmarks for the store and the scheduler; swarms of agents.
        .executableTarget(
            name: "tether-torture",
            dependencies: [
                "TetherStore", "TetherScheduler", "TetherSchedulerSQLite", "GRPC", "H2", "TetherWire", "TetherAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The DAG file reader under libFuzzer (Scripts/fuzz dagfile); a plain build replays inputs.
        .executableTarget(name: "tether-fuzz-dagfile", dependencies: ["TetherDAGFile"], swiftSettings: swiftSettings),
        // HTTP/1.1 request parsing under libFuzzer (Scripts/fuzz http1); a plain build replays inputs.
        .executableTarget(name: "tether-fuzz-http1", dependencies: ["H2"], swiftSettings: swiftSettings),
        // Writes TetherWire's Swift from Protos/ (Scripts/generate-protos); no dependencies.
        .executableTarget(name: "tether-protogen", swiftSettings: swiftSettings),
        // Writes the git commit into the executable at build time.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),

        // Test support: locating the repository, running the project's Python venv.
        .target(name: "TetherTestSupport", path: "Tests/TetherTestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "TetherWireTests",
            dependencies: ["TetherWire", "TetherTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "H2Tests", dependencies: ["H2", "COpenSSL", "TetherTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "GRPCTests", dependencies: ["GRPC", "H2", "TetherEcho", "TetherWire", "TetherTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "TetherAgentTests", dependencies: ["TetherAgent", "TetherServer", "GRPC", "H2", "TetherStore", "TetherWire", "TetherSyntax", "TetherTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TetherServerTests",
            dependencies: ["TetherServer", "GRPC", "H2", "TetherWire", "TetherScheduler", "TetherTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TetherStoreTests", dependencies: ["TetherStore", "TetherTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TetherSchedulerTests",
            dependencies: ["TetherScheduler", "TetherSchedulerSQLite", "TetherDAGFile", "TetherStore", "TetherSyntax", "TetherTestSupport"],
            swiftSettings: swiftSettings
        ),
        // Runs the built `tether` binary as a user would.
        .testTarget(name: "TetherCLITests", dependencies: ["GRPC", "H2", "TetherWire", "TetherTestSupport"], swiftSettings: swiftSettings),
    ]
)
