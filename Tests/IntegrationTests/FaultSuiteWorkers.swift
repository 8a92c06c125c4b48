import Foundation
import HummingbirdTesting
import JobsCore
import KafkaClient
import Testing

extension FaultSuite {
    @Test("worker-crash: every job a SIGKILLed worker held runs again on the other worker as a new attempt; none lost, none re-run after completion")
    func workerCrashRerunsHeldJobsAsNewAttempt() async throws {
        let scenario = try FaultScenario("worker-crash")
        let gateway = try await scenario.gateway("gateway")
        let a = try scenario.worker("worker-a", ["--concurrency", "16"])
        try await a.waitUntilReady()
        let b = try scenario.worker("worker-b", ["--concurrency", "16"])
        try await b.waitUntilReady()

        let accepted = try await gateway.submitAll(Array(repeating: FaultJobs.sleep(steps: 10, stepMs: 50), count: 200))
        try await scenario.waitUntil("both workers run jobs", timeout: .seconds(20)) { lines in
            lines.unfinished(on: a.pid).count >= 4 && !lines.starts(on: b.pid).isEmpty
        }
        let killedAt = Date()
        await a.process.stop(SIGKILL)

        // The group notices after session.timeout.ms; the embedded coordinator then waits about as long again.
        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(45))
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let lines = scenario.watcher.lines
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: lines, killedPIDs: [a.pid])

        let held = lines.unfinished(on: a.pid)
        let (recovery, missing) = Self.reruns(of: held, killedPID: a.pid, killedAt: killedAt, lines: lines, analysis: analysis)
        await scenario.report(analysis, worstRecovery: recovery)

        #expect(!held.isEmpty, "the kill hit no running job")
        #expect(missing.isEmpty, """
            \(missing.count) of the \(held.count) jobs worker-a held were not run again as a new attempt that succeeded: \
            \(analysis.describe(missing.prefix(5)))
            \(scenario.logTails())
            """)
        #expect(recovery < 30, "the held jobs' next attempts started up to \(recovery) s after the kill")
        #expect(accepted.allSatisfy { analysis.finals[$0]?.status == .succeeded },
                "not succeeded: \(analysis.describe(accepted.filter { analysis.finals[$0]?.status != .succeeded }.prefix(5)))")
    }

    @Test("worker-restart: a SIGKILLed worker restarted with the same id never runs a finished job again")
    func restartedWorkerNeverRerunsFinishedJobs() async throws {
        let scenario = try FaultScenario("worker-restart")
        let gateway = try await scenario.gateway("gateway")
        let first = try scenario.worker("worker-r", label: "worker-r-1", ["--concurrency", "16"])
        try await first.waitUntilReady()

        let accepted = try await gateway.submitAll(Array(repeating: FaultJobs.sleep(steps: 4, stepMs: 50), count: 300))
        // Killed with many jobs finished, some of them past the last commit (commits go out once a
        // second), and some running (jobs start and end in waves, so wait for a wave under way).
        try await scenario.waitUntil("100 jobs ended and more run", timeout: .seconds(30)) { lines in
            lines.filter { $0.pid == first.pid && $0.event == .end }.count >= 100 && lines.unfinished(on: first.pid).count >= 4
        }
        let killedAt = Date()
        await first.process.stop(SIGKILL)
        let second = try scenario.worker("worker-r", label: "worker-r-2", ["--concurrency", "16"])

        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(45))
        // Re-delivered commands of finished jobs the restarted worker skipped (for the message; it depends on commit timing).
        let skipped = second.process.log.components(separatedBy: "job already finished").count - 1
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let lines = scenario.watcher.lines
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: lines, killedPIDs: [first.pid])

        let held = lines.unfinished(on: first.pid)
        let (recovery, missing) = Self.reruns(of: held, killedPID: first.pid, killedAt: killedAt, lines: lines, analysis: analysis)
        await scenario.report(analysis, worstRecovery: recovery)

        // A finished job's handler ran to its end once; an extra end is only
        // allowed from the killed process for an attempt that never got its result published.
        let endedTwice = accepted.filter { id in
            let terminalAttempts = Set(analysis.terminals[id]?.map(\.attempt) ?? [])
            return analysis.endLines(id).filter { !($0.pid == first.pid && !terminalAttempts.contains($0.attempt)) }.count > 1
        }
        #expect(!held.isEmpty, "the kill hit no running job")
        #expect(endedTwice.isEmpty, """
            \(endedTwice.count) jobs ended twice: \(analysis.describe(endedTwice.prefix(5))) \
            (the restarted worker skipped \(skipped) finished jobs)
            """)
        #expect(missing.isEmpty, """
            \(missing.count) of the \(held.count) jobs the killed worker held were not run again as a new attempt: \
            \(analysis.describe(missing.prefix(5)))
            \(scenario.logTails())
            """)
        #expect(accepted.allSatisfy { analysis.finals[$0]?.status == .succeeded },
                "not succeeded: \(analysis.describe(accepted.filter { analysis.finals[$0]?.status != .succeeded }.prefix(5)))")
    }

    @Test("long-job: a job running far past max.poll.interval.ms keeps its worker in the group, as attempt 1, while short jobs flow")
    func longJobDoesNotEvictItsWorker() async throws {
        let scenario = try FaultScenario("long-job")
        let gateway = try await scenario.gateway("gateway")
        var worker = try scenario.worker("worker-long", ["--concurrency", "4", "--kafka", "max.poll.interval.ms=7000"])
        let startsAsDocumented = try await worker.readyOrExited()
        #expect(startsAsDocumented, """
            a worker given only --kafka max.poll.interval.ms=7000 (above its 6 s session timeout) does not start:
            \(worker.process.log.suffix(2000))
            """)
        if !startsAsDocumented {
            // Found by this suite and fixed in 2fa9926: every client of the worker got the --kafka
            // properties, and its status and control readers kept librdkafka's 45 s session
            // timeout, which max.poll.interval.ms may not be below. If that comes back, the
            // scenario still runs, with the readers given the worker's 6 s too.
            worker = try scenario.worker("worker-long", label: "worker-long-retry",
                                         ["--concurrency", "4", "--kafka", "max.poll.interval.ms=7000", "--kafka", "session.timeout.ms=6000"])
            try await worker.waitUntilReady()
        }

        let long = try await gateway.submitAll([FaultJobs.sleep(steps: 20, stepMs: 1000)])[0]
        try await scenario.waitUntil("the long job started", timeout: .seconds(10)) { lines in
            lines.contains { $0.jobID == long && $0.event == .start }
        }
        // About 100 short jobs, 7 a second for 15 s, while the long one runs.
        let shorts = try await gateway.withClient { client in
            var ids: [JobID] = []
            for _ in 0..<15 {
                let round = ContinuousClock.now
                for _ in 0..<7 { ids.append(try await client.submit(FaultJobs.sleep(steps: 2, stepMs: 50)).id) }
                try await Task.sleep(until: round + .seconds(1))
            }
            return ids
        }
        let accepted = [long] + shorts
        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(30))
        let workerLog = worker.process.log
        let stillRunning = worker.process.isRunning
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: 0)

        let final = try #require(analysis.finals[long], "no snapshot of the long job")
        #expect(final.status == .succeeded && final.attempt == 1, "long job: \(analysis.describe([long]))")
        #expect(analysis.startLines(long).count == 1 && analysis.endLines(long).count == 1, "long job: \(analysis.describe([long]))")
        #expect(stillRunning, "the worker exited:\n\(workerLog.suffix(3000))")
        #expect(!workerLog.contains("partitions revoked"), "the worker lost its partitions:\n\(workerLog.suffix(3000))")
        #expect(!workerLog.lowercased().contains("maximum poll interval"), "the worker was evicted:\n\(workerLog.suffix(3000))")
        let longFinished = try #require(final.finishedAt)
        let late = shorts.filter { id in (analysis.finals[id]?.finishedAt).map { $0 >= longFinished } ?? true }
        #expect(late.isEmpty, "\(late.count) of \(shorts.count) short jobs did not finish while the long one ran: \(analysis.describe(late.prefix(5)))")
        #expect(shorts.allSatisfy { analysis.finals[$0]?.status == .succeeded })
    }

    @Test("graceful-shutdown: SIGTERM lets short jobs finish, hands long ones back to run on another worker as attempt 2, takes nothing new; a gateway answers its in-flight requests in full")
    func gracefulShutdownDrainsAndHandsBack() async throws {
        let scenario = try FaultScenario("graceful-shutdown")
        let gateway = try await scenario.gateway("gateway")
        let stoppingGateway = try await scenario.gateway("gateway-sigterm")
        let drainSeconds = 2
        let a = try scenario.worker("worker-a", ["--concurrency", "16", "--drain-timeout", "\(drainSeconds)"])
        try await a.waitUntilReady()
        let b = try scenario.worker("worker-b", ["--concurrency", "16"])
        try await b.waitUntilReady()

        // 8 long jobs (15 s) among 72 short ones (0.8 s, well within the drain timeout).
        let bodies = (0..<80).map { $0 % 10 == 0 ? FaultJobs.sleep(steps: 30, stepMs: 500) : FaultJobs.sleep(steps: 4, stepMs: 200) }
        let submitted = try await gateway.submitAll(bodies)
        let longIDs = Set(submitted.enumerated().filter { $0.offset % 10 == 0 }.map(\.element))
        try await scenario.waitUntil("worker-a runs long and short jobs", timeout: .seconds(15)) { lines in
            let held = lines.unfinished(on: a.pid).keys
            return held.contains(where: longIDs.contains) && held.contains { !longIDs.contains($0) }
        }

        let sigtermAt = Date()
        let stopped = Task { await a.process.stop(SIGTERM, timeout: .seconds(30)); return Date() }
        try await a.process.waitForLog("draining", timeout: .seconds(5))
        let drainingSeenAt = Date()
        // Submitted while worker-a drains: it must not take them.
        let late = try await gateway.submitAll(Array(repeating: FaultJobs.sleep(steps: 2, stepMs: 50), count: 20), lanes: 2)
        let exitedAt = await stopped.value

        // The gateway part: SIGTERM with requests in flight (a slow broker keeps them in flight).
        let gatewayPart = try await Self.sigtermGatewayWithRequestsInFlight(scenario, stoppingGateway)

        let accepted = submitted + late + gatewayPart.accepted
        _ = try await scenario.waitForTerminal(accepted, timeout: .seconds(50))
        let aLog = a.process.log
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let lines = scenario.watcher.lines
        let analysis = FaultAnalysis(accepted: accepted, events: events, executions: lines)

        let startedOnA = Set(lines.starts(on: a.pid).map(\.jobID))
        let longOnA = longIDs.filter(startedOnA.contains)
        let shortOnA = submitted.filter { !longIDs.contains($0) && startedOnA.contains($0) }
        var recovery = 0.0
        for id in longOnA {
            if let rerun = lines.filter({ $0.jobID == id && $0.event == .start && $0.pid == b.pid && $0.attempt >= 2 }).min(by: { $0.notAfter < $1.notAfter }) {
                recovery = max(recovery, rerun.notAfter.seconds(since: sigtermAt))
            }
        }
        await scenario.report(analysis, worstRecovery: recovery)

        #expect(!longOnA.isEmpty && !shortOnA.isEmpty, "worker-a ran \(longOnA.count) long and \(shortOnA.count) short jobs")
        let notSucceeded = accepted.filter { analysis.finals[$0]?.status != .succeeded }
        #expect(notSucceeded.isEmpty, "\(notSucceeded.count) jobs did not succeed: \(analysis.describe(notSucceeded.prefix(5)))")
        let shortMoved = shortOnA.filter { id in
            let final = analysis.finals[id]
            return final?.workerID != a.workerID || final?.attempt != 1 || !analysis.endLines(id).contains { $0.pid == a.pid }
        }
        #expect(shortMoved.isEmpty, "short jobs worker-a started did not finish there: \(analysis.describe(shortMoved.prefix(5)))")
        let longNotHandedBack = longOnA.filter { id in
            let final = analysis.finals[id]
            let requeued = events.contains { $0.id == id && $0.status == .queued && $0.attempt == 2 }
            return final?.workerID != b.workerID || final?.attempt != 2 || !requeued || analysis.endLines(id).contains { $0.pid == a.pid }
        }
        #expect(longNotHandedBack.isEmpty, """
            long jobs not handed back to run on worker-b as attempt 2: \(analysis.describe(longNotHandedBack.prefix(5)))
            \(aLog.suffix(3000))
            """)
        let takenWhileDraining = lines.starts(on: a.pid).filter { $0.notBefore > drainingSeenAt || late.contains($0.jobID) }
        #expect(takenWhileDraining.isEmpty, "worker-a started jobs while draining: \(analysis.describe(takenWhileDraining.map(\.jobID).prefix(5)))")
        let exitSeconds = exitedAt.seconds(since: sigtermAt)
        #expect(exitSeconds < Double(drainSeconds) + 15, "worker-a took \(exitSeconds) s to exit")
        #expect(aLog.contains("worker stopped"), "worker-a did not stop cleanly:\n\(aLog.suffix(3000))")

        // The gateway's in-flight requests were answered in full; later ones were answered or refused.
        let incomplete = gatewayPart.inFlight.filter { outcome in
            if case .complete(202, _, _) = outcome { return false }
            return true
        }
        #expect(incomplete.isEmpty, "in-flight requests not answered 202 in full: \(incomplete)\n\(stoppingGateway.process.log.suffix(3000))")
        let truncated = (gatewayPart.inFlight + gatewayPart.afterSignal).filter { if case .truncated = $0 { true } else { false } }
        #expect(truncated.isEmpty, "truncated answers: \(truncated)")
        #expect(gatewayPart.exitSeconds < 15, "the gateway took \(gatewayPart.exitSeconds) s to exit after SIGTERM")
    }

    @Test("cancel-during-drain: a job cancelled while its worker drains ends cancelled within a second, not handed back")
    func cancelDuringDrainStopsTheJob() async throws {
        let scenario = try FaultScenario("cancel-during-drain")
        let gateway = try await scenario.gateway("gateway")
        let worker = try scenario.worker("worker-d", ["--concurrency", "16", "--drain-timeout", "30"])
        try await worker.waitUntilReady()

        // The target would run 30 s; the others 4 s, so the drain ends with them.
        let submitted = try await gateway.submitAll([FaultJobs.sleep(steps: 60, stepMs: 500)]
            + Array(repeating: FaultJobs.sleep(steps: 8, stepMs: 500), count: 3), lanes: 1)
        let target = submitted[0]
        try await scenario.waitUntil("all four jobs run", timeout: .seconds(10)) { lines in
            Set(lines.starts(on: worker.pid).map(\.jobID)).isSuperset(of: submitted)
        }

        let sigtermAt = Date()
        let stopped = Task { await worker.process.stop(SIGTERM, timeout: .seconds(40)); return Date() }
        try await worker.process.waitForLog("draining", timeout: .seconds(5))
        let requestedAt = Date()
        let reply = try await gateway.withClient { try await $0.request(.post, "/jobs/\(target)/cancel") }
        #expect(reply.status == .accepted, "cancel answered \(reply.status): \(reply.text)")
        let targetEvents = try await scenario.waitForTerminal([target], timeout: .seconds(5))
        let ended = targetEvents.last { $0.id == target && $0.status.isTerminal }
        let latency = (ended?.finishedAt ?? Date()).seconds(since: requestedAt)

        _ = try await scenario.waitForTerminal(submitted, timeout: .seconds(20))
        let exitedAt = await stopped.value
        let workerLog = worker.process.log
        await scenario.stopAll()
        await scenario.watcher.stop()
        let events = try await scenario.allStatusEvents()
        let analysis = FaultAnalysis(accepted: submitted, events: events, executions: scenario.watcher.lines)
        await scenario.report(analysis, worstRecovery: latency)

        let final = analysis.finals[target]
        #expect(final?.status == .cancelled && final?.attempt == 1, "target: \(analysis.describe([target]))\n\(workerLog.suffix(3000))")
        #expect(ended != nil && latency < 1, "the cancel took \(latency) s to end the job")
        #expect(!events.contains { $0.id == target && $0.attempt > 1 }, "the target was handed back: \(analysis.describe([target]))")
        #expect(analysis.endLines(target).isEmpty && analysis.startLines(target).count == 1, "target: \(analysis.describe([target]))")
        let others = submitted.dropFirst()
        #expect(others.allSatisfy { analysis.finals[$0]?.status == .succeeded && analysis.finals[$0]?.attempt == 1 },
                "the other jobs: \(analysis.describe(others))")
        #expect(workerLog.contains("worker stopped"), "the worker did not stop cleanly:\n\(workerLog.suffix(3000))")
        #expect(exitedAt.seconds(since: sigtermAt) < 15, "the worker took \(exitedAt.seconds(since: sigtermAt)) s to exit")
    }

    @Test("broker-gone-shutdown: a worker that can write nowhere still exits cleanly within 8 s of SIGTERM")
    func shutdownWithoutBrokerIsBounded() async throws {
        let scenario = try FaultScenario("broker-gone-shutdown")
        let worker = try scenario.worker("worker-g")
        try await worker.waitUntilReady()

        // No partition has a leader from now on: heartbeats, and the final one
        // sent at shutdown, wait in the producer until their 10 s message timeout.
        scenario.system.setLeader(-1, of: scenario.system.topics.all)
        try await Task.sleep(for: .seconds(2))
        let sigtermAt = Date()
        await worker.process.stop(SIGTERM, timeout: .seconds(40))
        let exitSeconds = Date().seconds(since: sigtermAt)
        let workerLog = worker.process.log
        scenario.system.setLeader(1, of: scenario.system.topics.all)
        await scenario.stopAll()
        await scenario.watcher.stop()

        #expect(workerLog.contains("worker stopped"), "the worker did not stop cleanly:\n\(workerLog.suffix(3000))")
        #expect(exitSeconds < 8, "the worker took \(exitSeconds) s to exit:\n\(workerLog.suffix(3000))")
    }
}

extension FaultSuite {
    struct GatewayShutdown {
        var inFlight: [RawHTTP.Outcome]
        var afterSignal: [RawHTTP.Outcome]
        var accepted: [JobID]
        var exitSeconds: Double
    }

    /// Sends 8 requests, waits until the gateway has read them all (its side of
    /// each connection has nothing left to read) while a 800 ms broker round
    /// trip keeps them from being answered, sends SIGTERM, then 4 more requests.
    static func sigtermGatewayWithRequestsInFlight(_ scenario: FaultScenario, _ gateway: GatewayProcess) async throws -> GatewayShutdown {
        scenario.cluster.setRoundTripTime(800)
        defer { scenario.cluster.setRoundTripTime(0) }
        let port = gateway.port
        let progress = (0..<8).map { _ in RawHTTP.Progress() }
        let inFlightTasks = progress.map { progress in
            Task { await RawHTTP.post(port: port, path: "/jobs", json: FaultJobs.noop, progress: progress) }
        }
        let allRead = await pollUntil(timeout: .seconds(10)) {
            progress.allSatisfy { progress in
                progress.written && progress.localPort.map { RawHTTP.serverHasRead(serverPort: port, clientPort: $0) } == true
            }
        }
        #expect(allRead, "the gateway did not read all 8 requests")
        let signalledAt = Date()
        let stopped = Task { await gateway.process.stop(SIGTERM, timeout: .seconds(20)); return Date() }
        let afterTasks = (0..<4).map { _ in Task { await RawHTTP.post(port: port, path: "/jobs", json: FaultJobs.noop) } }
        var inFlight: [RawHTTP.Outcome] = []
        for task in inFlightTasks { inFlight.append(await task.value) }
        var afterSignal: [RawHTTP.Outcome] = []
        for task in afterTasks { afterSignal.append(await task.value) }
        let exitedAt = await stopped.value

        var accepted: [JobID] = []
        for outcome in inFlight + afterSignal {
            if case .complete(202, _, let body) = outcome, let snapshot = try? WireFormat.decode(JobSnapshot.self, from: body) {
                accepted.append(snapshot.id)
            }
        }
        return GatewayShutdown(inFlight: inFlight, afterSignal: afterSignal, accepted: accepted,
                               exitSeconds: exitedAt.seconds(since: signalledAt))
    }
}
