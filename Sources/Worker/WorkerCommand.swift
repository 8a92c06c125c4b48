import ArgumentParser
import Foundation
import JobsCore
import JobsLogging
import JobsWorker
import KafkaClient
import Logging
import ServiceLifecycle

/// `worker`: joins the worker group and runs jobs. Start more to scale out.
@main
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Runs jobs from Kafka; start as many as you need.",
        discussion: """
            Every option can also be set with the environment variable named after it \
            (JOBS_BROKERS, JOBS_CONCURRENCY, ...). Any librdkafka property passes through \
            with --kafka key=value or a KAFKA_ variable (KAFKA_SECURITY_PROTOCOL=SASL_SSL).
            """
    )

    @Option(help: "Kafka bootstrap servers, host:port[,host:port]. [env: JOBS_BROKERS]")
    var brokers: String?

    @Option(help: "Prefix of the topic names. [env: JOBS_TOPIC_PREFIX] (default: jobs)")
    var topicPrefix: String?

    @Option(help: "Consumer group of the workers. [env: JOBS_GROUP] (default: jobs-workers)")
    var group: String?

    @Option(help: "Jobs run at once. [env: JOBS_CONCURRENCY] (default: 16)")
    var concurrency: Int?

    @Option(help: "Seconds running jobs may take to finish on SIGTERM before they are handed back. [env: JOBS_DRAIN_TIMEOUT] (default: 30)")
    var drainTimeout: Int?

    @Option(help: "Worker id shown in job snapshots. [env: JOBS_WORKER_ID] (default: host-pid)")
    var workerID: String?

    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value; repeatable.")
    var kafkaProperties: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error. [env: JOBS_LOG_LEVEL] (default: info)")
    var logLevel: String?

    @Option(help: "A YAML or JSON file of command job types to serve besides the built-in ones (docs/command-jobs.md). [env: JOBS_COMMAND_JOBS]")
    var commandJobs: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let level = Logger.Level(rawValue: logLevel ?? env["JOBS_LOG_LEVEL"] ?? "info") ?? .info
        ConsoleLogHandler.bootstrap(level: level)
        guard let bootstrap = brokers ?? env["JOBS_BROKERS"] else {
            throw ValidationError("give --brokers (or JOBS_BROKERS)")
        }
        var properties = KafkaConfiguration.properties(fromEnvironment: env)
        properties.merge(try KafkaConfiguration.properties(fromAssignments: kafkaProperties)) { _, flag in flag }

        let configuration = WorkerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: bootstrap, properties: properties),
            topics: TopicNames(prefix: topicPrefix ?? env["JOBS_TOPIC_PREFIX"] ?? "jobs"),
            groupID: group ?? env["JOBS_GROUP"] ?? "jobs-workers",
            workerID: workerID ?? env["JOBS_WORKER_ID"] ?? WorkerConfiguration.defaultWorkerID(),
            concurrency: concurrency ?? env["JOBS_CONCURRENCY"].flatMap(Int.init) ?? 16,
            drainTimeout: .seconds(drainTimeout ?? env["JOBS_DRAIN_TIMEOUT"].flatMap(Int.init) ?? 30)
        )
        let logger = Logger(label: "jobs.worker")
        let registry = try JobRegistry.builtin(commandJobsFile: commandJobs ?? env["JOBS_COMMAND_JOBS"], environment: env, logger: logger)
        let worker = JobWorker(configuration: configuration, registry: registry, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        ))
        try await group.run()
    }
}
