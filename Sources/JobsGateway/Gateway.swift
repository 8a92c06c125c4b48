import Hummingbird
import JobsCore
import KafkaClient
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// Builds the gateway: its Kafka clients, the job view and the HTTP server, as
/// one Hummingbird application.
///
/// `extraServices` run beside them (embedded mode adds the workers); they start
/// before the server and stop after it, and the producer stops last so it can
/// flush. `/metrics` exports `metricsRegistry`, with the job and HTTP metrics;
/// bootstrap swift-metrics with the same registry to add those of other libraries.
public func buildGateway(
    configuration: GatewayConfiguration, extraServices: [any Service] = [],
    metricsRegistry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    logger: Logger = Logger(label: "jobs.gateway")
) throws -> some ApplicationProtocol {
    let metrics = GatewayMetrics(
        registry: metricsRegistry,
        lagProbe: try ConsumerGroupLag(configuration: configuration.kafka, group: configuration.workerGroup,
                                       topic: configuration.topics.commands, logger: logger),
        logger: logger
    )
    let producer = try KafkaProducer(configuration: configuration.producerConfiguration,
                                     topics: configuration.topics.all, logger: logger)
    let urgentProducer = try KafkaProducer(configuration: configuration.urgentProducerConfiguration,
                                           topics: [configuration.topics.control, configuration.topics.status], logger: logger)
    let commands = JobCommands(producer: producer, urgent: urgentProducer, topics: configuration.topics)
    let retention = JobView.Retention(age: configuration.jobRetention, sweepInterval: configuration.retentionSweepInterval) { id in
        do {
            try await commands.tombstone(id)
        } catch {
            logger.warning("tombstone not published", metadata: ["job.id": "\(id)", "error": "\(error)"])
        }
    }
    let view = try JobView(configuration: configuration.kafka, topic: configuration.topics.status, logger: logger,
                           retention: retention, metrics: metrics) { held in
        do {
            try await commands.publishStatus(held)
        } catch {
            logger.warning("snapshot not re-published over a stale record", metadata: ["job.id": "\(held.id)", "error": "\(error)"])
        }
    }
    let followUps = SubmitFollowUps(commands: commands, view: view, logger: logger)
    let directory = try WorkerDirectory(configuration: configuration.kafka, topics: configuration.topics, view: view,
                                        commands: commands, silenceTimeout: configuration.workerSilenceTimeout,
                                        retention: configuration.workerRetention, logger: logger)
    let router = Router(context: GatewayRequestContext.self)
    router.add(middleware: RequestMetricsMiddleware(registry: metrics.registry))
    if !configuration.allowedOrigins.isEmpty {
        router.add(middleware: AllowedOriginsMiddleware(origins: Set(configuration.allowedOrigins)))
    }
    router.add(middleware: ProblemMiddleware(bodyLimit: configuration.maxBodyBytes, logger: logger))
    if let dashboard = dashboardDirectory(configuration.dashboardDirectory) {
        router.add(middleware: DashboardFiles(directory: dashboard, logger: logger))
    } else {
        logger.warning("the dashboard's files are missing; / will answer 404")
    }
    let jobs = JobRoutes(
        view: view,
        workers: directory,
        commands: commands,
        followUps: followUps,
        metrics: metrics,
        configuredTypes: Dictionary(configuration.jobTypes.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last }),
        configuration: configuration,
        logger: logger
    )
    GatewayAPI(
        jobs: jobs,
        events: EventStreamRoutes(view: view, limiter: StreamLimiter(limit: configuration.maxStreamsPerClient),
                                  configuration: configuration, logger: logger),
        document: try APIDocument(),
        metrics: metrics,
        authentication: configuration.authentication
    ).register(on: router)
    return Application(
        router: router,
        server: .persistentHTTP1(configuration: .init(idleTimeout: TimeAmount(configuration.idleTimeout))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "jobs-gateway"),
        services: [producer, urgentProducer, followUps, view, directory, metrics] + extraServices,
        logger: logger
    )
}
