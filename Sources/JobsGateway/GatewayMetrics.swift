import Foundation
import JobsCore
import KafkaClient
import Logging
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
    /// Also holds the HTTP request metrics (``RequestMetricsMiddleware``).
    let registry: PrometheusCollectorRegistry
    private let lagProbe: ConsumerGroupLag?
    private let logger: Logger
    /// Made once: they are set on every change the view folds, and making a
    /// metric looks it up in the registry under a lock.
    private let jobCounts: [JobStatus: Prometheus.Gauge]

    /// From seconds to an hour: a job may wait or run far longer than an HTTP request.
    private static let waits: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(5), .seconds(30), .seconds(120), .seconds(600), .seconds(3600),
    ]

    init(registry: PrometheusCollectorRegistry, lagProbe: ConsumerGroupLag?, logger: Logger) {
        self.registry = registry
        self.jobCounts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { status in
            (status, registry.makeGauge(descriptor: .jobs, labels: [("status", status.rawValue)]))
        })
        self.lagProbe = lagProbe
        self.logger = logger
    }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] { registry.emitToBuffer() }

    func submitted(type: String) {
        registry.makeCounter(descriptor: .jobsSubmitted, labels: [("type", type)]).increment()
    }

    /// Called by the view for every change of a job's state once it is live
    /// (history replayed at start-up is not counted again).
    func jobChanged(from previous: JobSnapshot?, to current: JobSnapshot) {
        let startedNewAttempt = current.status == .running && current.sequence == 1
            && (previous?.status != .running || previous?.attempt != current.attempt)
        if startedNewAttempt {
            registry.makeCounter(descriptor: .jobsStarted, labels: [("type", current.type)]).increment()
            if current.attempt == 1, let startedAt = current.startedAt {
                record(.jobsQueueWait, type: current.type, seconds: startedAt.timeIntervalSince(current.createdAt))
            }
        }
        if current.status.isTerminal, previous.map({ !$0.status.isTerminal }) ?? true {
            registry.makeCounter(descriptor: .jobsFinished, labels: [("type", current.type), ("status", current.status.rawValue)])
                .increment()
            if let startedAt = current.startedAt, let finishedAt = current.finishedAt {
                record(.jobsRun, type: current.type, seconds: finishedAt.timeIntervalSince(startedAt))
            }
        }
    }

    /// Jobs in the view by status (all of them, including replayed history).
    func setJobCounts(_ counts: [JobStatus: Int]) {
        for (status, gauge) in jobCounts { gauge.record(Int64(counts[status] ?? 0)) }
    }

    /// A century: far past every bucket, and far below `Int64.max` nanoseconds.
    static let longestRecordedSeconds: Double = 100 * 365 * 86_400

    private func record(_ metric: MetricNameDescriptor, type: String, seconds: Double) {
        registry.makeDurationHistogram(descriptor: metric, labels: [("type", type)], buckets: Self.waits)
            // Times come from records anyone may write: a span of centuries must not trap.
            .recordNanoseconds(Int64(min(max(0, seconds), Self.longestRecordedSeconds) * 1e9))
    }

    /// Samples the workers' lag on the commands topic every few seconds.
    func run() async throws {
        guard let lagProbe else { return }
        let gauge = registry.makeGauge(descriptor: .commandsConsumerLag, labels: [("group", lagProbe.group)])
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    gauge.record(Int64(try await lagProbe.lag().values.reduce(0, +)))
                } catch {
                    self.logger.debug("consumer lag not sampled", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }
}

/// The gateway's metrics with their `# HELP` texts; docs/operations.md says more
/// about each. (Computed: the descriptor type is not `Sendable`.)
extension MetricNameDescriptor {
    static var jobs: Self { gateway("jobs", "Jobs in the view by status, history replayed at start-up included.") }
    static var jobsSubmitted: Self { gateway("jobs_submitted_total", "Jobs this gateway accepted with 202 (sum across replicas).") }
    static var jobsStarted: Self { gateway("jobs_started_total", "Attempts seen starting, retries included.") }
    static var jobsFinished: Self { gateway("jobs_finished_total", "Jobs seen ending, by final status.") }
    static var jobsQueueWait: Self { gateway("jobs_queue_wait_seconds", "From submit to the first attempt's start.") }
    static var jobsRun: Self { gateway("jobs_run_seconds", "From the last attempt's start to its end.") }
    static var commandsConsumerLag: Self {
        gateway("jobs_commands_consumer_lag", "Commands the worker group has not committed yet (work waiting plus in flight), sampled every 5 s.")
    }
    static var httpRequests: Self { gateway("hb_requests", "HTTP requests by route, method and status.") }
    static var httpRequestErrors: Self {
        gateway("hb_request_errors", "HTTP requests answered with an error status; error_type is the status code.")
    }
    static var httpRequestDuration: Self {
        gateway("http_server_request_duration", "HTTP request latency in seconds, to the handler's answer; for an event stream, to its end.")
    }
    static var httpActiveRequests: Self { gateway("http_server_active_requests", "HTTP requests in progress, open event streams included.") }

    /// A whole name, unit suffix included: these are the names the gateway has always exported.
    private static func gateway(_ name: String, _ help: String) -> Self {
        Self(metricName: name, unitName: "", helpText: help)
    }
}
