import JobsCore
import KafkaClient

/// What the gateway publishes: start commands, cancel commands, and the
/// snapshots that make a job visible (queued) or mark its cancel request.
struct JobCommands: Sendable {
    /// Start commands and snapshots: lingers, to send batches under load.
    let producer: KafkaProducer
    /// A cancel and its snapshots: sent at once, since a person waits on them
    /// (the cancel workload's p99 rose from 13 to 21-24 ms with lingering).
    let urgent: KafkaProducer
    let topics: TopicNames

    /// Keyed by the job's ordering key when it has one: Kafka keeps one key's
    /// messages in one partition, in order, which is the order its jobs run in.
    /// Other commands keep the job id as key, spreading over the partitions.
    func start(_ job: JobSnapshot) async throws(KafkaError) {
        let messageKey = job.orderingKey.map { Array($0.utf8) } ?? key(job.id)
        try await producer.send(topic: topics.commands, key: messageKey, value: encode { try WireFormat.encodeStartCommand(StartJobCommand(job: job)) })
    }

    func cancel(_ id: JobID) async throws(KafkaError) {
        try await urgent.send(topic: topics.control, key: key(id), value: encode { try WireFormat.encode(ControlCommand.cancel(id)) })
    }

    /// - Parameter urgent: part of a cancel request; sent at once.
    func publishStatus(_ snapshot: JobSnapshot, urgent: Bool = false) async throws(KafkaError) {
        try await (urgent ? self.urgent : producer)
            .send(topic: topics.status, key: key(snapshot.id), value: encode { try WireFormat.encodeSnapshot(snapshot) })
    }

    /// Tells the compacted status topic to forget a job.
    func tombstone(_ id: JobID) async throws(KafkaError) {
        try await producer.send(topic: topics.status, key: key(id), value: nil)
    }

    private func key(_ id: JobID) -> [UInt8] { Array(id.rawValue.utf8) }

    private func encode(_ write: () throws -> [UInt8]) throws(KafkaError) -> [UInt8] {
        do {
            return try write()
        } catch {
            throw KafkaError(code: "_SERIALIZATION", message: "\(error)")
        }
    }
}
