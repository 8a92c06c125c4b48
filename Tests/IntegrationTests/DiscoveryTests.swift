import Foundation
import JobsCore
import JobsWorker
import KafkaClient
import Testing

@Suite("Job types and workers discovered from heartbeats", .timeLimit(.minutes(2)))
struct DiscoveryTests {
    struct Greeting: Codable, Sendable { var name: String; var times: Int? }

    @Test("a type the gateway was not configured with is accepted once a worker announces it, and validated by the announced schema")
    func announcedTypesAreAccepted() async throws {
        var registry = JobRegistry.builtin
        registry.register("greet", params: Greeting.self, schema: ParamsSchema([
            .init("name", .string(maxLength: 20), required: true),
            .init("times", .integer(minimum: 1, maximum: 3)),
        ]), summary: "Says hello.") { params, _ in
            String(repeating: "hello \(params.name) ", count: params.times ?? 1)
        }
        let system = try TestCluster()
        try await system.withGateway(registry: registry, configure: { $0.jobTypes = BuiltinJobTypes.all }) { client in
            // Until the worker's first heartbeat is folded, the type may be unknown.
            let deadline = ContinuousClock.now + .seconds(10)
            var reply = try await client.request(.post, "/jobs", json: #"{"type":"greet","params":{"name":"Ada","times":2}}"#)
            while reply.status == .badRequest, ContinuousClock.now < deadline {
                #expect(try reply.problem().type == "/problems/unknown-job-type")
                try await Task.sleep(for: .milliseconds(50))
                reply = try await client.request(.post, "/jobs", json: #"{"type":"greet","params":{"name":"Ada","times":2}}"#)
            }
            #expect(reply.status == .accepted)
            let done = try await client.waitFor(try reply.snapshot().id) { $0.status.isTerminal }
            #expect(done.result == "hello Ada hello Ada ")

            let bad = try await client.request(.post, "/jobs", json: #"{"type":"greet","params":{"times":9}}"#)
            #expect(bad.status == .badRequest)
            let problem = try bad.problem()
            #expect(problem.type == "/problems/invalid-params")
            #expect(Set(problem.errors?.map(\.pointer) ?? []) == ["/params/name", "/params/times"])

            let types = try await client.request(.get, "/job-types")
            #expect(types.status == .ok)
            let listed = try JSONDecoder().decode([String: [TypeEntry]].self, from: Data(buffer: types.body))["jobTypes"] ?? []
            #expect(listed.map(\.name) == ["greet", "noop", "sleep"])
            #expect(listed.first { $0.name == "greet" }?.workers == ["test-worker"])

            let workers = try JSONDecoder().decode([String: [WorkerEntry]].self,
                                                   from: Data(buffer: try await client.request(.get, "/workers").body))["workers"] ?? []
            #expect(workers.count == 1)
            #expect(workers.first?.workerID == "test-worker")
            #expect(workers.first?.alive == true)
            #expect(workers.first?.jobTypes == ["greet", "noop", "sleep"])
        }
    }

    @Test("a worker not heard from for the retention is dropped from /workers and tombstoned; one that beats stays")
    func goneWorkersAreForgotten() async throws {
        let system = try TestCluster()
        let producer = try KafkaProducer(configuration: system.kafka, topics: [system.topics.workers], logger: .quiet)
        let twoHoursAgo = Date().addingTimeInterval(-7200)
        for (id, stopped) in [("killed-long-ago", false), ("stopped-long-ago", true)] {
            let heartbeat = WorkerHeartbeat(workerID: id, jobTypes: [], concurrency: 1, runningJobs: [],
                                            startedAt: twoHoursAgo, sentAt: twoHoursAgo, stopped: stopped, intervalMs: 2000)
            try await producer.send(topic: system.topics.workers, key: Array(id.utf8), value: WireFormat.encode(heartbeat))
        }
        await producer.shutdown()

        try await system.withGateway(configure: { $0.workerRetention = .seconds(3600) }) { client in
            var listed: [String] = []
            let deadline = ContinuousClock.now + .seconds(20)
            while listed != ["test-worker"], ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                let body = try await client.request(.get, "/workers").body
                listed = (try JSONDecoder().decode([String: [WorkerEntry]].self, from: Data(buffer: body))["workers"] ?? []).map(\.workerID)
            }
            #expect(listed == ["test-worker"])
        }
        // The gateway read both old heartbeats, and told the compacted topic to forget them.
        let tombstoned = try await Self.tombstonedKeys(system, expecting: 2, timeout: .seconds(10))
        #expect(tombstoned == ["killed-long-ago", "stopped-long-ago"])
    }

    /// The keys of the workers topic's tombstones, once `count` are seen or the time runs out.
    static func tombstonedKeys(_ system: TestCluster, expecting count: Int, timeout: Duration) async throws -> Set<String> {
        let reader = try KafkaTopicReader(configuration: system.kafka, topic: system.topics.workers, from: .beginning, logger: .quiet)
        return await withTaskGroup(of: Set<String>?.self) { group in
            group.addTask {
                var keys = Set<String>()
                for await message in reader where message.value == nil {
                    keys.insert(String(decoding: message.key ?? [], as: UTF8.self))
                    if keys.count >= count { break }
                }
                return keys
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                await reader.close()  // ends the loop above with what it found
                return nil
            }
            var keys: Set<String> = []
            for await result in group {
                guard let result else { continue }
                keys = result
                group.cancelAll()
            }
            await reader.close()
            return keys
        }
    }

    struct TypeEntry: Decodable { let name: String; let workers: [String] }
    struct WorkerEntry: Decodable { let workerID: String; let alive: Bool; let jobTypes: [String] }
}
