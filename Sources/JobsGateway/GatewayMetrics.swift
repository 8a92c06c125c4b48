import Foundation
import JobsCore
import KafkaClient
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

/// The gateway's metrics, exported in Prometheus format at `GET /metrics`.
///
/// Job counts come from the gateway's own view, which every replica folds from
/// the whole status topic: every replica reports the whole system, so take the
/// max across replicas, never the sum — except `jobs_submitted_total`, which
/// counts the submissions each replica accepted. Counters count what happens
/// while the gateway runs, not the history it replays at start-up. docs/operations.md
/// explains each metric.
final class GatewayMetrics: Service {
    let registry: PrometheusCollectorRegistry
    /// Also makes the HTTP request metrics (``RequestMetricsMiddleware``).
    let factory: PrometheusMetricsFactory
    private let lagProbe: ConsumerGroupLag?
    private let logger: Logger
    /// Made once: they are set on every change the view folds, and making a
    /// metric looks it up in the registry under a lock.
    private let jobCounts: [JobStatus: Metrics.Gauge]

    init(registry: PrometheusCollectorRegistry, lagProbe: ConsumerGroupLag?, logger: Logger) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let waits: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                 .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30), .seconds(120),
                                 .seconds(600), .seconds(3600)]
        factory.durationHistogramBuckets = ["jobs_queue_wait_seconds": waits, "jobs_run_seconds": waits]
        self.factory = factory
        self.jobCounts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { status in
            (status, Gauge(label: "jobs", dimensions: [("status", status.rawValue)], factory: factory))
        })
        self.lagProbe = lagProbe
        self.logger = logger
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] { registry.emitToBuffer() }

    func submitted(type: String) {
        Counter(label: "jobs_submitted_total", dimensions: [("type", type)], factory: factory).increment()
    }

    /// Called by the view for every change of a job's state once it is live
    /// (history replayed at start-up is not counted again).
    func jobChanged(from previous: JobSnapshot?, to current: JobSnapshot) {
        let startedNewAttempt = current.status == .running && current.sequence == 1
            && (previous?.status != .running || previous?.attempt != current.attempt)
        if startedNewAttempt {
            Counter(label: "jobs_started_total", dimensions: [("type", current.type)], factory: factory).increment()
            if current.attempt == 1, let startedAt = current.startedAt {
                record("jobs_queue_wait_seconds", type: current.type, seconds: startedAt.timeIntervalSince(current.createdAt))
            }
        }
        if current.status.isTerminal, previous.map({ !$0.status.isTerminal }) ?? true {
            Counter(label: "jobs_finished_total", dimensions: [("type", current.type), ("status", current.status.rawValue)],
                    factory: factory).increment()
            if let startedAt = current.startedAt, let finishedAt = current.finishedAt {
                record("jobs_run_seconds", type: current.type, seconds: finishedAt.timeIntervalSince(startedAt))
            }
        }
    }

    /// Jobs in the view by status (all of them, including replayed history).
    func setJobCounts(_ counts: [JobStatus: Int]) {
        for (status, gauge) in jobCounts { gauge.record(counts[status] ?? 0) }
    }

    private func record(_ label: String, type: String, seconds: Double) {
        Timer(label: label, dimensions: [("type", type)], preferredDisplayUnit: .seconds, factory: factory)
            .recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    /// Samples the workers' lag on the commands topic every few seconds.
    func run() async throws {
        guard let lagProbe else { return }
        let gauge = Gauge(label: "jobs_commands_consumer_lag", dimensions: [("group", lagProbe.group)], factory: factory)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    gauge.record(try await lagProbe.lag().values.reduce(0, +))
                } catch {
                    self.logger.debug("consumer lag not sampled", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }
}
