/// One record read from a topic.
public struct KafkaMessage: Sendable, Hashable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: [UInt8]?
    /// `nil` for a tombstone.
    public let value: [UInt8]?

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8]?) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
}

/// A partition of a topic: the unit of ordering, assignment and offsets.
public struct TopicPartition: Sendable, Hashable, CustomStringConvertible {
    public let topic: String
    public let partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// What a group consumer yields, in the order it happened.
public enum ConsumerEvent: Sendable, Hashable {
    case message(KafkaMessage)
    /// These partitions now belong to this consumer.
    case assigned([TopicPartition])
    /// These partitions were taken away; their buffered messages were dropped.
    case revoked([TopicPartition])
}

/// Told about rebalances on the consumer's own thread, before they take effect
/// for the rest of the group.
///
/// - Important: Called on the consumer's thread while librdkafka waits for the
///   answer. `partitionsRevoked` may block for a bounded time (to hand jobs back
///   and let their offsets be stored); the consumer commits stored offsets right
///   after it returns, then gives the partitions up.
public protocol RebalanceListener: Sendable {
    func partitionsAssigned(_ partitions: [TopicPartition])
    func partitionsRevoked(_ partitions: [TopicPartition])
}
