import Foundation
@testable import KafkaClient
import Synchronization
import Testing

@Suite("Kafka client against the embedded cluster", .timeLimit(.minutes(2)))
struct KafkaClientTests {
    @Test("an awaited send returns the broker's offset, and a reader from the beginning sees it")
    func sendThenReadFromBeginning() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("t", partitions: 3)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        var reports: [DeliveryReport] = []
        for index in 0..<10 {
            reports.append(try await producer.send(topic: "t", key: Array("k\(index)".utf8), value: Array("v\(index)".utf8)))
        }
        #expect(reports.allSatisfy { $0.topic == "t" && $0.offset >= 0 })

        let reader = try KafkaTopicReader(configuration: cluster.configuration, topic: "t", from: .beginning)
        var seen: Set<String> = []
        for await message in reader {
            seen.insert(String(decoding: message.value ?? [], as: UTF8.self))
            if seen.count == 10 { break }
        }
        #expect(seen == Set((0..<10).map { "v\($0)" }))
        let ends = try await reader.endOffsets()
        #expect(ends.values.reduce(0, +) == 10)
        await reader.close()
        await producer.shutdown()
    }

    @Test("a reader takes up partitions its topic gains while it reads, from their beginning, and reaches their end")
    func readerTakesUpNewPartitions() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("grows", partitions: 4)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        var reports: [DeliveryReport] = []
        for index in 0..<40 {
            reports.append(try await producer.send(topic: "grows", key: Array("k\(index)".utf8), value: Array("v\(index)".utf8)))
        }
        await producer.shutdown()
        #expect(Set(reports.map(\.partition)) == [0, 1, 2, 3])

        // The embedded broker can't add partitions to a topic, so the reader is told
        // it has 2 until `grown`: as if an operator added partitions 2 and 3 meanwhile.
        final class Shared: Sendable {
            let grown = Atomic<Bool>(false)
            let seen = Mutex<[KafkaMessage]>([])
        }
        let shared = Shared()
        let watch = ConsumerEngine.PartitionWatch(count: { client, topic, timeout in
            partitionCount(client: client, topic: topic, timeoutMs: timeout).map { shared.grown.load(ordering: .acquiring) ? $0 : min($0, 2) }
        }, interval: .milliseconds(200))
        let reader = try KafkaTopicReader(configuration: cluster.configuration, topic: "grows", from: .beginning, bufferCapacity: 4096,
                                          maxFetchWait: .milliseconds(10), partitionWatch: watch, logger: .quiet)
        let reading = Task { for await message in reader { shared.seen.withLock { $0.append(message) } } }
        func waitFor(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while shared.seen.withLock({ $0.count }) < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        let before = reports.filter { $0.partition < 2 }.count
        try await waitFor(before)
        try await Task.sleep(for: .seconds(1))  // five checks that find no new partition
        #expect(shared.seen.withLock { $0.count } == before)
        #expect(Set(shared.seen.withLock { $0.map(\.partition) }) == [0, 1])

        shared.grown.store(true, ordering: .releasing)
        try await waitFor(reports.count)
        let all = shared.seen.withLock { $0 }
        #expect(all.count == reports.count, "every message once")
        #expect(Set(all.map { String(decoding: $0.value ?? [], as: UTF8.self) }) == Set((0..<40).map { "v\($0)" }))
        // What the reader consumed reaches every partition's end offset, so a catch-up waiting on it ends.
        let ends = try await reader.endOffsets()
        for (partition, end) in ends {
            #expect(all.filter { $0.partition == partition }.map(\.offset).max().map { $0 + 1 } == end, "partition \(partition)")
        }
        await reader.close()
        _ = await reading.value
    }

    @Test("messages sent together are each acknowledged or refused on their own, in order; after shutdown all fail")
    func sendTogether() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("a", partitions: 3)
        try cluster.createTopic("b", partitions: 1)
        var configuration = cluster.configuration
        configuration.properties["message.max.bytes"] = "2000"
        let producer = try KafkaProducer(configuration: configuration)
        let results = await producer.send([
            OutgoingMessage(topic: "a", key: Array("k".utf8), value: Array("first".utf8)),
            OutgoingMessage(topic: "b", key: nil, value: [UInt8](repeating: 42, count: 5000)),
            OutgoingMessage(topic: "b", key: Array("k".utf8), value: nil),
        ])
        try #require(results.count == 3)
        #expect(try results[0].get().topic == "a")
        #expect(throws: KafkaError.self) { try results[1].get() }
        if case .failure(let error) = results[1] { #expect(error.code == "MSG_SIZE_TOO_LARGE") }
        let tombstone = try results[2].get()
        #expect(tombstone.topic == "b" && tombstone.offset == 0)

        await producer.shutdown()
        let late = await producer.send([OutgoingMessage(topic: "a", key: nil, value: [1]), OutgoingMessage(topic: "b", key: nil, value: [2])])
        #expect(late.count == 2)
        for result in late {
            #expect(throws: KafkaError.self) { try result.get() }
            if case .failure(let error) = result { #expect(error.isClientClosed) }
        }
    }

    @Test("a reader slower than its topic receives every message exactly once, in order per partition")
    func slowReaderMissesNothing() async throws {
        // The buffer holds 8 messages: the reader's poll thread stops and starts
        // many times over, which must neither skip nor repeat a message.
        let count = 3000
        let cluster = try await clusterHolding(count, messagesOn: "t", partitions: 3)

        let reader = try KafkaTopicReader(configuration: cluster.configuration, topic: "t", from: .beginning, bufferCapacity: 8)
        var offsets: [Int32: [Int64]] = [:]
        var received = 0
        for await message in reader {
            offsets[message.partition, default: []].append(message.offset)
            received += 1
            if received % 500 == 0 { try await Task.sleep(for: .milliseconds(50)) }
            if received == count { break }
        }
        #expect(received == count)
        for (partition, seen) in offsets {
            #expect(seen == Array(0..<Int64(seen.count)), "partition \(partition)")
        }
        await reader.close()
    }

    @Test("a reader's batches hold every message exactly once, in order per partition, as many as have arrived")
    func batchesMissNothing() async throws {
        let count = 3000
        let cluster = try await clusterHolding(count, messagesOn: "t", partitions: 3)

        let reader = try KafkaTopicReader(configuration: cluster.configuration, topic: "t", from: .beginning, bufferCapacity: 512)
        var offsets: [Int32: [Int64]] = [:]
        var sizes: [Int] = []
        for await batch in reader.batches(maxCount: 100) {
            sizes.append(batch.count)
            for message in batch { offsets[message.partition, default: []].append(message.offset) }
            // While the reader sleeps, hundreds more arrive: the next batch is a full one.
            if sizes.count < 4 { try await Task.sleep(for: .milliseconds(200)) }
            if sizes.reduce(0, +) >= count { break }
        }
        #expect(sizes.reduce(0, +) == count)
        #expect(sizes.allSatisfy { (1...100).contains($0) })
        #expect(sizes[1...3].contains(100))
        for (partition, seen) in offsets {
            #expect(seen == Array(0..<Int64(seen.count)), "partition \(partition)")
        }
        await reader.close()
    }

    @Test("a group consumer receives its assignment, then every message, and commits what it stored")
    func groupConsumerCommits() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("jobs", partitions: 2)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        for index in 0..<20 {
            try await producer.send(topic: "jobs", key: Array("k\(index)".utf8), value: Array("\(index)".utf8))
        }
        // In the mock, a member leaving arms a rebalance of session.timeout.ms - 1 s.
        var configuration = cluster.configuration
        configuration.properties["session.timeout.ms"] = "6000"
        let consumer = try KafkaConsumer(configuration: configuration, groupID: "g", topics: ["jobs"])
        var assigned: [TopicPartition] = []
        var values: Set<String> = []
        for await event in consumer {
            switch event {
            case .assigned(let partitions): assigned += partitions
            case .revoked: break
            case .message(let message):
                values.insert(String(decoding: message.value ?? [], as: UTF8.self))
                #expect(consumer.storeOffset(message.offset + 1, for: message.topicPartition) == nil)
            }
            if values.count == 20 { break }
        }
        #expect(Set(assigned.map(\.partition)) == [0, 1])
        await consumer.close()

        // A second member of the same group starts after the committed offsets: nothing left.
        try await producer.send(topic: "jobs", key: Array("late".utf8), value: Array("late".utf8))
        let second = try KafkaConsumer(configuration: configuration, groupID: "g", topics: ["jobs"])
        for await event in second {
            if case .message(let message) = event {
                #expect(String(decoding: message.value ?? [], as: UTF8.self) == "late")
                break
            }
        }
        await second.close()
        await producer.shutdown()
    }

    @Test("a partition revoked while the consumer was paused is fetched again when it comes back")
    func partitionPausedBeforeRevokeFlowsAfterReassign() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("jobs", partitions: 2)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        var configuration = cluster.configuration
        configuration.properties["session.timeout.ms"] = "6000"

        // A fills its small buffer with both partitions' messages and pauses them.
        for index in 0..<20 { try await producer.send(topic: "jobs", key: Array("k\(index)".utf8), value: Array("old".utf8)) }
        let first = try KafkaConsumer(configuration: configuration, groupID: "g", topics: ["jobs"], bufferCapacity: 4)
        let events = EventLog(first)
        try #require(await events.waitFor(timeout: .seconds(20)) { Set($0.assigned) == [0, 1] })
        try await Task.sleep(for: .seconds(1))

        // B joins and takes one partition from A while A is paused.
        let second = try KafkaConsumer(configuration: configuration, groupID: "g", topics: ["jobs"])
        var moved: Int32?
        for await event in second {
            if case .assigned(let partitions) = event, let partition = partitions.first { moved = partition.partition; break }
        }
        let partition = try #require(moved)
        // A reads what it holds, resumes, and gets the partition back when B leaves.
        events.startReading()
        try #require(await events.waitFor(timeout: .seconds(20)) { $0.revoked.contains(partition) })
        await second.close()
        try #require(await events.waitFor(timeout: .seconds(20)) { $0.assigned.filter { $0 == partition }.count == 2 },
                     "partition \(partition) did not come back to the first consumer")

        // New messages on it reach A.
        var sent = 0
        for index in 0..<40 where sent < 5 {
            let report = try await producer.send(topic: "jobs", key: Array("n\(index)".utf8), value: Array("new".utf8))
            if report.partition == partition { sent += 1 }
        }
        let arrived = await events.waitFor(timeout: .seconds(10)) { $0.newOn(partition) >= 5 }
        #expect(arrived, "of 5 new messages on partition \(partition), \(events.snapshot.newOn(partition)) arrived")
        await first.close()
        await events.finished()
        await producer.shutdown()
    }

    @Test("an expedited send goes out at once, with what was queued before it, where a plain one waits out linger.ms")
    func expeditedSendSkipsLinger() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("t", partitions: 1)
        var configuration = cluster.configuration
        configuration.properties["linger.ms"] = "1000"
        let producer = try KafkaProducer(configuration: configuration, topics: ["t"])
        let key = Array("job".utf8)
        // Untimed: the first send also waits for the connection and metadata.
        try await producer.send(topic: "t", key: key, value: Array("warm".utf8), expedited: true)
        // Past the warm-up's flush (20 ms at most), which would take the next message along.
        try await Task.sleep(for: .milliseconds(100))

        let clock = ContinuousClock()
        let plainStart = clock.now
        try await producer.send(topic: "t", key: key, value: Array("plain".utf8))
        let plain = clock.now - plainStart
        #expect(plain >= .milliseconds(900), "a plain send waits for its batch's linger.ms, 1 s: took \(plain)")

        try producer.post(topic: "t", key: key, value: Array("queued".utf8))
        let expeditedStart = clock.now
        let report = try await producer.send(topic: "t", key: key, value: Array("urgent".utf8), expedited: true)
        let expedited = clock.now - expeditedStart
        #expect(expedited < .milliseconds(500), "an expedited send does not wait out linger.ms: took \(expedited)")
        #expect(report.offset == 3)

        let reader = try KafkaTopicReader(configuration: cluster.configuration, topic: "t", from: .beginning)
        var values: [String] = []
        for await message in reader {
            values.append(String(decoding: message.value ?? [], as: UTF8.self))
            if values.count == 4 { break }
        }
        #expect(values == ["warm", "plain", "queued", "urgent"])
        await reader.close()
        await producer.shutdown()
    }

    @Test("a send the broker cannot take within message.timeout.ms fails with a timeout")
    func sendTimesOutWhenBrokerIsDown() async throws {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic("t", partitions: 1)
        var configuration = cluster.configuration
        configuration.properties["message.timeout.ms"] = "1000"
        let producer = try KafkaProducer(configuration: configuration)
        // The warm-up has one second too: on a loaded machine it may take a few tries.
        var warmed = false
        for _ in 0..<10 where !warmed {
            warmed = (try? await producer.send(topic: "t", key: nil, value: Array("warm".utf8))) != nil
        }
        try #require(warmed)
        // No leader, so nothing can be written (taking the mock broker down risks
        // librdkafka 2.0.2's abort when it cannot bind the port again).
        cluster.setPartitionLeader(topic: "t", partition: 0, broker: -1)
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(topic: "t", key: nil, value: Array("lost".utf8))
        }
        #expect(error?.isTimeout == true)
        cluster.setPartitionLeader(topic: "t", partition: 0, broker: 1)
        await producer.shutdown()
    }

    @Test("topic provisioning that gets no answer fails within its timeout with an error naming the request")
    func createTopicsTimesOut() async throws {
        let cluster = try EmbeddedKafkaCluster(logger: .quiet)  // the mock never answers CreateTopics
        let started = ContinuousClock.now
        let error = await #expect(throws: KafkaError.self) {
            try await KafkaAdmin.createTopics([TopicSpec(name: "t", partitions: 1)], configuration: cluster.configuration,
                                              timeout: .seconds(1), logger: .quiet)
        }
        // Bounded by our 1 s timeout, not by librdkafka's own request timeouts; the
        // margin is for tearing the client down on a loaded two-core machine.
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(error?.isTimeout == true, "\(String(describing: error))")
        #expect(error?.message.contains("CreateTopics") == true || error?.message.contains("timed out") == true,
                "\(String(describing: error))")
    }

    @Test("provisioning topics that already exist sends no CreateTopics, so a cluster that never answers one doesn't matter")
    func existingTopicsNeedNoCreateTopics() async throws {
        let cluster = try EmbeddedKafkaCluster(logger: .quiet)  // the mock never answers CreateTopics
        try cluster.createTopic("t", partitions: 1)
        // A CreateTopics sent would go unanswered and this would throw its timeout
        // (the test above); the time it takes says nothing on a loaded machine.
        try await KafkaAdmin.createTopics([TopicSpec(name: "t", partitions: 1)], configuration: cluster.configuration,
                                          timeout: .seconds(5), logger: .quiet)
    }

    /// An embedded cluster whose topic holds `count` messages, the value of each its index.
    private func clusterHolding(_ count: Int, messagesOn topic: String, partitions: Int32) async throws -> EmbeddedKafkaCluster {
        let cluster = try EmbeddedKafkaCluster()
        try cluster.createTopic(topic, partitions: partitions)
        let producer = try KafkaProducer(configuration: cluster.configuration)
        for index in 0..<count {
            try producer.post(topic: topic, key: Array("k\(index)".utf8), value: Array("\(index)".utf8))
        }
        await producer.shutdown()
        return cluster
    }
}

/// What a group consumer has received, gathered by a task of its own once
/// ``startReading()`` is called (or at once, for assignments, before that).
private final class EventLog: Sendable {
    struct Seen: Sendable {
        var assigned: [Int32] = []
        var revoked: [Int32] = []
        var newMessages: [Int32] = []
        func newOn(_ partition: Int32) -> Int { newMessages.filter { $0 == partition }.count }
    }
    private let seen = Mutex(Seen())
    private let reading = Mutex<Task<Void, Never>?>(nil)
    private let gate = AsyncStream<Void>.makeStream()

    /// Reads the first assignment at once, then waits for ``startReading()``.
    init(_ consumer: KafkaConsumer) {
        reading.withLock { $0 = Task { [self] in
            var iterator = consumer.makeAsyncIterator()
            var gated = true
            while let event = await iterator.next() {
                switch event {
                case .assigned(let partitions): self.seen.withLock { $0.assigned += partitions.map(\.partition) }
                case .revoked(let partitions): self.seen.withLock { $0.revoked += partitions.map(\.partition) }
                case .message(let message):
                    if message.value == Array("new".utf8) { self.seen.withLock { $0.newMessages.append(message.partition) } }
                }
                if gated {
                    // Holds the rest in the consumer's buffer until the test lets it go.
                    for await _ in self.gate.stream { break }
                    gated = false
                }
            }
        } }
    }

    var snapshot: Seen { seen.withLock { $0 } }
    func startReading() { gate.continuation.yield() }

    func waitFor(timeout: Duration, _ condition: (Seen) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(snapshot) {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    func finished() async { await reading.withLock { $0 }?.value }
}
