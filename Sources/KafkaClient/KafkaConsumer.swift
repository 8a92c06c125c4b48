internal import CKafka
import Logging

/// A member of a consumer group: an `AsyncSequence` of ``ConsumerEvent``s with
/// manual offsets (store what is finished, commit periodically and on revoke).
///
/// Its thread keeps polling while the application works, pausing the assigned
/// partitions whenever `bufferCapacity` events wait unread, so a consumer whose
/// jobs run for hours is never evicted from the group.
public final class KafkaConsumer: Sendable, AsyncSequence {
    public typealias Element = ConsumerEvent

    private let engine: ConsumerEngine

    public static let defaultProperties: [String: String] = [
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": "false",
        // How long a fetch may wait for data. A real broker answers as soon as data
        // arrives, but the embedded (mock) broker holds every fetch this long, which
        // would add up to 500 ms (the librdkafka default) to each job's pickup.
        "fetch.wait.max.ms": "10",
    ]

    /// - Parameters:
    ///   - listener: told of rebalances on the consumer's thread (see ``RebalanceListener``).
    ///   - bufferCapacity: events read ahead before the partitions are paused.
    public init(
        configuration: KafkaConfiguration, groupID: String, topics: [String],
        listener: (any RebalanceListener)? = nil, bufferCapacity: Int = 256,
        logger: Logger = Logger(label: "kafka.consumer")
    ) throws(KafkaError) {
        var properties = configuration.merged(with: Self.defaultProperties)
        properties["group.id"] = groupID
        engine = try ConsumerEngine(mode: .group(topics: topics, listener: listener), properties: properties,
                                    capacity: bufferCapacity, logger: logger)
        engine.start(threadName: "kafka-consumer")
    }

    /// Marks everything before `offset` on `partition` as done; the next commit
    /// sends it. Fails (and returns the error) if the partition is no longer ours.
    @discardableResult
    public func storeOffset(_ offset: Int64, for partition: TopicPartition) -> KafkaError? {
        let list = PartitionList([partition], offset: offset)
        let err = rd_kafka_offsets_store(engine.client.pointer, list.pointer)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { return KafkaError(err) }
        let elementErr = list.pointer.pointee.elems[0].err
        return elementErr == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(elementErr)
    }

    /// Commits the stored offsets in the background (does not block).
    public func commit() {
        let err = rd_kafka_commit(engine.client.pointer, nil, 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR, err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            engine.client.logger.debug("commit not sent", metadata: ["error": "\(KafkaError(err))"])
        }
    }

    /// Leaves the group: the final revoke reaches the listener, stored offsets are
    /// committed, and iteration ends.
    public func close() async {
        await engine.close()
    }

    public func makeAsyncIterator() -> Iterator { Iterator(buffer: engine.buffer) }

    public struct Iterator: AsyncIteratorProtocol {
        let buffer: EventBuffer
        public mutating func next() async -> ConsumerEvent? { await buffer.next() }
    }
}
