import ExampleJobs
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import JobsCore
import JobsGateway
import JobsWorker
import KafkaClient
import Logging
import NIOCore
import Testing

/// One test's world, shared with nothing: an embedded Kafka cluster with the
/// job topics, a SQLite file in a fresh folder, and the example registry.
struct ExampleHarness {
    let cluster: EmbeddedKafkaCluster
    let topics = TopicNames()
    let folder: URL
    let databasePath: String
    let database: DatabaseQueue
    let pageViews: PageViewStore
    let registry: JobRegistry

    init() throws {
        cluster = try EmbeddedKafkaCluster(logger: .quiet)
        for topic in topics.all { try cluster.createTopic(topic, partitions: 3) }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("custom-worker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        databasePath = folder.appendingPathComponent("page-views.sqlite").path
        database = try ExampleDatabase.open(path: databasePath)
        var registry = JobRegistry.builtin
        try registerExampleJobs(into: &registry, database: database)
        self.registry = registry
        pageViews = try PageViewStore(database: database)
    }

    /// Runs a live gateway on a free port, with a `JobWorker` serving the example
    /// registry beside it, and hands `body` a client once the gateway knows the
    /// example's job types.
    ///
    /// The gateway is configured as the stock `gateway` is, with the built-in
    /// types only: it learns `count-page-view` and `word-count`, with their
    /// params schemas, from the worker's heartbeats, as it would from a separate
    /// `example-worker` process.
    func withGateway(_ body: @escaping @Sendable (GatewayClient) async throws -> Void) async throws {
        let kafka = cluster.configuration
        let worker = JobWorker(
            configuration: WorkerConfiguration(kafka: kafka, topics: topics, workerID: "example-test-worker", concurrency: 4),
            registry: registry, logger: .quiet
        )
        let app = try buildGateway(configuration: GatewayConfiguration(kafka: kafka, topics: topics, authentication: .disabled),
                                   extraServices: [worker], logger: .quiet)
        try await app.test(.live) { client in
            let gateway = GatewayClient(client: client)
            try await gateway.waitForJobTypes([ExampleJobTypes.countPageView, ExampleJobTypes.wordCount])
            try await body(gateway)
        }
    }

    /// Polls the database until `path` has been counted `count` times.
    func waitForPageView(_ path: String, count: Int, timeout: Duration = .seconds(20)) async throws -> PageView {
        let deadline = ContinuousClock.now + timeout
        while true {
            let row = try await pageViews.pageView(path)
            if let row, row.count >= count { return row }
            try #require(ContinuousClock.now < deadline, "\(path) counted \(row?.count ?? 0) times after \(timeout), not \(count)")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Publishes a start command on the commands topic, as a gateway does.
    func publishStart(_ job: JobSnapshot) async throws {
        let producer = try KafkaProducer(configuration: cluster.configuration, topics: [topics.commands], logger: .quiet)
        _ = try await producer.send(topic: topics.commands, key: Array(job.id.rawValue.utf8),
                                    value: WireFormat.encode(StartJobCommand(job: job)))
        await producer.shutdown()
    }

    /// Every snapshot of job `id` on the status topic, in topic order, read
    /// independently of the gateway until a terminal one (or the deadline).
    func statusEvents(of id: JobID, timeout: Duration = .seconds(20)) async throws -> [JobSnapshot] {
        let reader = try KafkaTopicReader(configuration: cluster.configuration, topic: topics.status,
                                          from: .beginning, logger: .quiet)
        return await withTaskGroup(of: [JobSnapshot]?.self) { group in
            group.addTask {
                var events: [JobSnapshot] = []
                for await message in reader {
                    guard let value = message.value,
                          let snapshot = try? WireFormat.decode(JobSnapshot.self, from: value),
                          snapshot.id == id else { continue }
                    events.append(snapshot)
                    if snapshot.status.isTerminal { break }
                }
                return events
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            await reader.close()
            if let first { return first }
            return await group.next()! ?? []
        }
    }

    func removeFiles() {
        try? FileManager.default.removeItem(at: folder)
    }
}

/// A second connection to the example's database file that holds its write
/// lock, as a web application's long transaction (or a migration) would.
/// While it holds it, no job can write; it can still read inside its transaction.
struct DatabaseLock: Sendable {
    private let queue: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true  // the transaction spans several accesses
        queue = try DatabaseQueue(path: path, configuration: configuration)
    }

    func lock() async throws {
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "BEGIN EXCLUSIVE") }
    }

    func unlock() async throws {
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "COMMIT") }
    }

    /// The row as this connection sees it: jobs cannot have changed it while the lock is held.
    func pageView(_ path: String) async throws -> PageView? {
        try await queue.writeWithoutTransaction { db in try PageView.fetchOne(db, key: path) }
    }
}

/// An HTTP reply of the gateway.
struct Reply: Sendable {
    let status: HTTPResponse.Status
    let body: ByteBuffer

    var text: String { String(buffer: body) }

    func snapshot() throws -> JobSnapshot {
        try WireFormat.decode(JobSnapshot.self, from: Array(buffer: body))
    }

    /// The JSON pointers of the fields an RFC 9457 problem body names.
    func problemPointers() throws -> [String] {
        struct Problem: Decodable {
            struct Violation: Decodable { let pointer: String }
            let errors: [Violation]?
        }
        return try JSONDecoder().decode(Problem.self, from: Data(body.readableBytesView)).errors?.map(\.pointer) ?? []
    }
}

/// A job submission, as `POST /jobs` takes it.
struct Submission<Params: Encodable & Sendable>: Encodable, Sendable {
    var type: String
    var params: Params
}

/// The example's calls to the gateway's HTTP API.
struct GatewayClient: Sendable {
    let client: any TestClientProtocol

    func request(_ method: HTTPRequest.Method, _ uri: String, body: [UInt8]? = nil) async throws -> Reply {
        var headers: HTTPFields = [:]
        if body != nil { headers[.contentType] = "application/json" }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers,
                                                       body: body.map { ByteBuffer(bytes: $0) })
        return Reply(status: response.status, body: response.body)
    }

    func post<Params: Encodable & Sendable>(type: String, params: Params) async throws -> Reply {
        try await request(.post, "/jobs", body: Array(JSONEncoder().encode(Submission(type: type, params: params))))
    }

    /// Submits a job that must be accepted.
    func submit<Params: Encodable & Sendable>(type: String, params: Params) async throws -> JobSnapshot {
        let reply = try await post(type: type, params: params)
        try #require(reply.status == .accepted, "POST /jobs answered \(reply.status): \(reply.text)")
        return try reply.snapshot()
    }

    /// The job as the gateway shows it; `nil` while it doesn't know the job (404).
    func job(_ id: JobID) async throws -> JobSnapshot? {
        let reply = try await request(.get, "/jobs/\(id)")
        if reply.status == .notFound { return nil }
        try #require(reply.status == .ok, "GET /jobs/\(id) answered \(reply.status): \(reply.text)")
        return try reply.snapshot()
    }

    /// Polls the job until the gateway knows it and `condition` holds; fails
    /// the test at the deadline.
    @discardableResult
    func waitFor(_ id: JobID, timeout: Duration = .seconds(20), _ condition: (JobSnapshot) -> Bool) async throws -> JobSnapshot {
        let deadline = ContinuousClock.now + timeout
        while true {
            let last = try await job(id)
            if let last, condition(last) { return last }
            try #require(ContinuousClock.now < deadline, "job \(id) still \(last.map { "\($0.status)" } ?? "unknown") after \(timeout)")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Polls `GET /job-types` until it lists every one of `names`.
    func waitForJobTypes(_ names: [String], timeout: Duration = .seconds(20)) async throws {
        struct Listing: Decodable {
            struct JobType: Decodable { let name: String }
            let jobTypes: [JobType]
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let reply = try await request(.get, "/job-types")
            let known = (try? JSONDecoder().decode(Listing.self, from: Data(reply.body.readableBytesView)))
                .map { Set($0.jobTypes.map(\.name)) } ?? []
            if known.isSuperset(of: names) { return }
            try #require(ContinuousClock.now < deadline, "the gateway knows \(known.sorted()) after \(timeout), not \(names)")
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// A result stored in a snapshot, decoded as the handler's own type.
func decodeResult<T: Decodable>(_ type: T.Type, of snapshot: JobSnapshot) throws -> T {
    let result = try #require(snapshot.result, "job \(snapshot.id) has no result")
    return try JSONDecoder().decode(T.self, from: JSONEncoder().encode(result))
}

extension Logger {
    /// Tests log warnings and errors only.
    static var quiet: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }
}
