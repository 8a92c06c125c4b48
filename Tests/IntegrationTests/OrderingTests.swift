import Foundation
import JobsCore
import JobsWorker
import KafkaClient
import Testing

@Suite("Ordering keys", .timeLimit(.minutes(3)))
struct OrderingTests {
    @Test("jobs of one key run one at a time in submit order, while different keys run side by side")
    func oneKeyAtATime() async throws {
        // Four keys over three partitions: at least two keys share a partition, and still run side by side.
        let system = try TestCluster(partitions: 3)
        let log = RunLog()
        let keys = ["alpha", "bravo", "charlie", "delta"]
        try await system.withGateway(registry: log.registry(worker: "test-worker"), workerConcurrency: 8) { client in
            let submitter = try OrderedSubmitter(system)
            var jobs: [JobSnapshot] = []
            for index in 0..<6 {
                for key in keys {
                    // Each key's first job holds on until every key has started: only keys running in parallel get there.
                    let step = Step(key: key, index: index, ms: 30, untilKeysStarted: index == 0 ? keys.count : nil)
                    jobs.append(try await submitter.submit(step, orderingKey: key))
                }
            }
            await submitter.shutdown()
            for job in jobs {
                let done = try await client.waitFor(job.id) { $0.status.isTerminal }
                #expect(done.status == .succeeded, "\(done.error?.message ?? "")")
                #expect(done.orderingKey == job.orderingKey)
            }
            log.expectKeyOrder()
            #expect(log.runs.count == jobs.count)
            #expect(log.peakOverlap() >= keys.count)
        }
    }

    @Test("commands waiting for their key take no slot: other keys and jobs without a key run meanwhile")
    func waitingTakesNoSlot() async throws {
        // One partition and two slots: everything queues behind key a's commands.
        let system = try TestCluster(partitions: 1)
        let log = RunLog()
        try await system.withGateway(registry: log.registry(worker: "test-worker"), workerConcurrency: 2) { client in
            let submitter = try OrderedSubmitter(system)
            var jobs: [JobSnapshot] = []
            // a's first job keeps its slot until the six jobs behind a's waiting ones have completed;
            // if a waiting command held the other slot, they could never run and the first job would give up.
            for index in 0..<4 {
                let step = Step(key: "a", index: index, ms: 10, untilOthersDone: index == 0 ? 6 : nil)
                jobs.append(try await submitter.submit(step, orderingKey: "a"))
            }
            for index in 0..<3 {
                jobs.append(try await submitter.submit(Step(key: "b", index: index, ms: 10), orderingKey: "b"))
            }
            for index in 0..<3 {
                jobs.append(try await submitter.submit(Step(key: "unkeyed-\(index)", index: 0, ms: 10), orderingKey: nil))
            }
            await submitter.shutdown()
            for job in jobs {
                let done = try await client.waitFor(job.id) { $0.status.isTerminal }
                #expect(done.status == .succeeded, "\(done.error?.message ?? "")")
            }
            log.expectKeyOrder()
            let runs = log.runs
            let secondOfA = try #require(runs.first { $0.key == "a" && $0.index == 1 })
            #expect(runs.filter { $0.key != "a" }.allSatisfy { ($0.ended ?? .max) < secondOfA.started })
            #expect(log.peakOverlap() == 2)
        }
    }

    @Test("across two workers and a rebalance that hands jobs back, one key's jobs never overlap and keep their order")
    func orderAcrossWorkersAndHandBack() async throws {
        let partitions = 4
        let system = try TestCluster(partitions: Int32(partitions))
        let log = RunLog()
        let keys = keysCoveringPartitions(partitions)
        log.holdLaterJobsUntilSticky()
        try await system.withGateway(worker: false) { client in
            let first = RunningWorker(system, id: "w1", registry: log.registry(worker: "w1"))
            let submitter = try OrderedSubmitter(system)
            var jobs: [JobSnapshot] = []
            for index in 0..<8 {
                for key in keys {
                    jobs.append(try await submitter.submit(Step(key: key, index: index, ms: 50), orderingKey: key))
                }
            }
            await submitter.shutdown()
            try await log.hold(until: { log in keys.allSatisfy { key in log.runs.contains { $0.key == key && $0.completed } } },
                               timeout: .seconds(30), what: "w1 to complete a job of every key")
            // From now on w1's jobs hold on until w2 runs one, so the partitions that move to w2
            // have a job running when w1 gives them up: it is handed back, its key's next jobs wait.
            log.makeSticky("w1")
            let second = RunningWorker(system, id: "w2", registry: log.registry(worker: "w2"))

            var finals: [JobID: JobSnapshot] = [:]
            for job in jobs {
                finals[job.id] = try await client.waitFor(job.id, timeout: .seconds(90)) { $0.status.isTerminal }
            }
            async let firstStopped: Void = first.stop()
            async let secondStopped: Void = second.stop()
            _ = try await (firstStopped, secondStopped)

            #expect(finals.values.allSatisfy { $0.status == .succeeded })
            log.expectKeyOrder()
            let runs = log.runs
            #expect(Set(runs.filter(\.completed).map(\.worker)) == ["w1", "w2"])
            let handedBack = runs.filter { !$0.completed }
            #expect(!handedBack.isEmpty, "no job was running on a partition w1 gave up")
            for run in handedBack {
                #expect(run.worker == "w1")
                #expect((finals[run.job]?.attempt ?? 0) > run.attempt, "a handed-back job runs again as its next attempt")
            }
        }
    }

    @Test("a job cancelled while its command waits for its key ends cancelled at once, and the key's running job runs on")
    func cancelWhileWaitingForKey() async throws {
        let system = try TestCluster(partitions: 1)
        try await system.withGateway { client in
            let first = try await client.submit(#"{"type":"sleep","orderingKey":"k","params":{"steps":600,"stepMs":100}}"#)
            try await client.waitFor(first.id) { $0.status == .running }
            let second = try await client.submit(#"{"type":"noop","orderingKey":"k"}"#)
            // The worker has free slots: it takes the second command, which waits for key k.
            try await Task.sleep(for: .seconds(1))
            #expect(try await client.request(.post, "/jobs/\(second.id)/cancel").status == .accepted)
            let done = try await client.waitFor(second.id, timeout: .seconds(10)) { $0.status.isTerminal }
            #expect(done.status == .cancelled && done.startedAt == nil)
            #expect(try await !client.job(first.id).status.isTerminal, "the cancelled job waited for the first one to end")

            // The key is still the first job's: a later job of it waits for the first one to end.
            let third = try await client.submit(#"{"type":"noop","orderingKey":"k"}"#)
            try await Task.sleep(for: .seconds(1))
            #expect(try await client.job(third.id).status == .queued)
            _ = try await client.request(.post, "/jobs/\(first.id)/cancel")
            #expect(try await client.waitFor(first.id) { $0.status.isTerminal }.status == .cancelled)
            #expect(try await client.waitFor(third.id) { $0.status.isTerminal }.status == .succeeded)
        }
    }

    @Test("a job cancelled before any worker ran, behind a running job of its key, ends cancelled without waiting its turn")
    func cancelledBeforeTheWorkerTookIt() async throws {
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(worker: false) { client in
            let first = try await client.submit(#"{"type":"sleep","orderingKey":"k","params":{"steps":600,"stepMs":100}}"#)
            let second = try await client.submit(#"{"type":"noop","orderingKey":"k"}"#)
            // No worker reads the control topic yet: only the status topic holds the cancel.
            #expect(try await client.request(.post, "/jobs/\(second.id)/cancel").status == .accepted)
            let worker = RunningWorker(system, id: "late-worker", registry: .builtin)
            do {
                let done = try await client.waitFor(second.id, timeout: .seconds(20)) { $0.status.isTerminal }
                #expect(done.status == .cancelled && done.startedAt == nil)
                #expect(try await !client.job(first.id).status.isTerminal, "the cancelled job waited for the first one to end")
                _ = try await client.request(.post, "/jobs/\(first.id)/cancel")
                #expect(try await client.waitFor(first.id) { $0.status.isTerminal }.status == .cancelled)
            } catch {
                try? await worker.stop()
                throw error
            }
            try await worker.stop()
        }
    }

    @Test("a start command is keyed by the job's ordering key, or by its id without one")
    func commandKeys() async throws {
        let system = try TestCluster(partitions: 3)
        let submitter = try OrderedSubmitter(system)
        let keyed = try await submitter.submit(Step(key: "k", index: 0), orderingKey: "customer-42")
        let unkeyed = try await submitter.submit(Step(key: "k", index: 1), orderingKey: nil)
        await submitter.shutdown()

        let reader = try KafkaTopicReader(configuration: system.kafka, topic: system.topics.commands, from: .beginning, logger: .quiet)
        let giveUp = Task {
            try await Task.sleep(for: .seconds(15))
            await reader.close()
        }
        var keys: [JobID: String] = [:]
        for await message in reader {
            if let value = message.value, let command = try? WireFormat.decode(StartJobCommand.self, from: value) {
                keys[command.job.id] = message.key.map { String(decoding: $0, as: UTF8.self) }
            }
            if keys.count == 2 { break }
        }
        giveUp.cancel()
        await reader.close()
        #expect(keys[keyed.id] == "customer-42")
        #expect(keys[unkeyed.id] == unkeyed.id.rawValue)
    }

    @Test("an empty or overlong orderingKey is refused with 400 before anything is published")
    func badOrderingKeyRefused() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            for body in [#"{"type":"noop","orderingKey":""}"#,
                         #"{"type":"noop","orderingKey":"\#(String(repeating: "k", count: 256))"}"#] {
                let reply = try await client.request(.post, "/jobs", json: body)
                #expect(reply.status == .badRequest)
                #expect(try reply.problem().errors?.map(\.pointer) == ["/orderingKey"])
            }
        }
        #expect(try await system.recordCount(system.topics.commands) == 0)
    }

    @Test("POST /jobs with an orderingKey stores it in the job and keys its command by it")
    func submittedOverHTTP() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            let job = try await client.submit(#"{"type":"noop","orderingKey":"customer-42"}"#)
            #expect(job.orderingKey == "customer-42")
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(done.orderingKey == "customer-42")
        }
    }
}
