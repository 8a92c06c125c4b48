internal import CKafka
import Logging

/// An in-memory Kafka-protocol cluster (librdkafka's mock cluster) listening on
/// localhost: the test and development broker. Nothing it holds survives the
/// process, so it is never a production broker.
///
/// Other processes can connect to ``bootstrapServers``. Topics must be created
/// with ``createTopic(_:partitions:)``: the mock does not answer CreateTopics.
public final class EmbeddedKafkaCluster: Sendable {
    private let cluster: MockClusterHandle
    public let bootstrapServers: String

    public init(brokers: Int = 1, logger: Logger = Logger(label: "kafka.embedded")) throws(KafkaError) {
        // Only hosts the mock: it connects nowhere, so its notices about that are noise.
        let host = try NativeClient(kind: .producer, properties: ["log_level": "4"], context: CallbackContext(logger: logger))
        guard let pointer = rd_kafka_mock_cluster_new(host.pointer, Int32(brokers)) else {
            throw KafkaError(code: "_FAIL", message: "could not start the embedded Kafka cluster")
        }
        cluster = MockClusterHandle(pointer, host: host)
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(pointer))
    }

    /// A configuration that reaches this cluster.
    public var configuration: KafkaConfiguration { KafkaConfiguration(bootstrapServers: bootstrapServers) }

    public func createTopic(_ name: String, partitions: Int32) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster.pointer, name, partitions, 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "create topic \(name)") }
    }

    // MARK: Fault injection

    /// Makes `broker` the leader of one partition, or with -1 leaves it without
    /// one: nothing can then be written to or read from it, while the broker and
    /// every other partition stay up.
    ///
    /// This is how to simulate an outage here. librdkafka 2.0.2's mock can take a
    /// broker down, but it does so by closing the listener and binding its port
    /// again at once, and aborts the process when that bind fails; under a full
    /// test run it did, twice in three runs.
    public func setPartitionLeader(topic: String, partition: Int32, broker brokerID: Int32) {
        _ = rd_kafka_mock_partition_set_leader(cluster.pointer, topic, partition, brokerID)
    }

    /// Adds `milliseconds` of round-trip time to every request the broker answers.
    public func setRoundTripTime(_ milliseconds: Int32, broker brokerID: Int32 = 1) {
        _ = rd_kafka_mock_broker_set_rtt(cluster.pointer, brokerID, milliseconds)
    }

    /// The next requests with API key `apiKey` (0 = Produce) fail with these errors, in order.
    public func pushRequestErrors(apiKey: Int16, errorCodes: [Int32]) {
        var errors = errorCodes.map { rd_kafka_resp_err_t(rawValue: $0) }
        errors.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster.pointer, apiKey, buffer.count, buffer.baseAddress)
        }
    }
}

/// Owns the mock cluster and the handle hosting it: librdkafka requires the
/// cluster to be destroyed first, which `deinit` does before `host` is released.
private final class MockClusterHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let host: NativeClient
    init(_ pointer: OpaquePointer, host: NativeClient) {
        self.pointer = pointer
        self.host = host
    }
    deinit { rd_kafka_mock_cluster_destroy(pointer) }
}
