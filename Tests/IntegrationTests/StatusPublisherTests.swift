import JobsCore
@testable import JobsWorker
import KafkaClient
import Testing

@Suite("The worker's status publisher")
struct StatusPublisherTests {
    /// A command delivered again while its job's end waits for the broker (its
    /// partition lost and assigned back to the same worker) was taken for
    /// finished on the ledger's word and its offset committed; a worker stopped
    /// before the end was written then lost the job.
    @Test("the ledger holds a job's end only once the broker has it, and the snapshots before it from the moment they are sent")
    func ledgerHoldsAnEndOnlyOnceWritten() async throws {
        let system = try TestCluster(partitions: 1)
        let producer = try KafkaProducer(configuration: system.kafka, topics: [system.topics.status], logger: .quiet)
        let ledger = StatusLedger(logger: .quiet)
        let publisher = StatusPublisher(producer: producer, topic: system.topics.status, ledger: ledger, logger: .quiet)
        let running = try JobSnapshot.queued(type: "noop", params: [:]).started(attempt: 1, by: "worker-1")
        let final = try running.succeeded(result: nil)

        system.setLeader(-1, of: [system.topics.status])
        let runningSent = Task { await publisher.publish(running) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(ledger[running.id]?.status == .running, "the running snapshot is noted as it is sent")
        let finalSent = Task { await publisher.publishFinal(final) }
        try await Task.sleep(for: .seconds(1))
        #expect(ledger[running.id]?.status == .running, "the end was counted as written before the broker had it")

        system.setLeader(1, of: [system.topics.status])
        #expect(await runningSent.value)
        #expect(await finalSent.value == .acknowledged)
        #expect(ledger[running.id]?.status == .succeeded)
        await producer.shutdown()
    }
}
