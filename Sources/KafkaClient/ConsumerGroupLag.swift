internal import CKafka
import Foundation
import Logging

/// How far a consumer group is behind on a topic: per partition, the end offset
/// minus the group's committed offset. Reads offsets only; never joins the group.
public final class ConsumerGroupLag: Sendable {
    private let client: NativeClient
    public let group: String
    public let topic: String

    public init(configuration: KafkaConfiguration, group: String, topic: String,
                logger: Logger = Logger(label: "kafka.lag")) throws(KafkaError) {
        var properties = configuration.merged(with: ["enable.auto.commit": "false"])
        properties["group.id"] = group
        client = try NativeClient(kind: .consumer, properties: properties, context: CallbackContext(logger: logger))
        self.group = group
        self.topic = topic
    }

    /// Messages not yet committed by the group, per partition. A partition the
    /// group has never committed counts from its start.
    public func lag(timeout: Duration = .seconds(5)) async throws(KafkaError) -> [Int32: Int64] {
        let client = self.client
        let topic = self.topic
        let timeoutMs = Int32(timeout.milliseconds)
        let result = await onDedicatedThread("kafka-lag", cancelled: .failure(.cancelled)) { () -> Result<[Int32: Int64], KafkaError> in
            partitionCount(client: client, topic: topic, timeoutMs: timeoutMs).flatMap { count in
                let list = PartitionList((0..<count).map { TopicPartition(topic: topic, partition: $0) })
                let err = rd_kafka_committed(client.pointer, list.pointer, timeoutMs)
                guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { return .failure(KafkaError(err, context: "committed offsets of \(topic)")) }
                var lag: [Int32: Int64] = [:]
                for index in 0..<Int(list.pointer.pointee.cnt) {
                    let element = list.pointer.pointee.elems[index]
                    var low: Int64 = 0
                    var high: Int64 = 0
                    let watermarkErr = rd_kafka_query_watermark_offsets(client.pointer, topic, element.partition, &low, &high, timeoutMs)
                    guard watermarkErr == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        return .failure(KafkaError(watermarkErr, context: "watermarks of \(topic)[\(element.partition)]"))
                    }
                    let committed = element.offset >= 0 ? element.offset : low
                    lag[element.partition] = max(0, high - committed)
                }
                return .success(lag)
            }
        }
        return try result.get()
    }
}
