import JobsCore
import KafkaClient

/// Everything the gateway needs to know; all but the cluster have defaults.
public struct GatewayConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    public var topics: TopicNames
    public var host: String
    public var port: Int
    /// How long a command may take to be acknowledged by Kafka before the request
    /// is answered `503` (it becomes the producer's `message.timeout.ms`).
    public var commandTimeout: Duration
    /// The largest request body accepted.
    public var maxBodyBytes: Int
    /// The job types the gateway accepts, with the params each one takes.
    public var jobTypes: [JobTypeDescriptor]
    /// On a `GET` miss, how long to wait for the view to catch up with the status
    /// topic before answering 404 (read-your-writes across gateway replicas).
    public var catchUpTimeout: Duration
    /// A worker without a heartbeat this long is presumed lost: its running jobs
    /// are shown `stalled` until they run again.
    public var workerSilenceTimeout: Duration
    /// A worker stopped or silent this long is dropped from `GET /workers`, and
    /// tombstoned on the workers topic.
    public var workerRetention: Duration
    /// How long an ended job stays in the view; it is then dropped and a
    /// tombstone lets the compacted status topic forget it too.
    public var jobRetention: Duration
    /// How often expired jobs are looked for.
    public var retentionSweepInterval: Duration
    /// The workers' consumer group, whose lag on the commands topic is reported.
    public var workerGroup: String
    /// Who may call the API. `.disabled` is meant for `gateway --embedded` only.
    public var authentication: Authentication
    /// Origins whose browser pages may call the API (CORS); none by default.
    public var allowedOrigins: [String]
    /// The largest `params` object accepted, encoded as JSON.
    public var maxParamsBytes: Int
    /// The largest `limit` of `GET /jobs`.
    public var maxPageSize: Int
    /// Event streams one client (API key, or address without one) may hold open.
    public var maxStreamsPerClient: Int
    /// How often an idle event stream sends a keep-alive comment.
    public var streamKeepAliveInterval: Duration
    /// A client resuming an event stream after more than this many jobs changed
    /// is told to list again rather than sent them all.
    public var maxResumeJobs: Int
    /// Serve the dashboard from this folder instead of the built-in copy (to work on it).
    public var dashboardDirectory: String?
    /// A connection that sends nothing for this long while no answer is being
    /// written is closed: an idle keep-alive connection, or a request left
    /// half-sent, which would otherwise hold its socket for ever. An event
    /// stream being written is never cut.
    public var idleTimeout: Duration = .seconds(60)

    public init(
        kafka: KafkaConfiguration, topics: TopicNames = TopicNames(), host: String = "127.0.0.1", port: Int = 8080,
        commandTimeout: Duration = .seconds(5), maxBodyBytes: Int = 64 * 1024,
        jobTypes: [JobTypeDescriptor] = BuiltinJobTypes.all, catchUpTimeout: Duration = .seconds(2),
        workerSilenceTimeout: Duration = .seconds(10), workerRetention: Duration = .seconds(3600), jobRetention: Duration = .seconds(7 * 24 * 3600),
        retentionSweepInterval: Duration = .seconds(60), workerGroup: String = "jobs-workers",
        authentication: Authentication, allowedOrigins: [String] = [], maxParamsBytes: Int = 16 * 1024,
        maxPageSize: Int = 200, maxStreamsPerClient: Int = 8, streamKeepAliveInterval: Duration = .seconds(15),
        maxResumeJobs: Int = 10_000, dashboardDirectory: String? = nil
    ) {
        self.kafka = kafka
        self.topics = topics
        self.host = host
        self.port = port
        self.commandTimeout = commandTimeout
        self.maxBodyBytes = maxBodyBytes
        self.jobTypes = jobTypes
        self.catchUpTimeout = catchUpTimeout
        self.workerSilenceTimeout = workerSilenceTimeout
        self.workerRetention = workerRetention
        self.jobRetention = jobRetention
        self.retentionSweepInterval = retentionSweepInterval
        self.workerGroup = workerGroup
        self.authentication = authentication
        self.allowedOrigins = allowedOrigins
        self.maxParamsBytes = maxParamsBytes
        self.maxPageSize = maxPageSize
        self.maxStreamsPerClient = maxStreamsPerClient
        self.streamKeepAliveInterval = streamKeepAliveInterval
        self.maxResumeJobs = maxResumeJobs
        self.dashboardDirectory = dashboardDirectory
    }

    /// The settings of the producer for cancels: as ``producerConfiguration``,
    /// but sending each message at once. Cancels are few, and a person waits on them.
    var urgentProducerConfiguration: KafkaConfiguration {
        var configuration = producerConfiguration
        configuration.properties["linger.ms"] = "0"
        return configuration
    }

    /// The producer's settings: the command deadline bounds every delivery.
    var producerConfiguration: KafkaConfiguration {
        var configuration = kafka
        // After an outage, reconnect within a second rather than librdkafka's 10 s
        // backoff ceiling, so the gateway stops answering 503 soon after the broker returns.
        if configuration.properties["reconnect.backoff.max.ms"] == nil {
            configuration.properties["reconnect.backoff.max.ms"] = "1000"
        }
        if configuration.properties["message.timeout.ms"] == nil {
            configuration.properties["message.timeout.ms"] = "\(max(1, commandTimeout.wholeMilliseconds))"
        }
        return configuration
    }
}
