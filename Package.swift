// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-kafka-jobs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gateway", targets: ["Gateway"]),
        .executable(name: "worker", targets: ["Worker"]),
        .executable(name: "jobs-bench", targets: ["JobsBench"]),
        .library(name: "JobsWorker", targets: ["JobsWorker"]),
        .library(name: "JobsCore", targets: ["JobsCore"]),
        .library(name: "KafkaClient", targets: ["KafkaClient"]),
        .library(name: "JobsGateway", targets: ["JobsGateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // librdkafka from Debian's librdkafka-dev; the only C in the package.
        .systemLibrary(
            name: "CKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // The only Swift code that touches CKafka: producer, consumers, admin, embedded cluster.
        .target(
            name: "KafkaClient",
            dependencies: [
                "CKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The job model, commands, events and the fold: pure values, Foundation only.
        .target(name: "JobsCore"),
        // What the gateway and worker commands share: options from flags, JOBS_ variables or defaults, checked.
        .target(name: "JobsOptions", dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The processes' log output.
        .target(name: "JobsLogging", dependencies: [.product(name: "Logging", package: "swift-log")]),
        // What a user imports to write a worker: registry, runner, cancellation, progress.
        .target(
            name: "JobsWorker",
            dependencies: [
                "JobsCore", "KafkaClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The HTTP API, the status view, the OpenAPI document and the dashboard.
        .target(
            name: "JobsGateway",
            dependencies: [
                "JobsCore", "KafkaClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/openapi.yaml"), .copy("Resources/dashboard")]
        ),
        .executableTarget(
            name: "Gateway",
            dependencies: [
                "JobsGateway", "JobsWorker", "KafkaClient", "JobsLogging", "JobsOptions",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "Worker",
            dependencies: [
                "JobsWorker", "KafkaClient", "JobsLogging", "JobsOptions",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // A worker whose handlers record every execution, for the fault suite.
        .executableTarget(
            name: "FaultWorker",
            dependencies: [
                "JobsWorker", "KafkaClient", "JobsLogging", "JobsOptions",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Measures the system from outside: separate processes, driven over HTTP.
        .executableTarget(
            name: "JobsBench",
            dependencies: [
                "JobsCore", "KafkaClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ]
        ),
        .testTarget(name: "JobsCoreTests", dependencies: ["JobsCore"]),
        .testTarget(name: "JobsLoggingTests", dependencies: ["JobsLogging", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "JobsGateway", "JobsWorker", "KafkaClient", "JobsCore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
