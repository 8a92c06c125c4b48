import Foundation
import Hummingbird
import HummingbirdTesting
import JobsCore
import JobsGateway
import JobsWorker
import KafkaClient
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

/// A fresh embedded cluster with the job topics: one per test, so tests share nothing.
struct TestCluster {
    let cluster: EmbeddedKafkaCluster
    let topics = TopicNames(prefix: "jobs")

    let partitions: Int32

    init(partitions: Int32 = 3) throws {
        cluster = try EmbeddedKafkaCluster(logger: .quiet)
        self.partitions = partitions
        for topic in topics.all { try cluster.createTopic(topic, partitions: partitions) }
    }

    /// Takes the leader away from every partition of `topics` (broker -1), or gives
    /// it to `broker`: while leaderless nothing can be written, as when the broker
    /// is down (see ``EmbeddedKafkaCluster/setPartitionLeader(topic:partition:broker:)``).
    func setLeader(_ broker: Int32, of topics: [String]) {
        for topic in topics {
            for partition in 0..<partitions { cluster.setPartitionLeader(topic: topic, partition: partition, broker: broker) }
        }
    }

    /// Every client fetches at most every 10 ms here: the status view and the
    /// control reader default to 3 ms (for cancel latency), and dozens of test
    /// gateways polling that often, side by side, starve the timing-sensitive tests.
    var kafka: KafkaConfiguration {
        var configuration = cluster.configuration
        configuration.properties["fetch.wait.max.ms"] = "10"
        return configuration
    }

    /// Runs a live gateway (with an in-process worker unless `worker` is false) and
    /// hands `body` a client for it.
    func withGateway(
        worker: Bool = true, registry: JobRegistry = .builtin, commandTimeout: Duration = .seconds(5),
        workerConcurrency: Int = 8, configure: (inout GatewayConfiguration) -> Void = { _ in },
        configureWorker: (inout WorkerConfiguration) -> Void = { _ in }, logger: Logger = .quiet,
        _ body: @escaping @Sendable (GatewayClient) async throws -> Void
    ) async throws {
        try await withGatewayReturning(worker: worker, registry: registry, commandTimeout: commandTimeout,
                                       workerConcurrency: workerConcurrency, configure: configure,
                                       configureWorker: configureWorker, logger: logger, body)
    }

    /// ``withGateway`` for a body with a result.
    func withGatewayReturning<Value: Sendable>(
        worker: Bool = true, registry: JobRegistry = .builtin, commandTimeout: Duration = .seconds(5),
        workerConcurrency: Int = 8, configure: (inout GatewayConfiguration) -> Void = { _ in },
        configureWorker: (inout WorkerConfiguration) -> Void = { _ in }, logger: Logger = .quiet,
        _ body: @escaping @Sendable (GatewayClient) async throws -> Value
    ) async throws -> Value {
        var configuration = GatewayConfiguration(kafka: kafka, topics: topics, commandTimeout: commandTimeout,
                                                 jobTypes: registry.descriptors, authentication: .disabled)
        configure(&configuration)
        var services: [any Service] = []
        if worker {
            var workerConfiguration = WorkerConfiguration(kafka: kafka, topics: topics, workerID: "test-worker",
                                                          concurrency: workerConcurrency)
            configureWorker(&workerConfiguration)
            services.append(JobWorker(configuration: workerConfiguration, registry: registry, logger: .quiet))
        }
        let app = try buildGateway(configuration: configuration, extraServices: services, logger: logger)
        return try await app.test(.live) { client in
            try await body(GatewayClient(client))
        }
    }

    /// Publishes a snapshot on the status topic as a worker would.
    func publish(_ snapshot: JobSnapshot) async throws {
        let producer = try KafkaProducer(configuration: kafka, topics: [topics.status], logger: .quiet)
        try await producer.send(topic: topics.status, key: Array(snapshot.id.rawValue.utf8), value: WireFormat.encode(snapshot))
        await producer.shutdown()
    }

    /// Writes start commands for `jobs` to the commands topic, keyed by job id,
    /// as something other than the gateway (an operator's tool) would.
    func sendStartCommands(_ jobs: [JobSnapshot]) async throws {
        let producer = try KafkaProducer(configuration: kafka, topics: [topics.commands], logger: .quiet)
        for job in jobs {
            try await producer.send(topic: topics.commands, key: Array(job.id.rawValue.utf8),
                                    value: WireFormat.encodeStartCommand(StartJobCommand(job: job)))
        }
        await producer.shutdown()
    }

    /// How many records `topic` holds, over all partitions.
    func recordCount(_ topic: String) async throws -> Int64 {
        let reader = try KafkaTopicReader(configuration: kafka, topic: topic, from: .end, logger: .quiet)
        defer { Task { await reader.close() } }
        return try await reader.endOffsets().values.reduce(0, +)
    }

    /// Every snapshot of the status topic, read independently of any gateway,
    /// until `done` says enough or the time runs out.
    func statusEvents(timeout: Duration, until done: @escaping @Sendable ([JobSnapshot]) -> Bool) async throws -> [JobSnapshot] {
        let reader = try KafkaTopicReader(configuration: kafka, topic: topics.status, from: .beginning, logger: .quiet)
        let collected = await withTaskGroup(of: [JobSnapshot]?.self) { group in
            group.addTask {
                var events: [JobSnapshot] = []
                for await message in reader {
                    guard let value = message.value,
                          let snapshot = try? WireFormat.decode(JobSnapshot.self, from: value) else { continue }
                    events.append(snapshot)
                    if done(events) { break }
                }
                return events
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                await reader.close()
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            await reader.close()
            if let first { return first }
            return await group.next()! ?? []
        }
        return collected
    }
}

/// An HTTP reply, whichever client produced it.
struct HTTPReply: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer

    var text: String { String(buffer: body) }

    func snapshot() throws -> JobSnapshot {
        try WireFormat.decode(JobSnapshot.self, from: Array(buffer: body))
    }

    func problem() throws -> ProblemBody {
        try JSONDecoder().decode(ProblemBody.self, from: Data(buffer: body))
    }
}

/// The parts of an RFC 9457 body the tests look at.
struct ProblemBody: Decodable {
    let type: String
    let title: String
    let status: Int
    let detail: String
    let errors: [ParamsSchema.Violation]?
    let knownTypes: [String]?
}

/// A page of `GET /jobs`.
struct ListBody: Decodable {
    let jobs: [JobSnapshot]
    let nextCursor: String?
}

/// A client of the gateway's HTTP API, over an in-process live server or a
/// separate gateway process.
struct GatewayClient: Sendable {
    private let send: @Sendable (String, HTTPRequest.Method, HTTPFields, ByteBuffer?) async throws -> HTTPReply
    /// Sent as `Authorization` unless a request sets its own.
    var authorization: String?

    /// The live server's port, for clients other than this one (event streams).
    let port: Int?

    init(_ client: any TestClientProtocol, authorization: String? = nil) {
        self.authorization = authorization
        self.port = client.port
        send = { uri, method, headers, body in
            let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: body)
            return HTTPReply(status: response.status, headers: response.headers, body: response.body)
        }
    }

    /// For a gateway process, which the tests start with ``TestKeys/admin``.
    init(_ client: TestClient, authorization: String? = "Bearer \(TestKeys.adminToken)") {
        self.authorization = authorization
        self.port = nil
        send = { uri, method, headers, body in
            let response = try await client.execute(TestClient.Request(uri, method: method, authority: "localhost", headers: headers, body: body))
            return HTTPReply(status: response.status, headers: response.headers, body: response.body ?? ByteBuffer())
        }
    }

    func request(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil, headers: HTTPFields = [:]) async throws -> HTTPReply {
        var headers = headers
        if json != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        if let authorization, headers[.authorization] == nil { headers[.authorization] = authorization }
        return try await send(uri, method, headers, json.map { ByteBuffer(string: $0) })
    }

    /// `GET /jobs` with `query` (empty, or starting with `?`); it must answer 200.
    func list(_ query: String = "") async throws -> ListBody {
        let reply = try await request(.get, "/jobs\(query)")
        try #require(reply.status == .ok, "GET /jobs\(query) answered \(reply.status): \(reply.text)")
        return try WireFormat.decode(ListBody.self, from: Array(buffer: reply.body))
    }

    /// Submits a job and returns its snapshot; the submission must be accepted.
    func submit(_ json: String) async throws -> JobSnapshot {
        let reply = try await request(.post, "/jobs", json: json)
        try #require(reply.status == .accepted, "submit answered \(reply.status): \(reply.text)")
        return try reply.snapshot()
    }

    func job(_ id: JobID) async throws -> JobSnapshot {
        let reply = try await request(.get, "/jobs/\(id)")
        try #require(reply.status == .ok, "GET answered \(reply.status): \(reply.text)")
        return try reply.snapshot()
    }

    /// Polls the job until `condition` holds; fails the test at the deadline.
    @discardableResult
    func waitFor(_ id: JobID, timeout: Duration = .seconds(20), _ condition: (JobSnapshot) -> Bool) async throws -> JobSnapshot {
        let deadline = ContinuousClock.now + timeout
        var last = try await job(id)
        while !condition(last) {
            try #require(ContinuousClock.now < deadline, "job \(id) still \(last.status) after \(timeout)")
            try await Task.sleep(for: .milliseconds(20))
            last = try await job(id)
        }
        return last
    }
}

extension Logger {
    /// Tests log warnings and errors only.
    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }
}

/// Keeps what a logger logs, for tests of how loudly something is logged.
final class LogRecorder: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        let level: Logger.Level
        let message: String
        let metadata: String
        var description: String { "\(level) \(message) \(metadata)" }
    }

    private let recorded = Mutex<[Entry]>([])
    var entries: [Entry] { recorded.withLock { $0 } }

    /// A logger that records every line at `level` and above.
    func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "test") { _ in Handler(recorder: self) }
        logger.logLevel = level
        return logger
    }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var logLevel: Logger.Level = .debug
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            let entry = Entry(level: event.level, message: "\(event.message)", metadata: "\(all)")
            recorder.recorded.withLock { $0.append(entry) }
        }
    }
}

/// The API key every gateway process in the tests is started with.
enum TestKeys {
    static let adminToken = "test-admin-token-0123456789"
    /// The `--api-key` value.
    static let admin = "tests:admin:\(adminToken)"
}
