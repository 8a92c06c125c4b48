import Foundation
@testable import JobsGateway
import JobsCore
import Testing

@Suite("The change feed behind event streams")
struct JobChangeFeedTests {
    func change(_ sequence: UInt64) -> JobChange {
        JobChange(position: ChangePosition(epoch: "e", sequence: sequence),
                  snapshot: .queued(id: JobID(rawValue: "job-\(sequence)"), type: "noop", params: [:]))
    }

    @Test("a subscriber that falls a buffer behind keeps the oldest changes and is ended, so its last id lies before what it missed")
    func overflowEndsTheStreamAfterTheOldest() async {
        let feed = JobChangeFeed(bufferSize: 4)
        let subscription = feed.subscribe { _ in true }
        for sequence in UInt64(1)...10 { feed.publish(change(sequence)) }
        var received: [UInt64] = []
        for await item in subscription.items {
            if case .change(let change) = item { received.append(change.position.sequence) }
        }
        #expect(received == [1, 2, 3, 4])
        #expect(feed.subscriberCount == 0)
    }

    @Test("a subscriber gets only the changes its predicate accepts, in order, and leaves when its stream ends")
    func predicateAndTermination() async {
        let feed = JobChangeFeed(bufferSize: 16)
        let subscription = feed.subscribe { $0.position.sequence % 2 == 0 }
        for sequence in UInt64(1)...6 { feed.publish(change(sequence)) }
        subscription.continuation.finish()
        var received: [UInt64] = []
        for await item in subscription.items {
            if case .change(let change) = item { received.append(change.position.sequence) }
        }
        #expect(received == [2, 4, 6])
        #expect(feed.subscriberCount == 0)
    }

    @Test("a change position survives its text form; other text is no position")
    func positionText() {
        let position = ChangePosition(epoch: "1dkm470", sequence: 42)
        #expect(ChangePosition(position.description) == position)
        #expect(ChangePosition("a-b-7") == ChangePosition(epoch: "a-b", sequence: 7))
        for bad in ["", "7", "abc-", "abc-x", "-5", "abc-+5"] { #expect(ChangePosition(bad) == nil, "\(bad)") }
    }
}
