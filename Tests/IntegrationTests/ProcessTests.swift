import Foundation
import HummingbirdTesting
import JobsCore
import KafkaClient
import Testing

@Suite("Gateway and workers as separate processes", .serialized, .timeLimit(.minutes(4)))
struct ProcessTests {
    @Test("a child gets standard input, output and error, and none of the test process's other descriptors")
    func childGetsOnlyStandardDescriptors() async throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)  // without close-on-exec, as the embedded broker's connections are
        defer { ends.forEach { close($0) } }
        let child = try ChildProcess("/bin/sleep", ["30"], name: "sleep")
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(child.pid)/fd").compactMap { Int32($0) }
        await child.stop(SIGKILL)
        #expect(open.sorted() == [0, 1, 2])
    }

    @Test("200 sleep jobs through a gateway process and two worker processes all succeed, spread over both, none run twice")
    func jobsSpreadOverTwoWorkers() async throws {
        let system = try TestCluster(partitions: 6)
        let brokers = system.cluster.bootstrapServers
        let gateway = try ChildProcess("gateway", ["--brokers", brokers, "--port", "0", "--create-topics", "false", "--api-key", TestKeys.admin], name: "gateway")
        let workerA = try ChildProcess("worker", ["--brokers", brokers, "--worker-id", "worker-a", "--concurrency", "16"], name: "worker-a")
        try await workerA.waitForLog("ready for assigned partitions")
        // The second member's join moves half the partitions; wait until it owns them.
        let workerB = try ChildProcess("worker", ["--brokers", brokers, "--worker-id", "worker-b", "--concurrency", "16"], name: "worker-b")
        try await workerB.waitForLog("ready for assigned partitions")

        let gatewayLog = try await gateway.waitForLog("listening on")
        let port = try #require(gatewayLog.firstMatch(of: /listening on 127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) })
        let jobCount = 200
        let submitted = try await TestClient.withClient(host: "127.0.0.1", port: port) { http in
            let client = GatewayClient(http)
            var ids: [JobID] = []
            for _ in 0..<jobCount {
                ids.append(try await client.submit(#"{"type":"sleep","params":{"steps":3,"stepMs":10}}"#).id)
            }
            return ids
        }
        #expect(Set(submitted).count == jobCount)

        let events = try await system.statusEvents(timeout: .seconds(90)) { events in
            Set(events.filter { $0.status.isTerminal }.map(\.id)).count >= jobCount
        }
        var finals = JobTable()
        events.forEach { finals.apply($0) }
        let outcomes = submitted.map { finals[$0]?.status }
        #expect(outcomes.allSatisfy { $0 == .succeeded }, "not succeeded: \(outcomes.filter { $0 != .succeeded }.count)")

        // Every start of a run publishes one `running` snapshot with sequence 1.
        let starts = Dictionary(grouping: events.filter { $0.status == .running && $0.sequence == 1 }, by: \.id)
        let runTwice = submitted.filter { (starts[$0]?.count ?? 0) != 1 }
        #expect(runTwice.isEmpty, "jobs not run exactly once: \(runTwice.count)")
        #expect(submitted.allSatisfy { finals[$0]?.attempt == 1 })

        let byWorker = Dictionary(grouping: submitted.compactMap { finals[$0]?.workerID }, by: { $0 }).mapValues(\.count)
        #expect(Set(byWorker.keys) == ["worker-a", "worker-b"], "jobs per worker: \(byWorker)")

        // The gateway's view agrees with the topic.
        try await TestClient.withClient(host: "127.0.0.1", port: port) { http in
            let client = GatewayClient(http)
            for id in submitted.prefix(10) {
                let seen = try await client.waitFor(id, timeout: .seconds(10)) { $0.status.isTerminal }
                #expect(seen.status == .succeeded)
            }
        }

        await workerA.stop()
        await workerB.stop()
        await gateway.stop()
        #expect(workerA.log.contains("worker stopped"))
        #expect(workerB.log.contains("worker stopped"))
    }
}
