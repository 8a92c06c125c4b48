import Foundation
import JobsCore
@testable import JobsWorker
import KafkaClient
import Testing

/// The worker's admission rules on their own, without a broker.
@Suite("Admission of commands: slots, ordering keys, type limits")
struct AdmissionTests {
    static func command(_ offset: Int64, partition: Int32 = 0, type: String = "t", key: String? = nil) -> TakenCommand {
        let job = JobSnapshot.queued(id: JobID(rawValue: "job-\(partition)-\(offset)"), type: type, params: [:], orderingKey: key)
        return TakenCommand(message: KafkaMessage(topic: "c", partition: partition, offset: offset, key: nil, value: nil),
                            generation: 1, command: StartJobCommand(job: job))
    }

    func offsets(_ commands: [TakenCommand]) -> [Int64] { commands.map(\.message.offset) }

    @Test("one job per key at a time, in the order taken; other keys start at once")
    func oneJobPerKey() {
        let admission = Admission(concurrency: 4, maxWaiting: 10, typeLimits: [:])
        #expect(offsets(admission.enqueue(Self.command(0, key: "a"))) == [0])
        #expect(offsets(admission.enqueue(Self.command(1, key: "a"))) == [])
        #expect(offsets(admission.enqueue(Self.command(2, key: "a"))) == [])
        #expect(offsets(admission.enqueue(Self.command(3, key: "b"))) == [3])
        #expect(offsets(admission.enqueue(Self.command(4))) == [4])
        #expect(offsets(admission.finished(Self.command(0, key: "a"))) == [1])
        #expect(offsets(admission.finished(Self.command(3, key: "b"))) == [])
        #expect(offsets(admission.finished(Self.command(1, key: "a"))) == [2])
    }

    @Test("a command waiting for its type's limit holds back its key, but not other commands")
    func typeLimitHoldsBackItsKey() {
        let admission = Admission(concurrency: 8, maxWaiting: 10, typeLimits: ["slow": 1])
        #expect(offsets(admission.enqueue(Self.command(0, type: "slow"))) == [0])
        #expect(offsets(admission.enqueue(Self.command(1, type: "slow", key: "k"))) == [])
        // Its key is idle, but an earlier command of it waits: it must not overtake.
        #expect(offsets(admission.enqueue(Self.command(2, type: "fast", key: "k"))) == [])
        #expect(offsets(admission.enqueue(Self.command(3, type: "fast"))) == [3])
        #expect(offsets(admission.enqueue(Self.command(4, type: "fast", key: "other"))) == [4])
        #expect(offsets(admission.finished(Self.command(0, type: "slow"))) == [1])
        #expect(offsets(admission.finished(Self.command(1, type: "slow", key: "k"))) == [2])
    }

    @Test("waiting commands hold no slot; intake stops when the slots or the waiting list are full")
    func roomForIntake() async {
        let admission = Admission(concurrency: 2, maxWaiting: 2, typeLimits: [:])
        _ = admission.enqueue(Self.command(0, key: "a"))
        _ = admission.enqueue(Self.command(1, key: "a"))
        // One slot is free although a command waits for it: room for more.
        #expect(await admission.waitForRoom())
        #expect(offsets(admission.enqueue(Self.command(2, key: "b"))) == [2])
        // Both slots taken now: the run loop waits until one is free.
        let intake = Task { await admission.waitForRoom() }
        #expect(offsets(admission.finished(Self.command(2, key: "b"))) == [])
        #expect(await intake.value)
        _ = admission.enqueue(Self.command(3, key: "a"))
        // Two waiting, the limit: no room although a slot is free.
        let full = Task { await admission.waitForRoom() }
        #expect(offsets(admission.finished(Self.command(0, key: "a"))) == [1])
        #expect(await full.value)
    }

    @Test("a slot given back when the handler ends goes to the next command, but the key stays busy until done")
    func slotBeforeKey() async {
        let admission = Admission(concurrency: 1, maxWaiting: 10, typeLimits: ["slow": 1])
        #expect(offsets(admission.enqueue(Self.command(0, type: "slow", key: "a"))) == [0])
        #expect(offsets(admission.enqueue(Self.command(1, key: "a"))) == [])
        #expect(offsets(admission.enqueue(Self.command(2, type: "slow"))) == [])
        // The first handler is over: the slot and the type's place go to the
        // next command that may start, not to the one of the busy key.
        #expect(offsets(admission.releaseSlot(of: Self.command(0, type: "slow", key: "a"))) == [2])
        // Given back once only: a second release frees nothing.
        #expect(offsets(admission.releaseSlot(of: Self.command(0, type: "slow", key: "a"))) == [])
        // Done: its key is free, but the slot is taken, so the key's next command waits for it.
        #expect(offsets(admission.finished(Self.command(0, type: "slow", key: "a"))) == [])
        #expect(offsets(admission.finished(Self.command(2, type: "slow"))) == [1])
        // A run loop waiting for room is woken by a slot given back.
        let intake = Task { await admission.waitForRoom() }
        #expect(offsets(admission.releaseSlot(of: Self.command(1, key: "a"))) == [])
        #expect(await intake.value)
    }

    @Test("a cancelled job's waiting command is withdrawn marked cancelled, holding no slot, type place or key")
    func withdrawnHoldsNothing() async {
        let admission = Admission(concurrency: 1, maxWaiting: 10, typeLimits: [:])
        #expect(offsets(admission.enqueue(Self.command(0, key: "a"))) == [0])
        #expect(offsets(admission.enqueue(Self.command(1, key: "a"))) == [])
        #expect(offsets(admission.enqueue(Self.command(2, key: "a"))) == [])
        let (withdrawn, ready) = admission.withdraw(Self.command(1).command!.job.id)
        #expect(offsets(withdrawn) == [1])
        #expect(withdrawn.allSatisfy { $0.command?.job.cancelRequested == true })
        #expect(ready.isEmpty)
        #expect(!admission.holdsSlot(withdrawn[0]))
        // Ending it gives back nothing: the one slot and key a stay with command 0.
        #expect(offsets(admission.releaseSlot(of: withdrawn[0])) == [])
        #expect(offsets(admission.finished(withdrawn[0])) == [])
        #expect(offsets(admission.enqueue(Self.command(3, key: "b"))) == [])
        // Command 0 done: a's next command is 2, ahead of b's, which came later.
        #expect(offsets(admission.finished(Self.command(0, key: "a"))) == [2])
        // Nothing to withdraw for a started command or one never taken.
        #expect(admission.withdraw(Self.command(2).command!.job.id).withdrawn.isEmpty)
        #expect(admission.withdraw(Self.command(9).command!.job.id).withdrawn.isEmpty)
    }

    @Test("withdrawing a command that waits for its type's limit lets its key's next command start")
    func withdrawUnblocksItsKey() {
        let admission = Admission(concurrency: 4, maxWaiting: 10, typeLimits: ["slow": 1])
        #expect(offsets(admission.enqueue(Self.command(0, type: "slow"))) == [0])
        #expect(offsets(admission.enqueue(Self.command(1, type: "slow", key: "k"))) == [])
        #expect(offsets(admission.enqueue(Self.command(2, type: "fast", key: "k"))) == [])
        let (withdrawn, ready) = admission.withdraw(Self.command(1).command!.job.id)
        #expect(offsets(withdrawn) == [1])
        #expect(offsets(ready) == [2])
        // The type's one place is still command 0's.
        #expect(offsets(admission.finished(withdrawn[0])) == [])
        #expect(offsets(admission.enqueue(Self.command(3, type: "slow"))) == [])
        #expect(offsets(admission.finished(Self.command(0, type: "slow"))) == [3])
    }

    @Test("a withdrawn command leaves room in the waiting list for the run loop", .timeLimit(.minutes(1)))
    func withdrawMakesRoom() async {
        let admission = Admission(concurrency: 2, maxWaiting: 1, typeLimits: [:])
        _ = admission.enqueue(Self.command(0, key: "a"))
        _ = admission.enqueue(Self.command(1, key: "a"))
        let intake = Task { await admission.waitForRoom() }
        // Only a run loop already waiting shows that the withdrawal wakes it.
        while !admission.intakeWaits { await Task.yield() }
        _ = admission.withdraw(Self.command(1).command!.job.id)
        #expect(await intake.value)
    }

    @Test("a revoked partition's waiting commands are dropped, and a closed admission starts nothing")
    func dropAndClose() async {
        let admission = Admission(concurrency: 4, maxWaiting: 10, typeLimits: [:])
        _ = admission.enqueue(Self.command(0, partition: 0, key: "a"))
        _ = admission.enqueue(Self.command(1, partition: 0, key: "a"))
        _ = admission.enqueue(Self.command(0, partition: 1, key: "b"))
        _ = admission.enqueue(Self.command(1, partition: 1, key: "b"))
        admission.drop(in: [TopicPartition(topic: "c", partition: 0)])
        #expect(offsets(admission.finished(Self.command(0, partition: 0, key: "a"))) == [])
        admission.close()
        #expect(offsets(admission.finished(Self.command(0, partition: 1, key: "b"))) == [])
        #expect(offsets(admission.enqueue(Self.command(2, partition: 1))) == [])
        #expect(await admission.waitForRoom() == false)
    }
}
