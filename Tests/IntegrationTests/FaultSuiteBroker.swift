import Foundation
import HTTPTypes
import HummingbirdTesting
import JobsCore
import KafkaClient
import Synchronization
import Testing

extension FaultSuite {
    @Test("broker-faults: through an outage, a slow broker and failed produce requests, every 202 job succeeds exactly once and every refusal is a 503 with Retry-After")
    func brokerFaultsNeverLoseOrDuplicateAcceptedJobs() async throws {
        let scenario = try FaultScenario("broker-faults")
        // One produce request in flight per connection. The embedded broker (librdkafka 2.0.2's mock)
        // does not check an idempotent producer's sequence numbers: when an injected error fails one
        // batch and the next batch, already in flight, succeeds, librdkafka takes the first as
        // "implicitly acked by subsequent batch success" although the broker never stored it. A real
        // broker refuses the later batch (OUT_OF_ORDER_SEQUENCE_NUMBER) and both are retried.
        let oneInFlight = ["--kafka", "max.in.flight.requests.per.connection=1"]
        let gateway = try await scenario.gateway("gateway", ["--command-timeout-ms", "1000"] + oneInFlight)
        let worker = try scenario.worker("worker", ["--concurrency", "16"] + oneInFlight)
        try await worker.waitUntilReady()

        // Four clients submit continuously (up to 20 a second each) while the faults come and go.
        let log = SubmissionLog(limit: 800)
        let port = gateway.port
        let lanes = (0..<4).map { _ in Task { await log.submitContinuously(port: port, body: FaultJobs.sleep(steps: 2, stepMs: 20)) } }
        defer { log.stop() }

        // The same 80 acceptances before any fault, but up to 30 s for them: while every
        // suite starts at once on two cores, a debug gateway once took longer than 10 s.
        try #require(await pollUntil(timeout: .seconds(30)) { log.acceptedCount >= 80 }, "no steady flow: \(log.summary)")

        // 1. An outage of 3 s: no partition of any topic has a leader, so nothing
        // can be written or read. (Not by taking the mock broker down: librdkafka
        // 2.0.2's mock then closes its listener and binds the port again at once,
        // and aborted whole test runs when that bind failed.)
        // Each partition's leader changes in a call of its own (12 in all, each a round trip to the
        // mock's thread): the outage is whole only from `downAt` to `upBegins`.
        let downBegins = Date()
        scenario.system.setLeader(-1, of: scenario.system.topics.all)
        let downAt = Date()
        try await Task.sleep(for: .seconds(3))
        let upBegins = Date()
        scenario.system.setLeader(1, of: scenario.system.topics.all)
        let upAt = Date()
        let answering = await pollUntil(timeout: .seconds(20)) { log.firstAcceptance(after: upAt) != nil }
        let recovery = log.firstAcceptance(after: upAt)?.seconds(since: upAt) ?? 20

        // 2. Every request takes 300 ms more for 2 s.
        let slowAt = Date()
        scenario.cluster.setRoundTripTime(300)
        try await Task.sleep(for: .seconds(2))
        scenario.cluster.setRoundTripTime(0)

        // 3. Produce requests fail with retriable errors (rdkafka.h: 6 NOT_LEADER_FOR_PARTITION,
        // 7 REQUEST_TIMED_OUT, 19 NOT_ENOUGH_REPLICAS, 5 LEADER_NOT_AVAILABLE, 13 NETWORK_EXCEPTION,
        // 20 NOT_ENOUGH_REPLICAS_AFTER_APPEND).
        let before = log.acceptedCount
        let errorsAt = Date()
        scenario.cluster.pushRequestErrors(apiKey: 0, errorCodes: [6, 7, 19, 5, 13, 20, 6, 7, 19, 5, 13, 20])
        let flowing = await pollUntil(timeout: .seconds(15)) { log.acceptedCount >= before + 80 }
        // 4. Back to normal for a last 80 jobs.
        let settled = log.acceptedCount
        let normal = await pollUntil(timeout: .seconds(15)) { log.acceptedCount >= settled + 80 }
        log.stop()
        for lane in lanes { await lane.value }

        let entries = log.entries
        let accepted = entries.compactMap(\.acceptedID)
        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(30))
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: recovery)

        #expect(answering, "no 202 within 20 s of the broker coming back: \(log.summary)\n\(scenario.logTails())")
        #expect(flowing, "jobs stopped flowing under injected produce errors: \(log.summary)\n\(scenario.logTails())")
        #expect(normal, "jobs did not flow again after the faults: \(log.summary)\n\(scenario.logTails())")
        #expect(Set(accepted).count == accepted.count, "a job id was answered twice")
        let refusals = entries.filter { $0.acceptedID == nil }
        #expect(!refusals.isEmpty, "the outage refused nothing: \(log.summary)")
        let badRefusals = refusals.filter { !$0.isProperUnavailable }
        #expect(badRefusals.isEmpty, "\(badRefusals.count) refusals are not 503 + Retry-After + problem+json: \(badRefusals.prefix(3).map(\.description))")
        // A request sent once no partition had a leader, and answered before the first got one back, can't
        // have been acknowledged. (The commands topic comes first in `topics.all`: it is writable again
        // while the other topics still wait for their leader, so `upAt` would be too late a bound.)
        // Every time in the failure messages counts from when the first leader was taken away.
        let phases = String(format: "leaders taken away from 0 to %.3f s, given back from %.3f to %.3f s, slow from %.3f s, produce errors from %.3f s",
                            downAt.seconds(since: downBegins), upBegins.seconds(since: downBegins), upAt.seconds(since: downBegins),
                            slowAt.seconds(since: downBegins), errorsAt.seconds(since: downBegins))
        func timed(_ entry: SubmissionLog.Entry) -> String {
            let times = String(format: "sent at %.3f s, answered at %.3f s",
                               entry.sentAt.seconds(since: downBegins), entry.answeredAt.seconds(since: downBegins))
            return "\(entry.acceptedID?.rawValue ?? "refused") \(times): \(entry.description)"
        }
        let impossible = entries.filter { $0.acceptedID != nil && $0.sentAt > downAt && $0.answeredAt < upBegins }
        #expect(impossible.isEmpty, "\(impossible.count) jobs accepted while the broker was down: \(impossible.prefix(3).map(timed)) (\(phases))")
        let notOnce = accepted.filter { analysis.finals[$0]?.status != .succeeded || analysis.endLines($0).count != 1 }
        let answers = notOnce.prefix(5).compactMap { id in entries.first { $0.acceptedID == id } }.map(timed)
        #expect(notOnce.isEmpty, """
            \(notOnce.count) accepted jobs did not succeed exactly once: \(analysis.describe(notOnce.prefix(5)))
            \(answers) (\(phases))
            """)
    }
}

/// Every answer the submitting clients got, with when they sent and got it.
final class SubmissionLog: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        let sentAt: Date
        let answeredAt: Date
        let acceptedID: JobID?
        let status: Int?
        let retryAfter: String?
        let contentType: String?
        let problemStatus: Int?
        let text: String

        var isProperUnavailable: Bool {
            status == 503 && retryAfter != nil && contentType == "application/problem+json" && problemStatus == 503
        }

        var description: String {
            "\(status.map(String.init) ?? "no answer") Retry-After=\(retryAfter ?? "-") \(contentType ?? "-") \(text.prefix(200))"
        }
    }

    private let state = Mutex<(entries: [Entry], stopped: Bool)>(([], false))
    let limit: Int

    init(limit: Int) { self.limit = limit }

    var entries: [Entry] { state.withLock { $0.entries } }
    var acceptedCount: Int { state.withLock { $0.entries.count { $0.acceptedID != nil } } }
    var isDone: Bool { state.withLock { $0.stopped || $0.entries.count >= limit } }
    func stop() { state.withLock { $0.stopped = true } }

    func firstAcceptance(after date: Date) -> Date? {
        state.withLock { $0.entries.filter { $0.acceptedID != nil && $0.answeredAt > date }.map(\.answeredAt).min() }
    }

    var summary: String {
        let all = entries
        let byStatus = Dictionary(grouping: all, by: { $0.status.map(String.init) ?? "error" }).mapValues(\.count)
        return "\(all.count) requests: \(byStatus)"
    }

    private func record(_ entry: Entry) { state.withLock { $0.entries.append(entry) } }

    /// Submits `body` every 50 ms until stopped, reconnecting after a transport error.
    func submitContinuously(port: Int, body: String) async {
        while !isDone {
            do {
                try await TestClient.withClient(host: "127.0.0.1", port: port) { http in
                    let client = GatewayClient(http)
                    while !self.isDone {
                        let sentAt = Date()
                        let reply = try await client.request(.post, "/jobs", json: body)
                        let id = reply.status == .accepted ? try? reply.snapshot().id : nil
                        self.record(Entry(sentAt: sentAt, answeredAt: Date(), acceptedID: id, status: reply.status.code,
                                          retryAfter: reply.headers[.retryAfter], contentType: reply.headers[.contentType],
                                          problemStatus: try? reply.problem().status, text: reply.text))
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            } catch {
                record(Entry(sentAt: Date(), answeredAt: Date(), acceptedID: nil, status: nil, retryAfter: nil, contentType: nil,
                             problemStatus: nil, text: "transport error: \(error)"))
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
