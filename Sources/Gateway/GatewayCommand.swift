import ArgumentParser
import Foundation
import JobsCore
import JobsGateway
import JobsLogging
import JobsWorker
import KafkaClient
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// `gateway`: the HTTP API in front of Kafka; `gateway --embedded` runs the
/// whole system in one process for development.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Accepts jobs over HTTP, publishes them to Kafka, and serves their status.",
        discussion: """
            Every option can also be set with the environment variable named after it \
            (JOBS_BROKERS, JOBS_PORT, ...). Any librdkafka property passes through with \
            --kafka key=value or a KAFKA_ variable (KAFKA_SECURITY_PROTOCOL=SASL_SSL).
            """
    )

    @Flag(help: "Start an in-memory broker and in-process workers. Nothing is durable.")
    var embedded = false

    @Option(help: "Kafka bootstrap servers, host:port[,host:port]. [env: JOBS_BROKERS]")
    var brokers: String?

    @Option(help: "Address to listen on. [env: JOBS_HOST] (default: 127.0.0.1)")
    var host: String?

    @Option(help: "HTTP port. [env: JOBS_PORT] (default: 8080)")
    var port: Int?

    @Option(help: "Prefix of the topic names. [env: JOBS_TOPIC_PREFIX] (default: jobs)")
    var topicPrefix: String?

    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value; repeatable.")
    var kafkaProperties: [String] = []

    @Option(help: "Milliseconds Kafka may take to acknowledge a command before the request gets 503. [env: JOBS_COMMAND_TIMEOUT_MS] (default: 5000)")
    var commandTimeoutMs: Int?

    @Option(help: "Largest request body in bytes. [env: JOBS_MAX_BODY_BYTES] (default: 65536)")
    var maxBodyBytes: Int?

    @Option(help: "Create the topics at start-up if missing. [env: JOBS_CREATE_TOPICS] (default: true)")
    var createTopics: Bool?

    @Option(help: "Partitions of each topic, when created here. [env: JOBS_PARTITIONS] (default: 6)")
    var partitions: Int?

    @Option(help: "Replication factor of each topic, when created here. [env: JOBS_REPLICATION_FACTOR] (default: 1)")
    var replicationFactor: Int?

    @Option(help: "Milliseconds without a heartbeat after which a worker's running jobs are shown stalled. [env: JOBS_WORKER_SILENCE_MS] (default: 10000)")
    var workerSilenceMs: Int?

    @Option(help: "Hours an ended job stays in the view before it is dropped and tombstoned. [env: JOBS_JOB_RETENTION_HOURS] (default: 168)")
    var jobRetentionHours: Double?

    @Option(help: "Embedded mode: a YAML or JSON file of command job types for the in-process worker (docs/command-jobs.md). [env: JOBS_COMMAND_JOBS]")
    var commandJobs: String?

    @Option(help: "Embedded mode: jobs run at once by the in-process worker.")
    var workerConcurrency: Int = 16

    @Option(name: .customLong("api-key"), help: """
        An API key, NAME:SCOPES:SECRET; repeatable. SCOPES joins read, submit, cancel, admin with +; \
        SECRET is the token (16+ characters) or sha256:<hex digest of it>. Required unless --embedded. \
        [env: JOBS_API_KEYS, keys separated by commas or spaces]
        """)
    var apiKeys: [String] = []

    @Option(name: .customLong("allow-origin"), help: "An origin (https://app.example.com) whose pages may call the API (CORS); repeatable. [env: JOBS_ALLOWED_ORIGINS, comma-separated] (default: none)")
    var allowedOrigins: [String] = []

    @Option(help: "Largest params object of a job, in bytes of JSON. [env: JOBS_MAX_PARAMS_BYTES] (default: 16384)")
    var maxParamsBytes: Int?

    @Option(help: "Largest page of GET /jobs. [env: JOBS_MAX_PAGE_SIZE] (default: 200)")
    var maxPageSize: Int?

    @Option(help: "Event streams one client (API key, or address) may hold open. [env: JOBS_MAX_STREAMS_PER_CLIENT] (default: 8)")
    var maxStreamsPerClient: Int?

    @Option(help: "Serve the dashboard from this folder instead of the built-in one. [env: JOBS_DASHBOARD_DIR]")
    var dashboardDir: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error. [env: JOBS_LOG_LEVEL] (default: info)")
    var logLevel: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let level = Logger.Level(rawValue: logLevel ?? env["JOBS_LOG_LEVEL"] ?? "info") ?? .info
        ConsoleLogHandler.bootstrap(level: level)
        let logger = Logger(label: "jobs.gateway")

        let keys = try (apiKeys + (env["JOBS_API_KEYS"].map(Self.list) ?? [])).map { text in
            do throws(APIKeyError) { return try APIKey(parsing: text) } catch { throw ValidationError(error.description) }
        }
        if keys.isEmpty, !embedded {
            throw ValidationError("give at least one --api-key (or JOBS_API_KEYS); only --embedded runs without authentication")
        }
        let limits = (
            params: maxParamsBytes ?? env["JOBS_MAX_PARAMS_BYTES"].flatMap(Int.init) ?? 16 * 1024,
            page: maxPageSize ?? env["JOBS_MAX_PAGE_SIZE"].flatMap(Int.init) ?? 200,
            streams: maxStreamsPerClient ?? env["JOBS_MAX_STREAMS_PER_CLIENT"].flatMap(Int.init) ?? 8
        )
        guard limits.params >= 1, limits.page >= 1, limits.streams >= 1 else {
            throw ValidationError("--max-params-bytes, --max-page-size and --max-streams-per-client must be at least 1")
        }
        let topics = TopicNames(prefix: topicPrefix ?? env["JOBS_TOPIC_PREFIX"] ?? "jobs")
        let partitionCount = Int32(partitions ?? env["JOBS_PARTITIONS"].flatMap(Int.init) ?? 6)
        var properties = KafkaConfiguration.properties(fromEnvironment: env)
        properties.merge(try KafkaConfiguration.properties(fromAssignments: kafkaProperties)) { _, flag in flag }

        var cluster: EmbeddedKafkaCluster?
        let bootstrap: String
        if embedded {
            let embeddedCluster = try EmbeddedKafkaCluster()
            for topic in topics.all { try embeddedCluster.createTopic(topic, partitions: partitionCount) }
            cluster = embeddedCluster
            bootstrap = embeddedCluster.bootstrapServers
        } else {
            guard let given = brokers ?? env["JOBS_BROKERS"] else {
                throw ValidationError("give --brokers (or JOBS_BROKERS), or run with --embedded")
            }
            bootstrap = given
        }
        let kafka = KafkaConfiguration(bootstrapServers: bootstrap, properties: properties)

        if !embedded, createTopics ?? env["JOBS_CREATE_TOPICS"].map({ $0 != "false" }) ?? true {
            let replication = Int32(replicationFactor ?? env["JOBS_REPLICATION_FACTOR"].flatMap(Int.init) ?? 1)
            try await KafkaAdmin.createTopics(topicSpecs(topics, partitions: partitionCount, replication: replication),
                                              configuration: kafka, logger: logger)
            logger.info("topics ready", metadata: ["topics": "\(topics.all)"])
        }

        let configuration = GatewayConfiguration(
            kafka: kafka, topics: topics,
            host: host ?? env["JOBS_HOST"] ?? "127.0.0.1",
            port: port ?? env["JOBS_PORT"].flatMap(Int.init) ?? 8080,
            commandTimeout: .milliseconds(commandTimeoutMs ?? env["JOBS_COMMAND_TIMEOUT_MS"].flatMap(Int.init) ?? 5000),
            maxBodyBytes: maxBodyBytes ?? env["JOBS_MAX_BODY_BYTES"].flatMap(Int.init) ?? 64 * 1024,
            workerSilenceTimeout: .milliseconds(workerSilenceMs ?? env["JOBS_WORKER_SILENCE_MS"].flatMap(Int.init) ?? 10_000),
            jobRetention: .seconds(3600 * (jobRetentionHours ?? env["JOBS_JOB_RETENTION_HOURS"].flatMap(Double.init) ?? 168)),
            authentication: keys.isEmpty ? .disabled : .apiKeys(keys),
            allowedOrigins: allowedOrigins + (env["JOBS_ALLOWED_ORIGINS"].map(Self.list) ?? []),
            maxParamsBytes: limits.params, maxPageSize: limits.page, maxStreamsPerClient: limits.streams,
            dashboardDirectory: dashboardDir ?? env["JOBS_DASHBOARD_DIR"]
        )

        var extraServices: [any Service] = []
        if embedded {
            let workerLogger = Logger(label: "jobs.worker")
            let worker = JobWorker(
                configuration: WorkerConfiguration(kafka: kafka, topics: topics, workerID: "embedded-\(ProcessInfo.processInfo.processIdentifier)",
                                                   concurrency: workerConcurrency,
                                                   // The in-memory broker stops with the process: a job handed
                                                   // back would go nowhere, so don't wait long for running ones.
                                                   drainTimeout: .seconds(2)),
                registry: try JobRegistry.builtin(commandJobsFile: commandJobs ?? env["JOBS_COMMAND_JOBS"], environment: env,
                                                  logger: workerLogger),
                logger: workerLogger
            )
            extraServices.append(worker)
            printEmbeddedBanner(bootstrap: bootstrap, configuration: configuration)
        }
        // One registry for the gateway's own metrics and everything reported through swift-metrics (HTTP, libraries).
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let app = try buildGateway(configuration: configuration, extraServices: extraServices, metricsRegistry: registry, logger: logger)
        try await app.runService()
        withExtendedLifetime(cluster) {}
    }

    private func authenticationLine(_ authentication: Authentication) -> String {
        switch authentication {
        case .disabled: "OFF: anyone who can reach the port may do anything"
        case .apiKeys(let keys): "API keys: " + keys.map(\.name).joined(separator: ", ")
        }
    }

    /// A list in one variable: items separated by commas or whitespace.
    private static func list(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
    }

    private func printEmbeddedBanner(bootstrap: String, configuration: GatewayConfiguration) {
        let banner = """

            ┌──────────────────────────────────────────────────────────────────────┐
              EMBEDDED MODE: in-memory Kafka broker. NOTHING IS DURABLE: every job
              and its status is gone when this process stops. For development only.

              HTTP API      http://\(configuration.host):\(configuration.port)
              Dashboard     http://\(configuration.host):\(configuration.port)/
              API document  http://\(configuration.host):\(configuration.port)/openapi.yaml
              Auth          \(authenticationLine(configuration.authentication))
              Kafka broker  \(bootstrap)
              More workers  worker --brokers \(bootstrap)
            └──────────────────────────────────────────────────────────────────────┘

            """
        FileHandle.standardError.write(Data(banner.utf8))
    }
}

/// The topics and their broker-side settings. The status and workers topics are
/// compacted (the latest record of each key is all a reader needs); the status
/// topic keeps an hour of history uncompacted, so a final snapshot is never
/// compacted away before its command's offset is committed (docs/delivery.md).
///
/// Commands live at most 5 days plus one 1-day segment, less than the 7 days an
/// ended job stays known: a command delivered again always finds its job's end
/// (docs/operations.md, "Retention and compaction").
func topicSpecs(_ topics: TopicNames, partitions: Int32, replication: Int32) -> [TopicSpec] {
    let commandLife = ["retention.ms": "\(5 * 24 * 3_600_000)", "segment.ms": "\(24 * 3_600_000)"]
    return [
        TopicSpec(name: topics.commands, partitions: partitions, replicationFactor: replication, configs: commandLife),
        TopicSpec(name: topics.control, partitions: partitions, replicationFactor: replication, configs: commandLife),
        TopicSpec(name: topics.status, partitions: partitions, replicationFactor: replication,
                  configs: ["cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"]),
        TopicSpec(name: topics.workers, partitions: 1, replicationFactor: replication,
                  configs: ["cleanup.policy": "compact"]),
    ]
}
