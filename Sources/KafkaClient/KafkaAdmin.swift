internal import CKafka
import Logging

/// A topic to create, with its broker-side settings.
public struct TopicSpec: Sendable, Hashable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int32
    /// Topic configs, e.g. `cleanup.policy=compact`, `retention.ms=604800000`.
    public var configs: [String: String]

    public init(name: String, partitions: Int32, replicationFactor: Int32 = 1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// Topic provisioning against a real cluster.
public enum KafkaAdmin {
    /// Creates the topics that don't exist yet; a topic that already exists counts
    /// as created. Throws the first refusal, naming the topic, or a timeout.
    ///
    /// The cluster's topics are looked up first, and CreateTopics is sent only for
    /// missing ones: a cluster that never answers it (librdkafka's mock cluster,
    /// `jobs-bench broker`) then costs nothing when the topics are already there.
    public static func createTopics(
        _ topics: [TopicSpec], configuration: KafkaConfiguration, timeout: Duration = .seconds(15),
        logger: Logger = Logger(label: "kafka.admin")
    ) async throws(KafkaError) {
        let client = try NativeClient(kind: .producer, properties: configuration.merged(with: [:]),
                                      context: CallbackContext(logger: logger))
        let result = await onDedicatedThread("kafka-admin", cancelled: .cancelled) { () -> KafkaError? in
            let timeoutMs = Int32(timeout.milliseconds)
            switch existingTopics(client: client, timeoutMs: timeoutMs) {
            case .failure(let error):
                return error
            case .success(let existing):
                let missing = topics.filter { !existing.contains($0.name) }
                return missing.isEmpty ? nil : createTopicsBlocking(missing, client: client, timeoutMs: timeoutMs)
            }
        }
        if let result { throw result }
    }

    /// The names of every topic of the cluster. Asks for all topics rather than
    /// for ours by name, which could make a broker auto-create them with its defaults.
    private static func existingTopics(client: NativeClient, timeoutMs: Int32) -> Result<Set<String>, KafkaError> {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(client.pointer, 1, nil, &metadata, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            return .failure(KafkaError(err, context: "listing the cluster's topics"))
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var names: Set<String> = []
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[index]
            if topic.err == RD_KAFKA_RESP_ERR_NO_ERROR { names.insert(String(cString: topic.topic)) }
        }
        return .success(names)
    }

    private static func createTopicsBlocking(_ topics: [TopicSpec], client: NativeClient, timeoutMs: Int32) -> KafkaError? {
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        for spec in topics {
            guard let topic = rd_kafka_NewTopic_new(spec.name, spec.partitions, spec.replicationFactor, &errorText, errorText.count) else {
                return KafkaError(code: "_INVALID_ARG", message: "topic \(spec.name): \(string(fromCBuffer: errorText))")
            }
            newTopics.append(topic)
            for (key, value) in spec.configs.sorted(by: { $0.key < $1.key }) {
                let err = rd_kafka_NewTopic_set_config(topic, key, value)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return KafkaError(err, context: "topic \(spec.name) config \(key)") }
            }
        }
        let queue = rd_kafka_queue_new(client.pointer)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)!
        defer { rd_kafka_AdminOptions_destroy(options) }
        rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errorText, errorText.count)
        rd_kafka_AdminOptions_set_operation_timeout(options, timeoutMs, &errorText, errorText.count)
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(client.pointer, buffer.baseAddress, buffer.count, options, queue)
        }
        // The request's own timeout bounds it; the extra second lets its answer arrive.
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 1000) else {
            return KafkaError(code: "_TIMED_OUT", message: "CreateTopics got no answer within \(timeoutMs) ms")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventErr = rd_kafka_event_error(event)
        if eventErr != RD_KAFKA_RESP_ERR_NO_ERROR {
            return KafkaError(code: String(cString: rd_kafka_err2name(eventErr)),
                              message: "CreateTopics failed: \(String(cString: rd_kafka_event_error_string(event)))")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return nil }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return nil }
        for index in 0..<count {
            let topicResult = results[index]
            let err = rd_kafka_topic_result_error(topicResult)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS { continue }
            let name = String(cString: rd_kafka_topic_result_name(topicResult))
            let text = rd_kafka_topic_result_error_string(topicResult).map { String(cString: $0) } ?? ""
            return KafkaError(code: String(cString: rd_kafka_err2name(err)), message: "cluster refused to create topic \(name): \(text)")
        }
        return nil
    }
}
