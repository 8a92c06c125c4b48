import Foundation
import JobsCore
@testable import JobsWorker
import KafkaClient
import Testing

/// Waits that promise a bound keep it whichever way their race goes, and a time
/// limit stops only the attempt it was set for.
@Suite("Bounded waits and time limits", .timeLimit(.minutes(1)))
struct BoundedWaitTests {
    @Test("waiting for offsets with a zero timeout, or in a cancelled task, ends at once with false")
    func offsetsWaitKeepsItsBound() async {
        let offsets = ConsumedOffsets()
        // Each wait's timer races its registration: many at once, so that some run the timer first.
        let ended = await withTaskGroup(of: Bool.self) { group in
            for round in 0..<2000 {
                group.addTask {
                    if round.isMultiple(of: 2) { return await offsets.wait(until: [0: 10], timeout: .zero) }
                    let waiter = Task { await offsets.wait(until: [0: 10], timeout: .seconds(3600)) }
                    waiter.cancel()
                    return await waiter.value
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(ended.count == 2000)
        #expect(!ended.contains(true))
    }

    @Test("waiting for offsets ends with true once they are reached")
    func offsetsWaitSeesProgress() async {
        let offsets = ConsumedOffsets()
        let waiter = Task { await offsets.wait(until: [0: 10, 1: 1], timeout: .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(20))
        offsets.advance(past: [KafkaMessage(topic: "t", partition: 0, offset: 9, key: nil, value: nil),
                               KafkaMessage(topic: "t", partition: 1, offset: 0, key: nil, value: nil)])
        #expect(await waiter.value == true)
    }

    @Test("waiting for running jobs to end, with a zero timeout or in a cancelled task, ends at once with false")
    func drainWaitKeepsItsBound() async {
        let running = RunningJobs()
        _ = running.insert(Self.execution())
        let ended = await withTaskGroup(of: Bool.self) { group in
            for round in 0..<2000 {
                group.addTask {
                    if round.isMultiple(of: 2) { return await running.waitUntilEmpty(timeout: .zero) }
                    let waiter = Task { await running.waitUntilEmpty(timeout: .seconds(3600)) }
                    waiter.cancel()
                    return await waiter.value
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(ended.count == 2000)
        #expect(!ended.contains(true))
    }

    @Test("a time limit that fires after its attempt failed stops neither the wait for the retry nor the retry")
    func lateWatchdogStopsNothing() async {
        let execution = Self.execution()
        let failing = RegisteredJob(descriptor: JobTypeDescriptor(name: "t", summary: "", params: ParamsSchema([])),
                                    options: JobOptions(maxAttempts: 2)) { _, _ in throw JobError(code: "flaky", message: "try again") }
        let first = await execution.run(failing, context: JobContext(type: "t"), timeout: .seconds(60))
        guard case .failed(_, retryable: true) = first else {
            Issue.record("expected a retryable failure, got \(first)")
            return
        }
        // The first run's watchdog, had its sleep just ended as the handler failed.
        execution.timeOut(run: 1)
        #expect(execution.stopReason == nil)
        #expect(await execution.pause(for: .milliseconds(10)) == nil)

        let succeeding = RegisteredJob(descriptor: failing.descriptor, options: failing.options) { _, _ in
            try await Task.sleep(for: .milliseconds(50))
            return "done"
        }
        let retry = Task { await execution.run(succeeding, context: JobContext(type: "t"), timeout: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(10))
        execution.timeOut(run: 1)  // late, during the retry: not its run
        guard case .succeeded(let result) = await retry.value else {
            Issue.record("the retry did not succeed")
            return
        }
        #expect(result == "done")
    }

    static func execution() -> JobExecution {
        let job = JobSnapshot.queued(id: JobID(rawValue: "job-1"), type: "t", params: [:])
        let taken = TakenCommand(message: KafkaMessage(topic: "c", partition: 0, offset: 0, key: nil, value: nil),
                                 generation: 1, command: StartJobCommand(job: job))
        return JobExecution(taken: taken, snapshot: job)
    }
}
