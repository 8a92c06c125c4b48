import ArgumentParser
import Foundation
import JobsCore
import JobsGateway
import JobsLogging
import JobsOptions
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
            Every option but --embedded, --worker-concurrency and --kafka can also be set with \
            the environment variable named after it (JOBS_BROKERS, JOBS_PORT, ...); a value that \
            is not valid stops the gateway, as it would on the command line. Any librdkafka \
            property passes through with --kafka key=value or a KAFKA_ variable \
            (KAFKA_SECURITY_PROTOCOL=SASL_SSL).
            """
    )

    @Flag(help: "Start an in-memory broker and in-process workers. Nothing is durable.")
    var embedded = false

    @Option(help: "Kafka bootstrap servers, host:port[,host:port]. [env: JOBS_BROKERS]")
    var brokers: String?

    @Option(help: "Address to listen on. [env: JOBS_HOST] (default: 127.0.0.1)")
    var host: String?

    // Numbers take the next argument even if it starts with `-`: `--port -1`
    // is then refused for its value, not reported as a missing one.
    @Option(parsing: .unconditional, help: "HTTP port, 0-65535; 0 picks a free one. [env: JOBS_PORT] (default: 8080)")
    var port: Int?

    @Option(help: "Prefix of the topic names. [env: JOBS_TOPIC_PREFIX] (default: jobs)")
    var topicPrefix: String?

    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value; repeatable.")
    var kafkaProperties: [String] = []

    @Option(parsing: .unconditional, help: "Milliseconds Kafka may take to acknowledge a command before the request gets 503. [env: JOBS_COMMAND_TIMEOUT_MS] (default: 5000)")
    var commandTimeoutMs: Int?

    @Option(parsing: .unconditional, help: "Largest request body in bytes. [env: JOBS_MAX_BODY_BYTES] (default: 65536)")
    var maxBodyBytes: Int?

    @Option(help: "Create the topics at start-up if missing: true or false. [env: JOBS_CREATE_TOPICS] (default: true)")
    var createTopics: Bool?

    @Option(parsing: .unconditional, help: "Partitions of each topic, when created here. [env: JOBS_PARTITIONS] (default: 6)")
    var partitions: Int?

    @Option(parsing: .unconditional, help: "Replication factor of each topic, when created here. [env: JOBS_REPLICATION_FACTOR] (default: 1)")
    var replicationFactor: Int?

    @Option(parsing: .unconditional, help: "Milliseconds without a heartbeat after which a worker's running jobs are shown stalled. [env: JOBS_WORKER_SILENCE_MS] (default: 10000)")
    var workerSilenceMs: Int?

    @Option(parsing: .unconditional, help: "Hours an ended job stays in the view before it is dropped and tombstoned. [env: JOBS_JOB_RETENTION_HOURS] (default: 168)")
    var jobRetentionHours: Double?

    @Option(help: "Embedded mode: a YAML or JSON file of command job types for the in-process worker (docs/command-jobs.md). [env: JOBS_COMMAND_JOBS]")
    var commandJobs: String?

    @Option(parsing: .unconditional, help: "Embedded mode: jobs run at once by the in-process worker, 1 to 100000.")
    var workerConcurrency: Int?

    @Option(help: "Consumer group of the workers, whose lag /metrics reports (the embedded worker's too). [env: JOBS_GROUP] (default: jobs-workers)")
    var group: String?

    @Option(name: .customLong("api-key"), help: """
        An API key, NAME:SCOPES:SECRET; repeatable. SCOPES joins read, submit, cancel, admin with +; \
        SECRET is the token (16+ characters) or sha256:<hex digest of it>. Required unless --embedded. \
        [env: JOBS_API_KEYS, keys separated by commas or spaces]
        """)
    var apiKeys: [String] = []

    @Option(name: .customLong("allow-origin"), help: "An origin (https://app.example.com) whose pages may call the API (CORS); repeatable. [env: JOBS_ALLOWED_ORIGINS, comma-separated] (default: none)")
    var allowedOrigins: [String] = []

    @Option(parsing: .unconditional, help: "Largest params object of a job, in bytes of JSON. [env: JOBS_MAX_PARAMS_BYTES] (default: 16384)")
    var maxParamsBytes: Int?

    @Option(parsing: .unconditional, help: "Largest page of GET /jobs. [env: JOBS_MAX_PAGE_SIZE] (default: 200)")
    var maxPageSize: Int?

    @Option(parsing: .unconditional, help: "Event streams one client (API key, or address) may hold open. [env: JOBS_MAX_STREAMS_PER_CLIENT] (default: 8)")
    var maxStreamsPerClient: Int?

    @Option(help: "Serve the dashboard from this folder instead of the built-in one. [env: JOBS_DASHBOARD_DIR]")
    var dashboardDir: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. [env: JOBS_LOG_LEVEL] (default: info)")
    var logLevel: String?

    func run() async throws {
        let options = OptionValues()
        let level = try options.choice(logLevel, "--log-level", "JOBS_LOG_LEVEL", default: "info",
                                       among: Logger.Level.allCases.map(\.rawValue))
        ConsoleLogHandler.bootstrap(level: Logger.Level(rawValue: level)!)
        let logger = Logger(label: "jobs.gateway")
        let env = options.environment

        let keyTexts = apiKeys.map { (text: $0, source: "--api-key") }
            + options.list("JOBS_API_KEYS").map { (text: $0, source: "JOBS_API_KEYS") }
        let keys = try keyTexts.map { key in
            do throws(APIKeyError) {
                return try APIKey(parsing: key.text)
            } catch {
                // The flag's own errors read as before; a variable's say which variable.
                throw ValidationError(key.source == "--api-key" ? error.description : "\(key.source): \(error.description)")
            }
        }
        if keys.isEmpty, !embedded {
            throw ValidationError("give at least one --api-key (or JOBS_API_KEYS); only --embedded runs without authentication")
        }
        let origins = allowedOrigins.map { (text: $0, source: "--allow-origin") }
            + options.list("JOBS_ALLOWED_ORIGINS").map { (text: $0, source: "JOBS_ALLOWED_ORIGINS") }
        for origin in origins where !Self.isOrigin(origin.text) {
            throw ValidationError("\(origin.source): '\(origin.text)' is not an origin: scheme://host[:port], no path or trailing /")
        }
        // Options of the in-process worker: without one, they would be ignored without a word.
        for (option, given) in [("--worker-concurrency", workerConcurrency != nil), ("--command-jobs", commandJobs != nil)]
        where given && !embedded {
            throw ValidationError("\(option) applies only with --embedded (to its in-process worker)")
        }
        let embeddedConcurrency = workerConcurrency ?? 16
        try Bounds.between(1, 100_000).check(embeddedConcurrency, source: "--worker-concurrency")
        let workerGroup = try options.nonEmptyText(group, "--group", "JOBS_GROUP") ?? "jobs-workers"
        let limits = (
            params: try options.value(maxParamsBytes, "--max-params-bytes", "JOBS_MAX_PARAMS_BYTES", default: 16 * 1024, .atLeast(1)),
            page: try options.value(maxPageSize, "--max-page-size", "JOBS_MAX_PAGE_SIZE", default: 200, .atLeast(1)),
            streams: try options.value(maxStreamsPerClient, "--max-streams-per-client", "JOBS_MAX_STREAMS_PER_CLIENT",
                                       default: 8, .atLeast(1))
        )
        let topics = TopicNames(prefix: try options.topicPrefix(topicPrefix, "--topic-prefix", "JOBS_TOPIC_PREFIX", default: "jobs"))
        // Kafka counts partitions in an Int32 and replicas in an Int16.
        let partitionCount = Int32(try options.value(partitions, "--partitions", "JOBS_PARTITIONS", default: 6,
                                                     .between(1, Int(Int32.max))))
        let replication = Int32(try options.value(replicationFactor, "--replication-factor", "JOBS_REPLICATION_FACTOR",
                                                  default: 1, .between(1, Int(Int16.max))))
        let shouldCreateTopics = try options.value(createTopics, "--create-topics", "JOBS_CREATE_TOPICS", default: true)
        // The timeout becomes librdkafka's `message.timeout.ms`, an Int32; 0 would mean no timeout at all.
        let commandTimeout = try options.value(commandTimeoutMs, "--command-timeout-ms", "JOBS_COMMAND_TIMEOUT_MS",
                                               default: 5000, .between(1, Int(Int32.max)))
        let bodyLimit = try options.value(maxBodyBytes, "--max-body-bytes", "JOBS_MAX_BODY_BYTES", default: 64 * 1024, .atLeast(1))
        let silence = try options.value(workerSilenceMs, "--worker-silence-ms", "JOBS_WORKER_SILENCE_MS", default: 10_000, .atLeast(1))
        // At most a hundred years: a Duration can't hold much more than that in hours.
        let retentionHours = try options.value(jobRetentionHours, "--job-retention-hours", "JOBS_JOB_RETENTION_HOURS",
                                               default: 168, .above(0, atMost: 876_000))
        let listenHost = options.text(host, "JOBS_HOST") ?? "127.0.0.1"
        // 0 asks the system for a free port; the log says which.
        let listenPort = try options.value(port, "--port", "JOBS_PORT", default: 8080, .between(0, 65535))
        var properties = KafkaConfiguration.properties(fromEnvironment: env)
        properties.merge(try options.assignments(kafkaProperties, "--kafka")) { _, flag in flag }

        var cluster: EmbeddedKafkaCluster?
        let bootstrap: String
        if embedded {
            let embeddedCluster = try EmbeddedKafkaCluster()
            for topic in topics.all { try embeddedCluster.createTopic(topic, partitions: partitionCount) }
            cluster = embeddedCluster
            bootstrap = embeddedCluster.bootstrapServers
        } else {
            guard let given = try options.nonEmptyText(brokers, "--brokers", "JOBS_BROKERS") else {
                throw ValidationError("give --brokers (or JOBS_BROKERS), or run with --embedded")
            }
            bootstrap = given
        }
        let kafka = KafkaConfiguration(bootstrapServers: bootstrap, properties: properties)

        if !embedded, shouldCreateTopics {
            do {
                try await KafkaAdmin.createTopics(topicSpecs(topics, partitions: partitionCount, replication: replication),
                                                  configuration: kafka, logger: logger)
            } catch {
                guard error.isTimeout else { throw error }
                throw StartupError("""
                    \(error). If the cluster is up but does not create topics (a mock broker such as \
                    `jobs-bench broker` never answers), create them another way and start with \
                    --create-topics false (JOBS_CREATE_TOPICS=false)
                    """)
            }
            logger.info("topics ready", metadata: ["topics": "\(topics.all)"])
        }

        let configuration = GatewayConfiguration(
            kafka: kafka, topics: topics,
            host: listenHost,
            port: listenPort,
            commandTimeout: .milliseconds(commandTimeout),
            maxBodyBytes: bodyLimit,
            workerSilenceTimeout: .milliseconds(silence),
            jobRetention: .seconds(3600 * retentionHours),
            workerGroup: workerGroup,
            authentication: keys.isEmpty ? .disabled : .apiKeys(keys),
            allowedOrigins: origins.map(\.text),
            maxParamsBytes: limits.params, maxPageSize: limits.page, maxStreamsPerClient: limits.streams,
            dashboardDirectory: try options.existingDirectory(dashboardDir, "--dashboard-dir", "JOBS_DASHBOARD_DIR")
        )

        var extraServices: [any Service] = []
        if embedded {
            let workerLogger = Logger(label: "jobs.worker")
            let worker = JobWorker(
                configuration: WorkerConfiguration(kafka: kafka, topics: topics, groupID: workerGroup,
                                                   workerID: "embedded-\(ProcessInfo.processInfo.processIdentifier)",
                                                   concurrency: embeddedConcurrency,
                                                   // The in-memory broker stops with the process: a job handed
                                                   // back would go nowhere, so don't wait long for running ones.
                                                   drainTimeout: .seconds(2)),
                registry: try JobRegistry.builtin(commandJobsFile: options.text(commandJobs, "JOBS_COMMAND_JOBS"), environment: env,
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
        do {
            try await app.runService()
        } catch {
            if let failure = ListenError(error, host: configuration.host, port: configuration.port) { throw failure }
            throw error
        }
        withExtendedLifetime(cluster) {}
    }

    private func authenticationLine(_ authentication: Authentication) -> String {
        switch authentication {
        case .disabled: "OFF: anyone who can reach the port may do anything"
        case .apiKeys(let keys): "API keys: " + keys.map(\.name).joined(separator: ", ")
        }
    }

    /// Whether `text` is what a browser sends as `Origin`: `scheme://host[:port]`
    /// and nothing more. Any other text would never match a request, silently.
    private static func isOrigin(_ text: String) -> Bool {
        guard let parts = URLComponents(string: text), let scheme = parts.scheme, !scheme.isEmpty,
              let host = parts.host, !host.isEmpty else { return false }
        return parts.path.isEmpty && parts.query == nil && parts.fragment == nil && parts.user == nil && parts.password == nil
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

/// A start-up failure that is not a usage error: says what to do about it.
struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
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
