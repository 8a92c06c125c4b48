import Foundation
import HTTPTypes
import JobsCore
@testable import JobsGateway
import JobsWorker
import KafkaClient
import Synchronization
import Testing

/// Counts attempts per job id, from the handler's side.
final class AttemptCounter: Sendable {
    private let attempts = Mutex<[JobID: Int]>([:])
    func record(_ id: JobID) -> Int { attempts.withLock { $0[id, default: 0] += 1; return $0[id]! } }
    func count(_ id: JobID) -> Int { attempts.withLock { $0[id] ?? 0 } }
}

struct Flaky: Error, CustomStringConvertible {
    let attempt: Int
    var description: String { "flaked on attempt \(attempt)" }
}

@Suite("Retries, timeouts, cancels and idempotency", .timeLimit(.minutes(3)))
struct GuaranteeTests {
    static func flakyRegistry(_ counter: AttemptCounter, failures: Int, maxAttempts: Int) -> JobRegistry {
        var registry = JobRegistry.builtin
        registry.register("flaky", params: [String: Int].self,
                          options: JobOptions(maxAttempts: maxAttempts, initialBackoff: .milliseconds(50))) { _, context in
            let run = counter.record(context.jobID)
            #expect(run == context.attempt, "the handler's own count agrees with the attempt number")
            if run <= failures { throw Flaky(attempt: run) }
            return ["attempt": run]
        }
        return registry
    }

    @Test("a handler that throws is retried with backoff, each attempt visible, until it succeeds")
    func retriedUntilSuccess() async throws {
        let counter = AttemptCounter()
        let system = try TestCluster()
        try await system.withGateway(registry: Self.flakyRegistry(counter, failures: 2, maxAttempts: 3)) { client in
            let job = try await client.submit(#"{"type":"flaky"}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(done.attempt == 3)
            #expect(done.maxAttempts == 3)
            #expect(counter.count(job.id) == 3)

            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.contains { $0.id == job.id && $0.status.isTerminal }
            }.filter { $0.id == job.id }
            let requeues = events.filter { $0.status == .queued && $0.attempt > 1 }
            #expect(requeues.map(\.attempt) == [2, 3])
            #expect(requeues.map { $0.error?.message } == ["flaked on attempt 1", "flaked on attempt 2"])
            #expect(Set(events.filter { $0.status == .running }.map(\.attempt)) == [1, 2, 3])
        }
    }

    @Test("after maxAttempts the job ends failed with the last error; a request can lower maxAttempts")
    func failsAfterLastAttempt() async throws {
        let counter = AttemptCounter()
        let system = try TestCluster()
        try await system.withGateway(registry: Self.flakyRegistry(counter, failures: 100, maxAttempts: 2)) { client in
            let job = try await client.submit(#"{"type":"flaky"}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .failed)
            #expect(done.attempt == 2)
            #expect(done.error?.message == "flaked on attempt 2")

            let once = try await client.submit(#"{"type":"flaky","maxAttempts":1}"#)
            let onceDone = try await client.waitFor(once.id) { $0.status.isTerminal }
            #expect(onceDone.status == .failed)
            #expect(onceDone.attempt == 1)
            #expect(counter.count(once.id) == 1)
        }
    }

    @Test("an attempt over its timeoutMs ends failed with code timeout")
    func timeoutFails() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            let submitted = Date()
            // 30 s of steps against a 300 ms limit: far enough apart that a loaded
            // machine's delays (over 5 s in one CI rehearsal) can't blur them.
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":600,"stepMs":50},"timeoutMs":300}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .failed)
            #expect(done.error?.code == "timeout")
            #expect(done.timeoutMs == 300)
            #expect((done.progress?.current ?? 0) < 600)
            #expect(try #require(done.finishedAt).timeIntervalSince(submitted) < 20)
        }
    }

    @Test("a job cancelled while waiting behind a backlog shows the request, then ends cancelled when its worker takes it, unrun")
    func cancelWhileQueued() async throws {
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(workerConcurrency: 1) { client in
            let blocker = try await client.submit(#"{"type":"sleep","params":{"steps":600,"stepMs":100}}"#)
            try await client.waitFor(blocker.id) { $0.status == .running }
            let waiting = try await client.submit(#"{"type":"noop"}"#)

            let reply = try await client.request(.post, "/jobs/\(waiting.id)/cancel")
            #expect(reply.status == .accepted)
            let requested = try reply.snapshot()
            #expect(requested.status == .queued && requested.cancelRequested)
            // Its command waits behind the blocker: the job stays queued, its cancel requested.
            try await Task.sleep(for: .milliseconds(500))
            let meanwhile = try await client.job(waiting.id)
            #expect(meanwhile.status == .queued && meanwhile.cancelRequested)

            // Free the worker: the job's command comes up and ends it without running it.
            _ = try await client.request(.post, "/jobs/\(blocker.id)/cancel")
            try await client.waitFor(blocker.id) { $0.status.isTerminal }
            let done = try await client.waitFor(waiting.id) { $0.status.isTerminal }
            #expect(done.status == .cancelled && done.startedAt == nil)
            let after = try await client.submit(#"{"type":"noop"}"#)
            try await client.waitFor(after.id) { $0.status == .succeeded }
            let events = try await system.statusEvents(timeout: .seconds(5)) { events in
                events.contains { $0.id == after.id && $0.status == .succeeded }
            }
            #expect(!events.contains { $0.id == waiting.id && $0.status == .running }, "the cancelled job started")
            #expect(try await client.job(waiting.id).status == .cancelled)
        }
    }

    @Test("an Idempotency-Key returns the same job for the same request, 409 for another, and survives a gateway restart")
    func idempotentSubmit() async throws {
        let system = try TestCluster()
        let first = Mutex<JobID?>(nil)
        try await system.withGateway(worker: false) { client in
            let created = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: [.idempotencyKey: "order-42"])
            #expect(created.status == .accepted)
            let id = try created.snapshot().id
            first.withLock { $0 = id }

            let repeated = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: [.idempotencyKey: "order-42"])
            #expect(repeated.status == .ok)
            #expect(try repeated.snapshot().id == id)

            let different = try await client.request(.post, "/jobs", json: #"{"type":"sleep"}"#, headers: [.idempotencyKey: "order-42"])
            #expect(different.status == .conflict)
            #expect(try different.problem().type == "/problems/idempotency-key-reused")

            let tooLong = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#,
                                                   headers: [.idempotencyKey: String(repeating: "k", count: 300)])
            #expect(tooLong.status == .badRequest)
            // Two keys are not one key "a, b": refused, and nothing is created.
            var twice = HTTPFields()
            twice.append(HTTPField(name: .idempotencyKey, value: "order-43"))
            twice.append(HTTPField(name: .idempotencyKey, value: "order-44"))
            let doubled = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: twice)
            #expect(doubled.status == .badRequest)
            #expect(try doubled.problem().errors?.first?.detail == "the Idempotency-Key header must be sent once")
        }
        // A new gateway knows the key from the status topic alone.
        try await system.withGateway(worker: false) { client in
            let again = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: [.idempotencyKey: "order-42"])
            #expect(again.status == .ok)
            #expect(try again.snapshot().id == first.withLock { $0 })
        }
        #expect(try await system.recordCount(system.topics.commands) == 1)
    }

    @Test("a reused Idempotency-Key belongs to its newest job, even when the older job's records and tombstone are read after it")
    func reusedKeyBelongsToTheNewestJob() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            let created = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: [.idempotencyKey: "order-7"])
            #expect(created.status == .accepted)
            let newest = try created.snapshot()
            // The key's first job, from before its retention ran out: its last record is
            // read only now (another partition), and then its tombstone.
            let weekAgo = Date().addingTimeInterval(-8 * 86_400)
            let expired = try JobSnapshot.queued(type: "noop", params: newest.params, idempotencyKey: "order-7", at: weekAgo)
                .started(attempt: 1, by: "w", at: weekAgo).succeeded(result: nil, at: weekAgo)
            try await system.publish(expired)
            _ = try await client.waitFor(expired.id) { $0.status == .succeeded }
            let repeated = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: [.idempotencyKey: "order-7"])
            #expect(repeated.status == .ok)
            #expect(try repeated.snapshot().id == newest.id, "the key's newest job, not the one that ended a week ago")

            let producer = try KafkaProducer(configuration: system.kafka, topics: [system.topics.status], logger: .quiet)
            try await producer.send(topic: system.topics.status, key: Array(expired.id.rawValue.utf8), value: nil)
            await producer.shutdown()
            let deadline = ContinuousClock.now + .seconds(10)
            while try await client.request(.get, "/jobs/\(expired.id)").status != .notFound {
                try #require(ContinuousClock.now < deadline, "the tombstone was not folded")
                try await Task.sleep(for: .milliseconds(20))
            }
            let afterTombstone = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: [.idempotencyKey: "order-7"])
            #expect(afterTombstone.status == .ok, "the older job's tombstone took the key from the newest")
            #expect(try afterTombstone.snapshot().id == newest.id)
        }
        #expect(try await system.recordCount(system.topics.commands) == 1)
    }

    @Test("a worker takes no command until it has read the status topic to its end: an ended job is not run again, even when that topic can't be read at first")
    func waitsForTheStatusTopicBeforeActing() async throws {
        let system = try TestCluster(partitions: 1)
        let counter = AttemptCounter()
        var registry = JobRegistry.builtin
        registry.register("counted", params: [String: Int].self) { _, context -> Int in
            counter.record(context.jobID)
        }
        // A job that ran and succeeded, its command's offset never committed (its
        // worker died at once), then a job that has not run yet.
        let ended = JobSnapshot.queued(type: "counted", params: [:])
        let fresh = JobSnapshot.queued(type: "counted", params: [:])
        try await system.sendStartCommands([ended, fresh])
        try await system.publish(try ended.started(attempt: 1, by: "gone").succeeded(result: nil))
        system.setLeader(-1, of: [system.topics.status])

        try await system.withGateway(registry: registry) { _ in
            // Long enough for the worker to join its group (about 3 s) and for a
            // catch-up that gives up to give up.
            try await Task.sleep(for: .seconds(8))
            #expect(counter.count(ended.id) == 0 && counter.count(fresh.id) == 0, "nothing runs while the status topic can't be read")
            system.setLeader(1, of: [system.topics.status])
            let deadline = ContinuousClock.now + .seconds(30)
            while counter.count(fresh.id) == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(counter.count(fresh.id) == 1)
            #expect(counter.count(ended.id) == 0, "the ended job was not run again")
        }
    }

    @Test("a start command no worker could have written (sequence Int.max, a type nobody runs) is skipped; the worker goes on with the next one")
    func implausibleCommandIsSkipped() async throws {
        let system = try TestCluster(partitions: 1)
        // Ending it as `failed` (unknown type) counted its sequence on from Int.max:
        // every worker that took it trapped, one after another.
        let poison = {
            var job = JobSnapshot.queued(type: "no-such-type", params: [:])
            job.sequence = .max
            return job
        }()
        let next = JobSnapshot.queued(type: "noop", params: [:])
        try await system.sendStartCommands([poison, next])
        try await system.publish(next)
        try await system.withGateway { client in
            let done = try await client.waitFor(next.id, timeout: .seconds(30)) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(try await client.request(.get, "/jobs/\(poison.id)").status == .notFound)
        }
    }

    @Test("a copy of a running job's start command waits for that run to end, then finds the job finished: the job never runs twice")
    func copiedCommandWaitsForTheRun() async throws {
        let system = try TestCluster(partitions: 1)
        let counter = AttemptCounter()
        let occupancy = Occupancy()
        let release = Shared()
        var registry = JobRegistry.builtin
        registry.register("held", params: [String: Int].self) { _, context -> Int in
            occupancy.enter()
            defer { occupancy.leave() }
            let run = counter.record(context.jobID)
            try await gate(until: { release.count > 0 }, what: "the test to let the job end")
            return run
        }
        try await system.withGateway(registry: registry) { client in
            let job = try await client.submit(#"{"type":"held"}"#)
            try await client.waitFor(job.id) { $0.status == .running }
            // The same command again, on the same partition, as an operator replaying it would write it.
            try await system.sendStartCommands([job])
            // The worker has free slots: it takes the copy at once. Before, the copy ran as attempt 2 beside attempt 1.
            try await Task.sleep(for: .seconds(1))
            #expect(counter.count(job.id) == 1, "the copy started a second run while the first one ran")
            release.add()
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded && done.attempt == 1 && done.result == 1)
            // Time for the copy to be taken up again after the run, and to find the job finished.
            try await Task.sleep(for: .seconds(1))
            #expect(counter.count(job.id) == 1, "the finished job ran again")
            #expect(occupancy.peak == 1)
            #expect(try await client.job(job.id).status == .succeeded)
        }
    }

    @Test("the running jobs of a worker that falls silent are shown stalled until a later snapshot")
    func silentWorkerStallsItsJobs() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false, configure: { $0.workerSilenceTimeout = .seconds(1) }) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            // A worker that announced itself once, took the job, then went silent.
            let producer = try KafkaProducer(configuration: system.kafka, topics: [system.topics.workers], logger: .quiet)
            let heartbeat = WorkerHeartbeat(workerID: "ghost", jobTypes: [], concurrency: 1, runningJobs: [job.id],
                                            startedAt: Date(), intervalMs: 200)
            try await producer.send(topic: system.topics.workers, key: Array("ghost".utf8), value: WireFormat.encode(heartbeat))
            await producer.shutdown()
            let running = try job.started(attempt: 1, by: "ghost")
            try await system.publish(running)

            let stalled = try await client.waitFor(job.id, timeout: .seconds(10)) { $0.isStalled }
            #expect(stalled.status == .running)
            #expect(stalled.attempt == 1)

            // The next attempt, started elsewhere, clears the mark.
            try await system.publish(try running.started(attempt: 2, by: "other"))
            let resumed = try await client.waitFor(job.id) { $0.attempt == 2 }
            #expect(!resumed.isStalled)
        }
    }

    @Test("a stale record landing after a job's final one makes the gateway publish the final one again")
    func finalSnapshotIsReasserted() async throws {
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            let done = try job.started(attempt: 1, by: "w").succeeded(result: nil)
            try await system.publish(done)
            try await client.waitFor(job.id) { $0.status == .succeeded }
            try await system.publish(job)  // the late `queued` record
            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.filter { $0.id == job.id }.count >= 4
            }.filter { $0.id == job.id }
            #expect(events.map(\.status) == [.queued, .succeeded, .queued, .succeeded])
            #expect(events.count == 4 && events[3] == events[1], "the re-published record is the final snapshot itself")
        }
    }

    @Test("a late queued record behind a live job's cancel marker or running snapshot makes the gateway publish that one again; a late progress record does not")
    func liveJobTailIsReasserted() async throws {
        // A gateway sends a queued snapshot again when its first send failed, so it
        // can land after the job's cancel marker or a worker's `running`. Compacted,
        // the topic would then say the job was never cancelled, or never started.
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(worker: false) { client in
            let waiting = try await client.submit(#"{"type":"noop"}"#)
            #expect(try await client.request(.post, "/jobs/\(waiting.id)/cancel").status == .accepted)
            try await system.publish(waiting)  // the late `queued`, without the cancel

            let started = try await client.submit(#"{"type":"noop"}"#)
            let running = try started.started(attempt: 1, by: "w")
            try await system.publish(running)
            try await client.waitFor(started.id) { $0.status == .running }
            try await system.publish(started)  // the late `queued`

            // A worker's records come from one producer, in order: a stale one is left alone.
            let progressed = try await client.submit(#"{"type":"noop"}"#)
            let first = try progressed.started(attempt: 1, by: "w")
            let second = try first.reporting(JobProgress(current: 1, total: 2))
            try await system.publish(second)
            try await client.waitFor(progressed.id) { $0.sequence == second.sequence }
            try await system.publish(first)

            // The marker may be on the topic twice before the late record: the
            // gateway holds it from its own cancel before it reads the job's first
            // `queued` back, which it then takes for stale too (harmless).
            @Sendable func markerLast(_ events: [JobSnapshot]) -> Bool {
                let mine = events.filter { $0.id == waiting.id }
                return mine.filter { !$0.cancelRequested }.count == 2 && mine.last?.cancelRequested == true
            }
            @Sendable func runningLast(_ events: [JobSnapshot]) -> Bool {
                let mine = events.filter { $0.id == started.id }
                return mine.map(\.status) == [.queued, .running, .queued, .running] && mine[3] == mine[1]
            }
            let events = try await system.statusEvents(timeout: .seconds(10)) { markerLast($0) && runningLast($0) }
            #expect(markerLast(events), "the cancel marker is the last record again: \(events.filter { $0.id == waiting.id }.map(\.cancelRequested))")
            #expect(runningLast(events), "the running snapshot itself is the last record again: \(events.filter { $0.id == started.id }.map(\.status))")
            // Time for a re-publish of the progressed job, were one coming.
            try await Task.sleep(for: .seconds(1))
            let progressedEvents = try await system.statusEvents(timeout: .seconds(2)) { _ in false }.filter { $0.id == progressed.id }
            #expect(progressedEvents.map(\.sequence) == [0, second.sequence, first.sequence])
        }
    }

    @Test("a final snapshot that can't be re-published holds up no other job's changes")
    func stuckReassertionLeavesTheViewFolding() async throws {
        let system = try TestCluster(partitions: 1)
        let reasserting = Mutex<[JobID]>([])
        // As when the job's status partition can't be written: the publish hangs.
        let view = try JobView(configuration: system.kafka, topic: system.topics.status, logger: .quiet) { final in
            reasserting.withLock { $0.append(final.id) }
            try? await Task.sleep(for: .seconds(600))
        }
        try await withThrowingTaskGroup { group in
            group.addTask { try await view.run() }
            defer { group.cancelAll() }
            #expect(await pollUntil(timeout: .seconds(10)) { view.isReady })

            let job = JobSnapshot.queued(type: "noop", params: .object([:]))
            try await system.publish(try job.started(attempt: 1, by: "w").succeeded(result: nil))
            try await system.publish(job)  // a late `queued`, after the final one
            #expect(await pollUntil(timeout: .seconds(10)) { reasserting.withLock { $0 == [job.id] } })

            let other = JobSnapshot.queued(type: "noop", params: .object([:]))
            try await system.publish(other)
            #expect(await pollUntil(timeout: .seconds(10)) { view[other.id] != nil }, "the view folds on while the re-publish hangs")
        }
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}
