import Foundation
import HTTPTypes
import HummingbirdTesting
import JobsCore
import KafkaClient
import Testing

extension FaultSuite {
    @Test("gateway-restart: a gateway started after a SIGKILL answers /ready 503 until caught up, then shows every job with its true state")
    func restartedGatewayRebuildsItsView() async throws {
        let scenario = try FaultScenario("gateway-restart")
        let first = try await scenario.gateway("gateway-1")
        let worker = try scenario.worker("worker", ["--concurrency", "16"])
        try await worker.waitUntilReady()

        // Some jobs still run when the gateway dies.
        let bodies = (0..<300).map { $0 % 3 == 0 ? FaultJobs.sleep(steps: 5, stepMs: 100) : FaultJobs.noop }
        let accepted = try await first.submitAll(bodies)
        let killedAt = Date()
        await first.process.stop(SIGKILL)

        // A slower broker (25 ms more a round trip) stretches the catching-up, so that it can be seen from outside.
        scenario.cluster.setRoundTripTime(25)
        let second = try await scenario.gateway("gateway-2")
        var answers: [Int] = []
        var badNotReady: [String] = []
        var readyAt: Date?
        let deadline = ContinuousClock.now + .seconds(30)
        while readyAt == nil, ContinuousClock.now < deadline {
            let reply = try await second.withClient { try await $0.request(.get, "/ready") }
            answers.append(reply.status.code)
            if reply.status == .ok { readyAt = Date() }
            if reply.status == .serviceUnavailable, reply.headers[.retryAfter] == nil
                || reply.headers[.contentType] != "application/problem+json" || (try? reply.problem().status) != 503 {
                badNotReady.append("\(reply.headers) \(reply.text)")
            }
            if readyAt == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        scenario.cluster.setRoundTripTime(0)
        // Once ready, it stays ready.
        for _ in 0..<5 {
            answers.append(try await second.withClient { try await $0.request(.get, "/ready") }.status.code)
        }

        // Caught up means every job accepted before the restart is known.
        let unknown = try await second.withClient { client in
            var unknown: [String] = []
            for id in accepted {
                let reply = try await client.request(.get, "/jobs/\(id)")
                if reply.status != .ok { unknown.append("\(id): \(reply.status.code)") }
            }
            return unknown
        }

        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(30))
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: scenario.watcher.lines)

        // The view agrees with the topic (bounded wait for the view to fold the last events).
        let disagreements = try await second.withClient { client in
            var disagreements: [String] = []
            let deadline = ContinuousClock.now + .seconds(15)
            for id in accepted {
                let expected = analysis.finals[id]?.status
                var seen = try await client.request(.get, "/jobs/\(id)")
                while (try? seen.snapshot().status) != expected, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                    seen = try await client.request(.get, "/jobs/\(id)")
                }
                let status = try? seen.snapshot().status
                if status != expected { disagreements.append("\(id): view \(status.map(\.rawValue) ?? "\(seen.status.code)"), topic \(expected.map(\.rawValue) ?? "none")") }
            }
            return disagreements
        }
        await scenario.stopAll()
        let recovery = readyAt?.seconds(since: killedAt) ?? 0
        await scenario.report(analysis, worstRecovery: recovery)

        #expect(readyAt != nil, "the new gateway never became ready: /ready answered \(answers)\n\(second.process.log.suffix(3000))")
        let firstReady = answers.firstIndex(of: 200) ?? answers.count
        #expect(answers[..<firstReady].allSatisfy { $0 == 503 } && answers[firstReady...].allSatisfy { $0 == 200 },
                "/ready answered \(answers)")
        #expect(firstReady > 0, "/ready never answered 503 while catching up: \(answers)")
        #expect(badNotReady.isEmpty, "503s without Retry-After or a problem body: \(badNotReady.prefix(3))")
        #expect(unknown.isEmpty, "\(unknown.count) jobs unknown to the ready gateway: \(unknown.prefix(5))")
        #expect(disagreements.isEmpty, "\(disagreements.count) jobs differ between the view and the topic: \(disagreements.prefix(5))")
    }

    @Test("two-gateways: a job POSTed on one gateway is found at once by GET on the other, never 404")
    func secondGatewayReadsYourWrites() async throws {
        let scenario = try FaultScenario("two-gateways")
        let gatewayA = try await scenario.gateway("gateway-a")
        let gatewayB = try await scenario.gateway("gateway-b")
        let worker = try scenario.worker("worker", ["--concurrency", "16"])
        try await worker.waitUntilReady()
        for gateway in [gatewayA, gatewayB] {
            let ready = try await pollUntil(timeout: .seconds(20)) {
                try await gateway.withClient { try await $0.request(.get, "/ready") }.status == .ok
            }
            try #require(ready, "\(gateway.process.name) is not ready")
        }

        let (accepted, misses) = try await gatewayA.withClient { clientA in
            try await gatewayB.withClient { clientB in
                var accepted: [JobID] = []
                var misses: [String] = []
                for index in 0..<200 {
                    let job = try await clientA.submit(index % 2 == 0 ? FaultJobs.noop : FaultJobs.sleep(steps: 2, stepMs: 20))
                    accepted.append(job.id)
                    let reply = try await clientB.request(.get, "/jobs/\(job.id)")
                    if reply.status != .ok || (try? reply.snapshot().id) != job.id {
                        misses.append("\(job.id): \(reply.status.code) \(reply.text.prefix(200))")
                    }
                }
                return (accepted, misses)
            }
        }

        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(30))
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: 0)

        #expect(misses.isEmpty, "\(misses.count) of \(accepted.count) GETs on gateway-b missed: \(misses.prefix(5))")
        #expect(accepted.allSatisfy { analysis.finals[$0]?.status == .succeeded })
    }
}
