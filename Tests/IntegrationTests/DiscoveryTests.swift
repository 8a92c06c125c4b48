import Foundation
import JobsCore
import JobsWorker
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

    struct TypeEntry: Decodable { let name: String; let workers: [String] }
    struct WorkerEntry: Decodable { let workerID: String; let alive: Bool; let jobTypes: [String] }
}
