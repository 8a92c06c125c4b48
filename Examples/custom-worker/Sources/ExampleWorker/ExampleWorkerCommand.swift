import ArgumentParser
import ExampleJobs
import Foundation
import JobsCore
import JobsWorker
import KafkaClient
import Logging
import ServiceLifecycle

/// `example-worker`: a worker serving the built-in job types plus
/// `count-page-view` and `word-count`. Start as many as you like: they share
/// the jobs through the consumer group, like the stock `worker`.
@main
struct ExampleWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "example-worker",
        abstract: "Runs noop, sleep, count-page-view and word-count jobs from Kafka."
    )

    @Option(help: "Kafka bootstrap servers, host:port[,host:port].")
    var brokers: String

    @Option(help: "The SQLite file the page views are counted in (created if missing).")
    var database: String = "page-views.sqlite"

    @Option(help: "Jobs run at once.")
    var concurrency: Int = 16

    @Option(help: "Prefix of the topic names; the gateway's must be the same.")
    var topicPrefix: String = "jobs"

    @Option(help: "Consumer group of the workers.")
    var group: String = "jobs-workers"

    @Option(help: "Worker id shown in job snapshots. (default: host-pid)")
    var workerID: String?

    @Option(help: "Seconds running jobs may take to finish on SIGTERM before they are handed back.")
    var drainTimeout: Int = 30

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "example.worker")

        // Opening the database and migrating it happens before the worker joins
        // the group: a worker that cannot write must not take jobs.
        let queue = try ExampleDatabase.open(path: database)
        var registry = JobRegistry.builtin
        try registerExampleJobs(into: &registry, database: queue)
        logger.info("database ready", metadata: ["path": "\(database)"])

        let worker = JobWorker(
            configuration: WorkerConfiguration(
                kafka: KafkaConfiguration(bootstrapServers: brokers),
                topics: TopicNames(prefix: topicPrefix),
                groupID: group,
                workerID: workerID ?? WorkerConfiguration.defaultWorkerID(),
                concurrency: concurrency,
                drainTimeout: .seconds(drainTimeout)
            ),
            registry: registry,
            logger: logger
        )
        // SIGTERM or SIGINT: stop taking jobs, let running ones finish (up to
        // --drain-timeout), hand the rest back, then exit.
        let services = ServiceGroup(configuration: .init(
            services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        ))
        try await services.run()
    }
}
