import Foundation
import JobsCore
import KafkaClient

/// Everything a worker process needs to know; every field has a sensible default
/// except where the cluster is.
public struct WorkerConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    public var topics: TopicNames
    /// The consumer group that shares the commands topic: one per deployment.
    public var groupID: String
    /// Shown in snapshots (`workerID`) and logs.
    public var workerID: String
    /// Jobs run at once by this process.
    public var concurrency: Int
    /// On SIGTERM, how long running jobs may take to finish before they are
    /// stopped and handed back to be run again.
    public var drainTimeout: Duration
    /// On a rebalance, how long jobs of partitions taken away may take to finish
    /// before they are handed back.
    public var revokeTimeout: Duration
    /// How often the worker announces itself on the workers topic.
    public var heartbeatInterval: Duration
    /// Largest result a job may store in its snapshot, in bytes of its JSON
    /// encoding (as on the wire). A handler returning more ends the job `failed`
    /// with error code `result_too_large` (never retried), so an oversize
    /// snapshot never reaches the status topic. Keep it well below the broker's
    /// `message.max.bytes` (1 MB by default): the snapshot carries params too.
    /// A final snapshot over the producer's own `message.max.bytes` ends the job
    /// `failed` with `status_too_large`, without its result.
    public var maxResultBytes: Int
    /// Most commands taken from Kafka that may wait on this worker without
    /// running: behind a job of their ordering key, or for their type's
    /// `maxConcurrent`. While slots are free, the worker reads past such commands
    /// to find work of other keys and types, up to this many; then it stops
    /// reading until one of them starts. Bounds memory, not correctness.
    public var maxWaitingCommands: Int
    /// A running job's progress is published at most this often (the latest
    /// report wins); its snapshot still takes every report. Zero publishes each.
    public var progressInterval: Duration

    /// The default for ``maxResultBytes``: 64 KiB.
    public static let defaultMaxResultBytes = 64 * 1024

    public init(
        kafka: KafkaConfiguration, topics: TopicNames = TopicNames(), groupID: String = "jobs-workers",
        workerID: String = WorkerConfiguration.defaultWorkerID(), concurrency: Int = 16,
        drainTimeout: Duration = .seconds(30), revokeTimeout: Duration = .seconds(3),
        heartbeatInterval: Duration = .seconds(2), maxResultBytes: Int = WorkerConfiguration.defaultMaxResultBytes,
        maxWaitingCommands: Int = 1000, progressInterval: Duration = .milliseconds(100)
    ) {
        self.kafka = kafka
        self.topics = topics
        self.groupID = groupID
        self.workerID = workerID
        self.concurrency = max(1, concurrency)
        self.drainTimeout = drainTimeout
        self.revokeTimeout = revokeTimeout
        self.heartbeatInterval = heartbeatInterval
        self.maxResultBytes = max(0, maxResultBytes)
        self.maxWaitingCommands = max(1, maxWaitingCommands)
        self.progressInterval = max(.zero, progressInterval)
    }

    /// `host-pid`, unique among the processes of one machine.
    public static func defaultWorkerID() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Consumer settings for the commands topic. The session timeout bounds how
    /// long a crashed worker's jobs wait before the group hands them to another
    /// worker (see docs/delivery.md).
    static let consumerDefaults: [String: String] = [
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "1500",
    ]
}
