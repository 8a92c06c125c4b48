// swift-tools-version:6.0
import PackageDescription

// A team's own worker, built on swift-kafka-jobs as a dependency: two handlers of
// its own (one writing to SQLite through GRDB) beside the built-in job types.
let package = Package(
    name: "custom-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "example-worker", targets: ["ExampleWorker"]),
        .library(name: "ExampleJobs", targets: ["ExampleJobs"]),
    ],
    dependencies: [
        // The job system, from this repository. Elsewhere: .package(url: "<its git URL>", from: "<version>").
        .package(name: "swift-kafka-jobs", path: "../.."),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The handlers and their database: what a team writes.
        .target(
            name: "ExampleJobs",
            dependencies: [
                .product(name: "JobsWorker", package: "swift-kafka-jobs"),
                .product(name: "JobsCore", package: "swift-kafka-jobs"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The worker process: flags, the registry, a ServiceGroup.
        .executableTarget(
            name: "ExampleWorker",
            dependencies: [
                "ExampleJobs",
                .product(name: "JobsWorker", package: "swift-kafka-jobs"),
                .product(name: "JobsCore", package: "swift-kafka-jobs"),
                .product(name: "KafkaClient", package: "swift-kafka-jobs"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // An embedded Kafka cluster, a live gateway and a worker with these handlers, in the test process.
        .testTarget(
            name: "ExampleJobsTests",
            dependencies: [
                "ExampleJobs",
                .product(name: "JobsWorker", package: "swift-kafka-jobs"),
                .product(name: "JobsCore", package: "swift-kafka-jobs"),
                .product(name: "JobsGateway", package: "swift-kafka-jobs"),
                .product(name: "KafkaClient", package: "swift-kafka-jobs"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
