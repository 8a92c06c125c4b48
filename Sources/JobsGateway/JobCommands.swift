import JobsCore
import KafkaClient

/// What the gateway publishes: start commands, cancel commands, and the
/// snapshots that make a job visible (queued) or mark its cancel request.
struct JobCommands: Sendable {
    let producer: KafkaProducer
    let topics: TopicNames

    func start(_ job: JobSnapshot) async throws(KafkaError) {
        try await producer.send(topic: topics.commands, key: key(job.id), value: encode(StartJobCommand(job: job)))
    }

    func cancel(_ id: JobID) async throws(KafkaError) {
        try await producer.send(topic: topics.control, key: key(id), value: encode(ControlCommand.cancel(id)))
    }

    func publishStatus(_ snapshot: JobSnapshot) async throws(KafkaError) {
        try await producer.send(topic: topics.status, key: key(snapshot.id), value: encode(snapshot))
    }

    /// Tells the compacted status topic to forget a job.
    func tombstone(_ id: JobID) async throws(KafkaError) {
        try await producer.send(topic: topics.status, key: key(id), value: nil)
    }

    private func key(_ id: JobID) -> [UInt8] { Array(id.rawValue.utf8) }

    private func encode(_ value: some Encodable) throws(KafkaError) -> [UInt8] {
        do {
            return try WireFormat.encode(value)
        } catch {
            throw KafkaError(code: "_SERIALIZATION", message: "\(error)")
        }
    }
}
