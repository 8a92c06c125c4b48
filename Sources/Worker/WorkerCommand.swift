import ArgumentParser
import Foundation
import JobsCore
import JobsLogging
import JobsOptions
import JobsWorker
import KafkaClient
import Logging
import ServiceLifecycle
import UnixSignals

/// `worker`: joins the worker group and runs jobs. Start more to scale out.
@main
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Runs jobs from Kafka; start as many as you need.",
        discussion: """
            Every option but --kafka can also be set with the environment variable named after \
            it (JOBS_BROKERS, JOBS_CONCURRENCY, ...); a value that is not valid stops the worker, \
            as it would on the command line. Any librdkafka property passes through with \
            --kafka key=value or a KAFKA_ variable (KAFKA_SECURITY_PROTOCOL=SASL_SSL).
            """
    )

    @Option(help: "Kafka bootstrap servers, host:port[,host:port]. [env: JOBS_BROKERS]")
    var brokers: String?

    @Option(help: "Prefix of the topic names. [env: JOBS_TOPIC_PREFIX] (default: jobs)")
    var topicPrefix: String?

    @Option(help: "Consumer group of the workers. [env: JOBS_GROUP] (default: jobs-workers)")
    var group: String?

    // Numbers take the next argument even if it starts with `-`: `--drain-timeout -1`
    // is then refused for its value, not reported as a missing one.
    @Option(parsing: .unconditional, help: "Jobs run at once, 1 to 100000. [env: JOBS_CONCURRENCY] (default: 16)")
    var concurrency: Int?

    @Option(parsing: .unconditional, help: "Seconds running jobs may take to finish on SIGTERM before they are handed back, 0 or more. [env: JOBS_DRAIN_TIMEOUT] (default: 30)")
    var drainTimeout: Int?

    @Option(help: "Worker id shown in job snapshots. [env: JOBS_WORKER_ID] (default: host-pid)")
    var workerID: String?

    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value; repeatable.")
    var kafkaProperties: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. [env: JOBS_LOG_LEVEL] (default: info)")
    var logLevel: String?

    @Option(help: "A YAML or JSON file of command job types to serve besides the built-in ones (docs/command-jobs.md). [env: JOBS_COMMAND_JOBS]")
    var commandJobs: String?

    func run() async throws {
        let options = OptionValues()
        let level = try options.choice(logLevel, "--log-level", "JOBS_LOG_LEVEL", default: "info",
                                       among: Logger.Level.allCases.map(\.rawValue))
        let jobsAtOnce = try options.value(concurrency, "--concurrency", "JOBS_CONCURRENCY", default: 16, .between(1, 100_000))
        let drainSeconds = try options.value(drainTimeout, "--drain-timeout", "JOBS_DRAIN_TIMEOUT", default: 30, .atLeast(0))
        ConsoleLogHandler.bootstrap(level: Logger.Level(rawValue: level)!)
        guard let bootstrap = try options.nonEmptyText(brokers, "--brokers", "JOBS_BROKERS") else {
            throw ValidationError("give --brokers (or JOBS_BROKERS)")
        }
        let env = options.environment
        var properties = KafkaConfiguration.properties(fromEnvironment: env)
        properties.merge(try options.assignments(kafkaProperties, "--kafka")) { _, flag in flag }

        let configuration = WorkerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: bootstrap, properties: properties),
            topics: TopicNames(prefix: try options.topicPrefix(topicPrefix, "--topic-prefix", "JOBS_TOPIC_PREFIX", default: "jobs")),
            groupID: try options.nonEmptyText(group, "--group", "JOBS_GROUP") ?? "jobs-workers",
            workerID: try options.nonEmptyText(workerID, "--worker-id", "JOBS_WORKER_ID") ?? WorkerConfiguration.defaultWorkerID(),
            concurrency: jobsAtOnce,
            drainTimeout: .seconds(drainSeconds)
        )
        let logger = Logger(label: "jobs.worker")
        let registry = try JobRegistry.builtin(commandJobsFile: options.text(commandJobs, "JOBS_COMMAND_JOBS"), environment: env, logger: logger)
        let worker = JobWorker(configuration: configuration, registry: registry, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        ))
        // The first signal drains; a second one means "now" (as Celery's cold shutdown).
        let secondSignal = Task {
            var caught = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                caught += 1
                guard caught == 2 else { continue }
                logger.warning("second signal: not waiting for running jobs", metadata: ["signal": "\(signal)"])
                worker.endDrain()
            }
        }
        defer { secondSignal.cancel() }
        try await group.run()
    }
}
