import ArgumentParser
import Foundation
import JobsCore
import JobsLogging
import JobsOptions
import JobsWorker
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization

/// `fault-worker`: an ordinary worker whose `sleep`, `noop` and `flaky` handlers also
/// append a line to an execution log each time they start and finish, so the
/// fault suite can count executions per job from the handler's side, not from
/// the worker's own reports.
///
/// Log lines: `start <job id> <attempt> <pid>` and `end <job id> <attempt> <pid>`.
@main
struct FaultWorker: AsyncParsableCommand {
    @Option var brokers: String
    @Option var workerID: String
    @Option var executionLog: String
    @Option var concurrency = 16
    @Option var drainTimeout = 30
    @Option(name: .customLong("kafka")) var kafkaProperties: [String] = []

    func run() async throws {
        ConsoleLogHandler.bootstrap(level: .info)
        let log = try ExecutionLog(path: executionLog)
        var registry = JobRegistry()
        registry.register("noop", params: [String: Int].self, schema: BuiltinJobTypes.noop.params) { _, context in
            log.record("start", context)
            log.record("end", context)
            return [String: Int]()
        }
        registry.register("sleep", params: [String: Int].self, schema: BuiltinJobTypes.sleep.params) { params, context in
            log.record("start", context)
            let steps = params["steps"] ?? 10
            for step in 1...steps {
                try await Task.sleep(for: .milliseconds(params["stepMs"] ?? 1000))
                try await context.progress(current: step, total: steps)
            }
            log.record("end", context)
            return ["steps": steps]
        }
        // Throws on attempts up to `failures`, then succeeds; only a successful run logs `end`.
        registry.register("flaky", params: [String: Int].self,
                          schema: ParamsSchema([.init("failures", .integer(minimum: 0, maximum: 100),
                                                      summary: "Attempts that throw before one succeeds (default 0).")]),
                          summary: "Throws on its first `failures` attempts, then succeeds.",
                          options: JobOptions(maxAttempts: 3, initialBackoff: .milliseconds(100))) { params, context in
            log.record("start", context)
            if context.attempt <= params["failures"] ?? 0 { throw FlakyFailure(attempt: context.attempt) }
            log.record("end", context)
            return ["attempt": context.attempt]
        }
        let configuration = WorkerConfiguration(
            kafka: KafkaConfiguration(bootstrapServers: brokers,
                                      properties: try OptionValues().assignments(kafkaProperties, "--kafka")),
            workerID: workerID, concurrency: concurrency, drainTimeout: .seconds(drainTimeout)
        )
        let logger = Logger(label: "jobs.worker")
        let worker = JobWorker(configuration: configuration, registry: registry, logger: logger)
        try await ServiceGroup(configuration: .init(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }
}

/// The `flaky` handler's failure; its description becomes the job's error message.
struct FlakyFailure: Error, CustomStringConvertible {
    let attempt: Int
    var description: String { "flaked on attempt \(attempt)" }
}

/// Appends whole lines with O_APPEND, so a SIGKILL never leaves half a line.
final class ExecutionLog: Sendable {
    private let descriptor: Int32
    private let lock = Mutex(())

    init(path: String) throws {
        descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard descriptor >= 0 else { throw ValidationError("cannot open \(path)") }
    }

    func record(_ event: String, _ context: JobContext) {
        let line = Array("\(event) \(context.jobID) \(context.attempt) \(getpid())\n".utf8)
        lock.withLock { _ in _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } }
    }
}
