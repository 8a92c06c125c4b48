internal import CKafka
import Foundation
import Logging

/// Reads every partition of one topic, outside any consumer group: each reader
/// sees every message. For the status topic (every gateway folds all of it, from
/// the beginning) and the control topic (every worker hears every cancel, from
/// the end).
public final class KafkaTopicReader: Sendable, AsyncSequence {
    public typealias Element = KafkaMessage

    public enum StartPosition: Sendable {
        case beginning
        case end
    }

    public let topic: String
    private let engine: ConsumerEngine

    static let groupOnlyProperties = [
        "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "partition.assignment.strategy",
        "group.instance.id", "group.protocol.type",
    ]

    /// - Parameter maxFetchWait: how long a fetch may wait for data (`fetch.wait.max.ms`,
    ///   unless the configuration sets it). The embedded broker holds an empty fetch
    ///   this long even when data arrives meanwhile, so it bounds how late a reader
    ///   sees a message there; readers that a person waits on use less.
    public convenience init(
        configuration: KafkaConfiguration, topic: String, from start: StartPosition,
        bufferCapacity: Int = 4096, maxFetchWait: Duration = .milliseconds(10),
        logger: Logger = Logger(label: "kafka.reader")
    ) throws(KafkaError) {
        try self.init(configuration: configuration, topic: topic, from: start, bufferCapacity: bufferCapacity,
                      maxFetchWait: maxFetchWait, partitionWatch: ConsumerEngine.PartitionWatch(), logger: logger)
    }

    /// - Parameter partitionWatch: how the reader learns, at start and every
    ///   few seconds after, how many partitions the topic has.
    init(
        configuration: KafkaConfiguration, topic: String, from start: StartPosition,
        bufferCapacity: Int, maxFetchWait: Duration, partitionWatch: ConsumerEngine.PartitionWatch, logger: Logger
    ) throws(KafkaError) {
        var properties = configuration.merged(with: [
            "enable.auto.commit": "false",
            "enable.partition.eof": "false",
            "fetch.wait.max.ms": String(maxFetchWait.milliseconds),
            // Prefetch limits a replay never reaches: librdkafka 2.0.2 stops
            // fetching when one is reached and looks again only on its next
            // one-second tick, however soon the queue drains (2.1 added
            // `fetch.queue.backoff.ms` for this). A reader slower than the broker,
            // a gateway folding its history, would otherwise sit idle for much of
            // each second.
            "queued.max.messages.kbytes": "65536",
            "queued.min.messages": "10000000",
        ])
        // Never joins the group: librdkafka only wants a group id to exist. Group
        // settings meant for a deployment's group consumers don't apply here (and
        // librdkafka checks them against each other), so they are left out.
        properties["group.id"] = "reader-\(UUID().uuidString.lowercased())"
        for key in Self.groupOnlyProperties { properties.removeValue(forKey: key) }
        self.topic = topic
        engine = try ConsumerEngine(mode: .broadcast(topic: topic, fromBeginning: start == .beginning),
                                    properties: properties, capacity: bufferCapacity, partitionWatch: partitionWatch, logger: logger)
        engine.start(threadName: "kafka-reader")
    }

    /// The offset after the last message of each partition, as the broker sees it
    /// now: a reader that has handled everything below these has caught up.
    public func endOffsets(timeout: Duration = .seconds(5)) async throws(KafkaError) -> [Int32: Int64] {
        let client = engine.client
        let topic = self.topic
        let result = await onDedicatedThread("kafka-watermarks", cancelled: .failure(.cancelled)) { () -> Result<[Int32: Int64], KafkaError> in
            partitionCount(client: client, topic: topic, timeoutMs: Int32(timeout.milliseconds)).flatMap { count in
                var ends: [Int32: Int64] = [:]
                for partition in 0..<count {
                    var low: Int64 = 0
                    var high: Int64 = 0
                    let err = rd_kafka_query_watermark_offsets(client.pointer, topic, partition, &low, &high,
                                                               Int32(timeout.milliseconds))
                    guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        return .failure(KafkaError(err, context: "watermarks of \(topic)[\(partition)]"))
                    }
                    ends[partition] = high
                }
                return .success(ends)
            }
        }
        return try result.get()
    }

    /// Stops reading; iteration ends.
    public func close() async {
        await engine.close()
    }

    public func makeAsyncIterator() -> Iterator { Iterator(buffer: engine.buffer) }

    public struct Iterator: AsyncIteratorProtocol {
        let buffer: EventBuffer
        public mutating func next() async -> KafkaMessage? {
            while let event = await buffer.next() {
                if case .message(let message) = event { return message }
            }
            return nil
        }
    }

    /// The same messages, as many at a time as have arrived (up to `maxCount`):
    /// a reader replaying a topic handles each batch in one go rather than
    /// waking once per message.
    public func batches(maxCount: Int = 1024) -> Batches { Batches(buffer: engine.buffer, maxCount: maxCount) }

    public struct Batches: AsyncSequence, Sendable {
        let buffer: EventBuffer
        let maxCount: Int

        public func makeAsyncIterator() -> Iterator { Iterator(buffer: buffer, maxCount: maxCount) }

        public struct Iterator: AsyncIteratorProtocol {
            let buffer: EventBuffer
            let maxCount: Int
            public mutating func next() async -> [KafkaMessage]? {
                while let events = await buffer.nextBatch(maxCount: maxCount) {
                    let messages = events.compactMap { event in
                        if case .message(let message) = event { message } else { nil }
                    }
                    if !messages.isEmpty { return messages }
                }
                return nil
            }
        }
    }
}
