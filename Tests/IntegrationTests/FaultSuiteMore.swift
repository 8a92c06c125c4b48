import Foundation
import HTTPTypes
import HummingbirdTesting
import JobsCore
import KafkaClient
import Testing

// Scenarios of items 8, 9, 10 and 12 of issue 3, across processes: cancel while
// queued, retries and timeouts, stalled jobs, idempotent submit.

extension FaultSuite {
    @Test("cancel-while-queued: jobs cancelled behind a long backlog never start and end cancelled when their turn comes; the others succeed")
    func cancelWhileQueuedNeverStarts() async throws {
        let scenario = try FaultScenario("cancel-while-queued", partitions: 1)
        let gateway = try await scenario.gateway("gateway")
        let worker = try scenario.worker("worker-q", ["--concurrency", "1"])
        try await worker.waitUntilReady()

        // The blocker would run 60 s; it is cancelled once the queued jobs are.
        let blocker = try await gateway.submitAll([FaultJobs.sleep(steps: 600, stepMs: 100)])[0]
        try await scenario.waitUntil("the blocker started", timeout: .seconds(15)) { lines in
            lines.contains { $0.jobID == blocker && $0.event == .start }
        }
        let queued = try await gateway.submitAll(Array(repeating: FaultJobs.noop, count: 50), lanes: 1)
        let cancelled = queued.enumerated().filter { $0.offset % 5 < 2 }.map(\.element)  // 20 of 50, spread over the backlog
        let kept = queued.filter { !cancelled.contains($0) }

        let badReplies = try await gateway.withClient { client in
            var badReplies: [String] = []
            for id in cancelled {
                let reply = try await client.request(.post, "/jobs/\(id)/cancel")
                let body = try? reply.snapshot()
                if reply.status != .accepted || body?.status != .queued || body?.cancelRequested != true {
                    badReplies.append("\(id): \(reply.status.code) \(reply.text.prefix(200))")
                }
            }
            return badReplies
        }

        // Free the worker: the cancelled jobs' commands come up and end them without running them.
        let freed = try await gateway.withClient { try await $0.request(.post, "/jobs/\(blocker)/cancel") }
        #expect(freed.status == .accepted, "cancel of the blocker answered \(freed.status): \(freed.text)")
        let accepted = [blocker] + queued
        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(30))
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: 0)

        #expect(badReplies.isEmpty, "cancels not answered 202 with the queued job, cancel requested: \(badReplies.prefix(5))")
        let notCancelled = cancelled.filter { analysis.finals[$0]?.status != .cancelled }
        #expect(notCancelled.isEmpty, "\(notCancelled.count) cancelled jobs did not end cancelled: \(analysis.describe(notCancelled.prefix(5)))")
        let started = cancelled.filter { id in !analysis.startLines(id).isEmpty || events.contains { $0.id == id && $0.status == .running } }
        #expect(started.isEmpty, "\(started.count) cancelled jobs started: \(analysis.describe(started.prefix(5)))")
        let notSucceeded = kept.filter { analysis.finals[$0]?.status != .succeeded || analysis.startLines($0).count != 1 }
        #expect(notSucceeded.isEmpty, "\(notSucceeded.count) jobs not cancelled did not succeed once: \(analysis.describe(notSucceeded.prefix(5)))")
        #expect(analysis.finals[blocker]?.status == .cancelled, "blocker: \(analysis.describe([blocker]))")
    }

    @Test("retries-and-timeouts: a throwing handler is retried as new attempts up to maxAttempts, then fails with the last error; an attempt over timeoutMs fails with code timeout")
    func retriesAndTimeouts() async throws {
        let scenario = try FaultScenario("retries-and-timeouts")
        let gateway = try await scenario.gateway("gateway")
        let worker = try scenario.worker("worker-f", ["--concurrency", "16"])
        try await worker.waitUntilReady()

        // The gateway learns `flaky` from the worker's heartbeat.
        let firstFlaky = try await gateway.withClient { client -> (JobID?, String) in
            let deadline = ContinuousClock.now + .seconds(20)
            var last = ""
            while ContinuousClock.now < deadline {
                let reply = try await client.request(.post, "/jobs", json: #"{"type":"flaky","params":{"failures":0}}"#)
                if reply.status == .accepted { return (try reply.snapshot().id, "") }
                last = "\(reply.status.code) \(reply.text.prefix(300))"
                if reply.status != .badRequest { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            return (nil, last)
        }
        let firstID = try #require(firstFlaky.0, "the gateway never accepted a flaky job: \(firstFlaky.1)\n\(scenario.logTails())")

        let failureCounts = [0, 1, 2, 5]
        let flakyBodies = (0..<100).map { #"{"type":"flaky","params":{"failures":\#(failureCounts[$0 % 4])}}"# }
        let timeoutBodies = Array(repeating: #"{"type":"sleep","params":{"steps":100,"stepMs":50},"timeoutMs":300}"#, count: 5)
        let submitted = try await gateway.submitAll(flakyBodies + timeoutBodies)
        var failuresOf: [JobID: Int] = [firstID: 0]
        for (index, id) in submitted.prefix(100).enumerated() { failuresOf[id] = failureCounts[index % 4] }
        let timeouts = Array(submitted.suffix(5))
        let accepted = [firstID] + submitted

        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(40))
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: 0)

        var wrong: [String] = []
        for (id, failures) in failuresOf {
            let final = analysis.finals[id]
            let expectedAttempts = min(failures + 1, 3)
            let startAttempts = analysis.startLines(id).map(\.attempt).sorted()
            let runningAttempts = Set((analysis.allEvents[id] ?? []).filter { $0.status == .running }.map(\.attempt))
            let requeues = (analysis.allEvents[id] ?? []).filter { $0.status == .queued && $0.attempt > 1 }
            var problems: [String] = []
            if failures <= 2 {
                if final?.status != .succeeded || final?.attempt != failures + 1 { problems.append("expected succeeded#\(failures + 1)") }
            } else {
                if final?.status != .failed || final?.attempt != 3 { problems.append("expected failed#3") }
                if final?.error?.message != "flaked on attempt 3" { problems.append("error \(final?.error.map { "\($0.code): \($0.message)" } ?? "none")") }
            }
            if startAttempts != Array(1...expectedAttempts) { problems.append("executions \(startAttempts)") }
            if runningAttempts != Set(1...expectedAttempts) { problems.append("running snapshots for attempts \(runningAttempts.sorted())") }
            if Set(requeues.map(\.attempt)) != Set(expectedAttempts > 1 ? Array(2...expectedAttempts) : []) {
                problems.append("requeued as attempts \(requeues.map(\.attempt))")
            }
            if !problems.isEmpty { wrong.append("\(analysis.describe([id])) (failures \(failures)): \(problems.joined(separator: ", "))") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) flaky jobs went wrong: \(wrong.prefix(5).joined(separator: "\n"))")

        let badTimeouts = timeouts.filter { id in
            let final = analysis.finals[id]
            return final?.status != .failed || final?.error?.code != "timeout" || final?.attempt != 1
                || analysis.startLines(id).count != 1 || !analysis.endLines(id).isEmpty
        }
        #expect(badTimeouts.isEmpty, """
            \(badTimeouts.count) jobs over their timeoutMs did not fail with code timeout after one execution: \
            \(badTimeouts.prefix(3).map { "\(analysis.describe([$0])) error \(analysis.finals[$0]?.error.map { "\($0.code): \($0.message)" } ?? "none")" })
            """)
    }

    @Test("stalled: the jobs of a SIGKILLed worker show stalled: true (topic and GET) until their next attempt starts; final snapshots are not stalled")
    func killedWorkersJobsShowStalled() async throws {
        let scenario = try FaultScenario("stalled")
        let gateway = try await scenario.gateway("gateway", ["--worker-silence-ms", "3000"])
        let a = try scenario.worker("worker-a", ["--concurrency", "8"])
        try await a.waitUntilReady()
        let b = try scenario.worker("worker-b", ["--concurrency", "16"])
        try await b.waitUntilReady()

        let accepted = try await gateway.submitAll(Array(repeating: FaultJobs.sleep(steps: 16, stepMs: 500), count: 16))
        try await scenario.waitUntil("both workers run jobs", timeout: .seconds(20)) { lines in
            lines.unfinished(on: a.pid).count >= 2 && !lines.starts(on: b.pid).isEmpty
        }
        let killedAt = Date()
        await a.process.stop(SIGKILL)
        let held = scenario.watcher.lines.unfinished(on: a.pid)

        // Poll GET for each held job until it is seen stalled (at its held attempt) or at a later attempt.
        struct Seen { var stalledAt: Date?; var laterFirst: Bool = false }
        let seen = try await gateway.withClient { client in
            var seen: [JobID: Seen] = [:]
            let deadline = ContinuousClock.now + .seconds(40)
            while seen.count < held.count, ContinuousClock.now < deadline {
                for (id, attempt) in held where seen[id] == nil {
                    guard let snapshot = try? await client.request(.get, "/jobs/\(id)").snapshot() else { continue }
                    if snapshot.isStalled, snapshot.attempt == attempt { seen[id] = Seen(stalledAt: Date()) }
                    else if snapshot.attempt > attempt || snapshot.status.isTerminal { seen[id] = Seen(stalledAt: nil, laterFirst: true) }
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            return seen
        }

        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(50))
        let finalViews = try await gateway.withClient { client in
            var views: [JobID: JobSnapshot] = [:]
            for id in held.keys {
                let deadline = ContinuousClock.now + .seconds(10)
                var snapshot = try? await client.request(.get, "/jobs/\(id)").snapshot()
                while snapshot?.status.isTerminal != true, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                    snapshot = try? await client.request(.get, "/jobs/\(id)").snapshot()
                }
                views[id] = snapshot
            }
            return views
        }
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let lines = scenario.watcher.lines
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: lines, killedPIDs: [a.pid])
        let worst = held.keys.compactMap { seen[$0]?.stalledAt?.seconds(since: killedAt) }.max() ?? 0
        await scenario.report(analysis, worstRecovery: worst)

        #expect(!held.isEmpty, "the kill hit no running job")
        let notSeenStalled = held.keys.filter { seen[$0]?.stalledAt == nil }
        #expect(notSeenStalled.isEmpty, """
            \(notSeenStalled.count) of \(held.count) held jobs were never seen stalled on GET before a later attempt: \
            \(notSeenStalled.prefix(3).map { "\($0) later first: \(seen[$0]?.laterFirst ?? false)" })
            \(analysis.timeline(notSeenStalled.prefix(2)))
            """)
        // On the topic (one partition per job, so in order): a stalled mark of the held attempt before any later attempt.
        let notStalledOnTopic = held.filter { id, attempt in
            let jobEvents = analysis.allEvents[id] ?? []
            let firstLater = jobEvents.firstIndex { $0.attempt > attempt } ?? jobEvents.endIndex
            return !jobEvents[..<firstLater].contains { $0.isStalled && $0.attempt == attempt && $0.status == .running }
        }.map(\.key)
        #expect(notStalledOnTopic.isEmpty, """
            \(notStalledOnTopic.count) held jobs have no stalled event before their next attempt: \(analysis.timeline(notStalledOnTopic.prefix(2)))
            """)
        let notRerun = held.filter { id, attempt in
            let final = analysis.finals[id]
            return final?.status != .succeeded || final?.attempt != attempt + 1 || final?.isStalled == true
                || !lines.contains { $0.jobID == id && $0.pid == b.pid && $0.event == .start && $0.attempt == attempt + 1 }
        }.map(\.key)
        #expect(notRerun.isEmpty, "held jobs not run again as the next attempt, unstalled: \(analysis.describe(notRerun.prefix(5)))\n\(scenario.logTails())")
        let stalledTerminals = events.filter { $0.status.isTerminal && $0.isStalled }
        #expect(stalledTerminals.isEmpty, "terminal snapshots marked stalled: \(analysis.describe(stalledTerminals.map(\.id).prefix(5)))")
        let stalledViews = held.keys.filter { finalViews[$0]?.isStalled != false || finalViews[$0]?.status != .succeeded }
        #expect(stalledViews.isEmpty, "GET still shows held jobs stalled or unfinished: \(stalledViews.prefix(5).map { "\($0): \(String(describing: finalViews[$0]))" })")
        #expect(worst < 15, "the last stalled mark was seen \(worst) s after the kill")
        #expect(accepted.allSatisfy { analysis.finals[$0]?.status == .succeeded },
                "not succeeded: \(analysis.describe(accepted.filter { analysis.finals[$0]?.status != .succeeded }.prefix(5)))")
    }

    @Test("idempotent-submit: a repeated Idempotency-Key returns the same job (200), also after a gateway SIGKILL and restart; another body 409; one command per key")
    func idempotentSubmitSurvivesGatewayRestart() async throws {
        let scenario = try FaultScenario("idempotent-submit")
        let first = try await scenario.gateway("gateway-1")
        let worker = try scenario.worker("worker", ["--concurrency", "16"])
        try await worker.waitUntilReady()

        let run = UUID().uuidString.prefix(8)
        let keys = (0..<100).map { "fault-\(run)-\($0)" }
        let body: @Sendable (Int) -> String = { index in index % 2 == 0 ? FaultJobs.noop : FaultJobs.sleep(steps: 2, stepMs: 20) }

        let (ids, firstRound) = try await first.withClient { client in
            var ids: [JobID] = []
            var problems: [String] = []
            for (index, key) in keys.enumerated() {
                let created = try await client.request(.post, "/jobs", json: body(index), headers: [.idempotencyKey: key])
                guard created.status == .accepted, let id = try? created.snapshot().id else {
                    problems.append("\(key) first: \(created.status.code) \(created.text.prefix(200))")
                    continue
                }
                ids.append(id)
                let repeated = try await client.request(.post, "/jobs", json: body(index), headers: [.idempotencyKey: key])
                if repeated.status != .ok || (try? repeated.snapshot().id) != id {
                    problems.append("\(key) repeated: \(repeated.status.code) \(repeated.text.prefix(200))")
                }
            }
            return (ids, problems)
        }
        try #require(ids.count == keys.count, "not every first POST was accepted: \(firstRound.prefix(5))")

        let killedAt = Date()
        await first.process.stop(SIGKILL)
        let second = try await scenario.gateway("gateway-2")
        let ready = try await pollUntil(timeout: .seconds(30)) {
            try await second.withClient { try await $0.request(.get, "/ready") }.status == .ok
        }
        let readyAt = Date()
        try #require(ready, "gateway-2 never became ready:\n\(second.process.log.suffix(3000))")

        let (afterRestart, conflict) = try await second.withClient { client in
            var problems: [String] = []
            for (index, key) in keys.enumerated() {
                let again = try await client.request(.post, "/jobs", json: body(index), headers: [.idempotencyKey: key])
                if again.status != .ok || (try? again.snapshot().id) != ids[index] {
                    problems.append("\(key): \(again.status.code) \(again.text.prefix(200)) (was \(ids[index]))")
                }
            }
            let conflict = try await client.request(.post, "/jobs", json: FaultJobs.sleep(steps: 3, stepMs: 10),
                                                    headers: [.idempotencyKey: keys[0]])
            return (problems, conflict)
        }

        _ = try await scenario.waitForTerminal(ids, timeout: .seconds(30))
        let commands = try await scenario.system.recordCount(scenario.system.topics.commands)
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: ids, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: readyAt.seconds(since: killedAt))

        #expect(firstRound.isEmpty, "repeats before the restart: \(firstRound.prefix(5))")
        #expect(afterRestart.isEmpty, "\(afterRestart.count) repeats after the restart went wrong: \(afterRestart.prefix(5))")
        #expect(conflict.status == .conflict, "another body under a used key answered \(conflict.status): \(conflict.text)")
        #expect(Set(ids).count == ids.count, "two keys got the same job")
        #expect(commands == 100, "the commands topic holds \(commands) commands, not 100")
        let ranOtherThanOnce = ids.filter { analysis.startLines($0).count != 1 || analysis.finals[$0]?.status != .succeeded }
        #expect(ranOtherThanOnce.isEmpty, "jobs not run exactly once to success: \(analysis.describe(ranOtherThanOnce.prefix(5)))")
    }
}
