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

    func change(_ sequence: UInt64, paramsBytes: Int) -> JobChange {
        JobChange(position: ChangePosition(epoch: "e", sequence: sequence),
                  snapshot: .queued(id: JobID(rawValue: "job-\(sequence)"), type: "noop",
                                    params: ["text": .string(String(repeating: "x", count: paramsBytes))]))
    }

    @Test("a subscriber whose unread changes outgrow the byte bound is ended after the oldest that fit")
    func byteBoundEndsTheStream() async {
        let feed = JobChangeFeed(bufferSize: 100, bufferBytes: 20_000)
        let subscription = feed.subscribe { _ in true }
        let size = change(1, paramsBytes: 3000).approximateBytes
        #expect(size > 3000)
        for sequence in UInt64(1)...20 { feed.publish(change(sequence, paramsBytes: 3000)) }
        var received: [UInt64] = []
        for await item in subscription.items {
            if case .change(let change) = item { received.append(change.position.sequence) }
        }
        #expect(received == Array(1...UInt64(20_000 / size)))
        #expect(received.count < 20)
        #expect(feed.subscriberCount == 0)
    }

    @Test("reading frees a subscriber's bytes, and a change larger than the bound still goes through alone")
    func readChangesFreeTheirBytes() async {
        let feed = JobChangeFeed(bufferSize: 100, bufferBytes: 20_000)
        let subscription = feed.subscribe { _ in true }
        var items = subscription.items.makeAsyncIterator()
        var received: [UInt64] = []
        for sequence in UInt64(1)...20 {
            feed.publish(change(sequence, paramsBytes: sequence == 20 ? 50_000 : 3000))
            if case .change(let change) = await items.next() { received.append(change.position.sequence) }
        }
        #expect(received == Array(1...20), "a reader that keeps up is never ended, whatever it has read in all")
        #expect(feed.subscriberCount == 1)
        feed.publish(change(21, paramsBytes: 50_000))
        feed.publish(change(22, paramsBytes: 10))
        if case .change(let change) = await items.next() { received.append(change.position.sequence) }
        #expect(received.last == 21)
        #expect(await items.next() == nil, "the second change did not fit beside the large one: ended")
        #expect(feed.subscriberCount == 0)
    }

    @Test("a change position survives its text form; other text is no position")
    func positionText() {
        let position = ChangePosition(epoch: "1dkm470", sequence: 42)
        #expect(ChangePosition(position.description) == position)
        #expect(ChangePosition("a-b-7") == ChangePosition(epoch: "a-b", sequence: 7))
        for bad in ["", "7", "abc-", "abc-x", "-5", "abc-+5"] { #expect(ChangePosition(bad) == nil, "\(bad)") }
    }

    @Test("the log of recent changes gives the jobs changed after a position, in order, while it reaches back that far")
    func recentChangesReachBackTheirCapacity() {
        var log = RecentChanges(capacity: 3)
        #expect(log.changes(after: 0).map(Array.init)?.isEmpty == true)
        for job in ["a", "b", "a", "c"] { log.record(JobID(rawValue: job)) }
        #expect(log.latest == 4)
        #expect(log.changes(after: 1).map { $0.map(\.position) } == [2, 3, 4])
        #expect(log.changes(after: 1).map { $0.map(\.job.rawValue) } == ["b", "a", "c"])
        #expect(log.changes(after: 4).map(Array.init)?.isEmpty == true)
        #expect(log.changes(after: 0) == nil, "position 1 has left the log")
        #expect(log.changes(after: 5) == nil, "a position the view has not reached")
    }

    @Test("a resumed stream gets each job changed since its position once, at its latest change, with or without the log of recent changes")
    func resumeSendsEachChangedJobOnce() throws {
        let system = try TestCluster(partitions: 1)
        let view = try JobView(configuration: system.kafka, topic: system.topics.status, logger: .quiet, recentChanges: 4) { _ in }
        let jobs = ["a", "b", "c", "d"].map { JobSnapshot.queued(id: JobID(rawValue: $0), type: "noop", params: [:]) }
        let running = try jobs[0].started(attempt: 1, by: "w")
        // Positions: a 1, b 2, c 3, a 4, d 5, a 6.
        for snapshot in [jobs[0], jobs[1], jobs[2], running, jobs[3], try running.succeeded(result: nil)] { view.apply(snapshot) }
        func resumed(after sequence: UInt64, statuses: Set<JobStatus> = [], limit: Int = 100) -> [String]? {
            let answer = view.changes(since: ChangePosition(epoch: view.epoch, sequence: sequence),
                                      matching: JobFilter(statuses: statuses, types: []), limit: limit)
            #expect(answer.through == 6)
            return answer.changes?.map { "\($0.snapshot.id.rawValue)@\($0.position.sequence)" }
        }
        #expect(resumed(after: 2) == ["c@3", "d@5", "a@6"], "from the log")
        #expect(resumed(after: 1) == ["b@2", "c@3", "d@5", "a@6"], "from a scan: position 2 has left the log")
        #expect(resumed(after: 2, statuses: [.queued]) == ["c@3", "d@5"])
        #expect(resumed(after: 2, limit: 2) == nil, "more jobs changed than the limit: list again")
        #expect(resumed(after: 1, limit: 3) == nil)
        #expect(resumed(after: 6) == [])
    }
}
