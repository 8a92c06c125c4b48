import Foundation
import JobsCore
import JobsWorker
import KafkaClient
import Synchronization
import Testing

/// How many handlers of one type run at once, and the most seen.
final class Occupancy: Sendable {
    private let state = Mutex((current: 0, peak: 0))
    func enter() { state.withLock { $0.current += 1; $0.peak = max($0.peak, $0.current) } }
    func leave() { state.withLock { $0.current -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
}

/// A count or a flag a test and its handlers share.
final class Shared: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// Polls `condition` every 10 ms inside a handler; throws after `timeout`.
func gate(until condition: () -> Bool, timeout: Duration = .seconds(20), what: String) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw JobError(code: "test_gate", message: "gave up waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

@Suite("Per-type options and the result size limit", .timeLimit(.minutes(3)))
struct WorkerOptionsTests {
    @Test("a result over maxResultBytes ends the job failed with result_too_large, and no snapshot carries it")
    func resultTooLarge() async throws {
        var registry = JobRegistry.builtin
        registry.register("blob", params: [String: Int].self, schema: ParamsSchema([.init("size", .integer(minimum: 0))])) { params, _ in
            ["data": String(repeating: "x", count: params["size"] ?? 0)]
        }
        let oversize = try WireFormat.encode(["data": JSONValue.string(String(repeating: "x", count: 70_000))]).count
        let system = try TestCluster()
        try await system.withGateway(registry: registry) { client in
            let big = try await client.submit(#"{"type":"blob","params":{"size":70000}}"#)
            let small = try await client.submit(#"{"type":"blob","params":{"size":1000}}"#)

            let bigDone = try await client.waitFor(big.id) { $0.status.isTerminal }
            #expect(bigDone.status == .failed)
            #expect(bigDone.error?.code == "result_too_large")
            #expect(bigDone.error?.message == "the result is \(oversize) bytes of JSON, over the limit of 65536 bytes (maxResultBytes)")
            #expect(bigDone.result == nil)
            #expect(bigDone.attempt == 1)

            let smallDone = try await client.waitFor(small.id) { $0.status.isTerminal }
            #expect(smallDone.status == .succeeded)
            #expect(smallDone.result == ["data": .string(String(repeating: "x", count: 1000))])

            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.contains { $0.id == big.id && $0.status.isTerminal }
            }
            #expect(!events.contains { $0.id == big.id && $0.result != nil }, "an oversize result reached the status topic")
        }
    }

    @Test("a result under maxResultBytes but over the producer's message.max.bytes ends the job failed with status_too_large, not stuck")
    func snapshotTooLargeForTheBroker() async throws {
        var registry = JobRegistry.builtin
        registry.register("blob", params: [String: Int].self, schema: ParamsSchema([.init("size", .integer(minimum: 0))])) { params, _ in
            ["data": String(repeating: "x", count: params["size"] ?? 0)]
        }
        // One partition: the job after the refused one shows that its commits go on.
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(registry: registry, configureWorker: { worker in
            worker.maxResultBytes = 1_000_000
            // librdkafka refuses a message over it before sending; under it, a batch never exceeds it either.
            worker.kafka.properties["message.max.bytes"] = "20000"
        }) { client in
            let big = try await client.submit(#"{"type":"blob","params":{"size":30000}}"#)
            let bigDone = try await client.waitFor(big.id) { $0.status.isTerminal }
            #expect(bigDone.status == .failed)
            #expect(bigDone.error?.code == "status_too_large")
            #expect(bigDone.error?.message.contains("MSG_SIZE_TOO_LARGE") == true)
            #expect(bigDone.result == nil)
            #expect(bigDone.attempt == 1)

            let small = try await client.submit(#"{"type":"blob","params":{"size":1000}}"#)
            #expect(try await client.waitFor(small.id) { $0.status.isTerminal }.status == .succeeded)
            // Both commands are done, the refused one's included: the group's lag drains to nothing.
            let probe = try ConsumerGroupLag(configuration: system.kafka, group: "jobs-workers", topic: system.topics.commands)
            var lag: [Int32: Int64] = [:]
            for _ in 0..<40 {
                lag = try await probe.lag()
                if lag.values.reduce(0, +) == 0 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(lag == [0: 0])
        }
    }

    @Test("maxConcurrent: never more than that many of a type at once, while other types run past its waiting jobs")
    func maxConcurrentPerType() async throws {
        let limited = Occupancy()
        let othersDone = Shared()
        var registry = JobRegistry.builtin
        registry.register("limited", params: [String: Int].self, options: JobOptions(maxConcurrent: 2)) { _, _ in
            limited.enter()
            defer { limited.leave() }
            // The first two hold their type's slots until the jobs queued behind the waiting ones completed:
            // if a job waiting for its type blocked the others, they never would, and these would give up.
            try await gate(until: { othersDone.count >= 3 }, what: "the other type's jobs")
            try await Task.sleep(for: .milliseconds(20))
            return ["ok": true]
        }
        registry.register("other", params: [String: Int].self) { _, _ in
            try await Task.sleep(for: .milliseconds(20))
            othersDone.add()
            return ["ok": true]
        }
        // One partition: every command queues behind the limited ones.
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(registry: registry, workerConcurrency: 8) { client in
            var jobs: [JobSnapshot] = []
            for _ in 0..<6 { jobs.append(try await client.submit(#"{"type":"limited"}"#)) }
            for _ in 0..<3 { jobs.append(try await client.submit(#"{"type":"other"}"#)) }
            for job in jobs {
                let done = try await client.waitFor(job.id) { $0.status.isTerminal }
                #expect(done.status == .succeeded, "\(done.type): \(done.error?.message ?? "")")
            }
            #expect(limited.peak == 2)
        }
    }

    @Test("a NonRetryableError, or params the handler's type can't take, end the job at once with attempts left")
    func nonRetryableFailuresEndAtOnce() async throws {
        let runs = Shared()
        var registry = JobRegistry.builtin
        let retries = JobOptions(maxAttempts: 3, initialBackoff: .milliseconds(10))
        registry.register("gone", params: [String: Int].self, options: retries) { _, _ -> Int in
            runs.add()
            throw NonRetryableError(code: "not_found", message: "nothing to work on")
        }
        // The schema lets an integer through that the Swift type can't take.
        struct Count: Codable, Sendable { var count: String }
        registry.register("mismatch", params: Count.self, schema: ParamsSchema([.init("count", .integer())]),
                          options: retries) { _, _ in runs.add(); return 0 }
        let system = try TestCluster()
        try await system.withGateway(registry: registry) { client in
            let gone = try await client.waitFor(try await client.submit(#"{"type":"gone"}"#).id) { $0.status.isTerminal }
            #expect(gone.status == .failed)
            #expect(gone.error == JobError(code: "not_found", message: "nothing to work on"))
            #expect(gone.attempt == 1)
            let mismatch = try await client.waitFor(try await client.submit(#"{"type":"mismatch","params":{"count":3}}"#).id) {
                $0.status.isTerminal
            }
            #expect(mismatch.status == .failed)
            #expect(mismatch.error?.code == "invalid_params")
            #expect(mismatch.attempt == 1)
            #expect(runs.count == 1)
        }
    }

    @Test("a handler's oversize error ends its job failed, with the message cut, instead of leaving it running")
    func oversizeErrorIsCut() async throws {
        var registry = JobRegistry.builtin
        registry.register("verbose", params: [String: Int].self, options: JobOptions(maxAttempts: 1)) { _, context -> Int in
            // Two megabytes, over the broker's message size: once the worker retried their publish for good.
            try await context.progress(current: 1, message: String(repeating: "p", count: 2_000_000))
            throw JobError(code: "boom", message: String(repeating: "e", count: 2_000_000))
        }
        let system = try TestCluster()
        try await system.withGateway(registry: registry) { client in
            let job = try await client.waitFor(try await client.submit(#"{"type":"verbose"}"#).id) { $0.status.isTerminal }
            #expect(job.status == .failed)
            #expect(job.error?.code == "boom")
            #expect(job.error.map { $0.message.utf8.count <= JobError.maxMessageBytes && $0.message.hasSuffix("…") } == true)
        }
    }

    @Test("a job's slot goes to the next job when its handler ends, not when its final snapshot is acknowledged")
    func slotFreedBeforeFinalAck() async throws {
        let starts = Mutex<[ContinuousClock.Instant]>([])
        let occupancy = Occupancy()
        var registry = JobRegistry.builtin
        registry.register("stamp", params: [String: Int].self) { _, _ in
            occupancy.enter()
            defer { occupancy.leave() }
            starts.withLock { $0.append(.now) }
            return ["ok": true]
        }
        // Every acknowledgement the worker awaits takes at least the linger: the
        // `running` snapshot before a handler, the final one after it. Long, so
        // that a loaded machine's delays (over a second a job, seen in a full
        // test run) stay well inside one linger.
        let linger = Duration.seconds(4)
        let system = try TestCluster()
        try await system.withGateway(registry: registry, workerConcurrency: 1,
                                     configureWorker: { $0.kafka.properties["linger.ms"] = "4000" }) { client in
            let first = try await client.submit(#"{"type":"stamp"}"#)
            let second = try await client.submit(#"{"type":"stamp"}"#)
            for job in [first, second] {
                #expect(try await client.waitFor(job.id, timeout: .seconds(60)) { $0.status.isTerminal }.status == .succeeded)
            }
            let stamps = starts.withLock { $0 }
            try #require(stamps.count == 2)
            let spread = stamps[1] - stamps[0]
            // Holding its slot through the first job's final acknowledgement, the
            // second handler could start 2 lingers after the first at the earliest
            // (that wait, then its own `running`); given back before it, 1 linger after.
            #expect(spread >= linger, "the linger did not reach the worker's producer: \(spread)")
            #expect(spread < linger * 2, "the slot waited for the final snapshot's acknowledgement: \(spread)")
            #expect(occupancy.peak == 1)
        }
    }

    /// Reports progress until the test says go, then succeeds, or fails if its params say so.
    static func steadfastRegistry(go: Shared, runs: Shared, maxAttempts: Int = 1) -> JobRegistry {
        var registry = JobRegistry.builtin
        registry.register("steadfast", params: [String: Bool].self, schema: ParamsSchema([.init("fail", .boolean)]),
                          options: JobOptions(maxAttempts: maxAttempts, initialBackoff: .milliseconds(50), cancellable: false)) { params, context in
            runs.add()
            var step = 0
            while go.count == 0 {
                step += 1
                try await context.progress(current: step)
                try await Task.sleep(for: .milliseconds(30))
                guard step < 1000 else { throw JobError(code: "test_gate", message: "never told to go on") }
            }
            if params["fail"] == true { throw JobError(code: "boom", message: "failed after the cancel") }
            return ["cancelledTask": Task.isCancelled]
        }
        return registry
    }

    /// Cancels a running job, then waits until its worker published a snapshot
    /// saying it saw the cancel (a later sequence than the gateway's, with the flag).
    static func cancelAndAwaitWorker(_ job: JobSnapshot, client: GatewayClient, system: TestCluster) async throws {
        try await client.waitFor(job.id) { ($0.progress?.current ?? 0) >= 1 }
        let reply = try await client.request(.post, "/jobs/\(job.id)/cancel")
        #expect(reply.status == .accepted)
        let requested = try reply.snapshot()
        let events = try await system.statusEvents(timeout: .seconds(20)) { events in
            events.contains { $0.id == job.id && $0.status == .running && $0.cancelRequested && $0.sequence > requested.sequence }
        }
        try #require(events.contains { $0.id == job.id && $0.cancelRequested && $0.sequence > requested.sequence },
                     "the worker never reported the cancel it ignored")
    }

    @Test("a cancel of a running job whose type is not cancellable is ignored: it runs to its end")
    func nonCancellableRunsToItsEnd() async throws {
        let go = Shared()
        let runs = Shared()
        let system = try TestCluster()
        try await system.withGateway(registry: Self.steadfastRegistry(go: go, runs: runs)) { client in
            let job = try await client.submit(#"{"type":"steadfast"}"#)
            try await Self.cancelAndAwaitWorker(job, client: client, system: system)
            go.add()
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(done.result == ["cancelledTask": false])
            #expect(done.cancelRequested)
            #expect(runs.count == 1)
        }
    }

    @Test("a cancellable handler that returns despite a cancel succeeds, and its final snapshot keeps cancelRequested")
    func cancelRequestedOutlivesAHandlerThatReturns() async throws {
        let go = Shared()
        let sawCancel = Shared()
        var registry = JobRegistry.builtin
        registry.register("deaf", params: [String: Int].self) { _, _ in
            // Waits without throwing on cancellation, as code that never checks it does.
            while go.count == 0 {
                if Task.isCancelled, sawCancel.count == 0 { sawCancel.add() }
                await withCheckedContinuation { done in
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(10)) { done.resume() }
                }
            }
            return ["ok": true]
        }
        let system = try TestCluster()
        try await system.withGateway(registry: registry) { client in
            let job = try await client.submit(#"{"type":"deaf"}"#)
            try await client.waitFor(job.id) { $0.status == .running }
            #expect(try await client.request(.post, "/jobs/\(job.id)/cancel").status == .accepted)
            try await gate(until: { sawCancel.count > 0 }, what: "the handler's task to be cancelled")
            go.add()
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(done.cancelRequested)
            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.contains { $0.id == job.id && $0.status.isTerminal }
            }
            #expect(events.last { $0.id == job.id }?.cancelRequested == true, "the final record on the topic dropped the cancel")
        }
    }

    @Test("a cancel ignored during a non-cancellable attempt still stops the job before a retry")
    func ignoredCancelStopsRetry() async throws {
        let go = Shared()
        let runs = Shared()
        let system = try TestCluster()
        try await system.withGateway(registry: Self.steadfastRegistry(go: go, runs: runs, maxAttempts: 3)) { client in
            let job = try await client.submit(#"{"type":"steadfast","params":{"fail":true}}"#)
            try await Self.cancelAndAwaitWorker(job, client: client, system: system)
            go.add()
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .cancelled)
            #expect(runs.count == 1)
        }
    }

    @Test("a job whose type is not cancellable can still be cancelled while queued, and never starts")
    func nonCancellableCancelledWhileQueued() async throws {
        let go = Shared()
        let runs = Shared()
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(registry: Self.steadfastRegistry(go: go, runs: runs), workerConcurrency: 1) { client in
            let blocker = try await client.submit(#"{"type":"sleep","params":{"steps":600,"stepMs":100}}"#)
            try await client.waitFor(blocker.id) { $0.status == .running }
            let waiting = try await client.submit(#"{"type":"steadfast"}"#)
            let reply = try await client.request(.post, "/jobs/\(waiting.id)/cancel")
            #expect(reply.status == .accepted)
            let requested = try reply.snapshot()
            #expect(requested.status == .queued && requested.cancelRequested)

            // The one slot frees: the worker takes the waiting command and ends it unrun.
            _ = try await client.request(.post, "/jobs/\(blocker.id)/cancel")
            try await client.waitFor(blocker.id) { $0.status.isTerminal }
            let after = try await client.submit(#"{"type":"noop"}"#)
            try await client.waitFor(after.id) { $0.status == .succeeded }
            #expect(try await client.job(waiting.id).status == .cancelled)
            #expect(runs.count == 0)
        }
    }
}
