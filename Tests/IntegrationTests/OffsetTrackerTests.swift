@testable import JobsWorker
import KafkaClient
import Testing

/// The worker's bookkeeping of commands in flight, without a broker.
@Suite("Offsets of commands in flight")
struct OffsetTrackerTests {
    static func message(_ offset: Int64, partition: Int32 = 0) -> KafkaMessage {
        KafkaMessage(topic: "c", partition: partition, offset: offset, key: nil, value: nil)
    }

    @Test("a message taken twice in one assignment (a fetch again from an older position) is not taken again; after a new assignment it is")
    func aMessageIsTakenOncePerAssignment() throws {
        let tracker = OffsetTracker()
        let partition = TopicPartition(topic: "c", partition: 0)
        tracker.assigned([partition])
        let generation = try #require(tracker.begin(Self.message(5)))
        #expect(tracker.begin(Self.message(5)) == nil, "the same command while it is in flight")
        #expect(tracker.begin(Self.message(6)) == generation)
        #expect(tracker.finish(Self.message(5), generation: generation) == 6, "6 is still in flight")
        #expect(tracker.begin(Self.message(5)) == nil, "a command already done")
        #expect(tracker.begin(Self.message(4)) == nil)
        #expect(tracker.finish(Self.message(6), generation: generation) == 7)
        // Given up and assigned again: the next owner's copy of anything not committed is its to run.
        tracker.startRevoking([partition])
        tracker.removed([partition])
        tracker.assigned([partition])
        let next = tracker.begin(Self.message(5))
        #expect(next != nil && next != generation)
    }
}
