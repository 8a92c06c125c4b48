import JobsCore
import KafkaClient

/// What the gateway publishes: start commands, cancel commands, and the
/// snapshots that make a job visible (queued) or mark its cancel request.
struct JobCommands: Sendable {
    /// Start commands and snapshots: lingers, to send batches under load.
    let producer: KafkaProducer
    /// A cancel and its snapshots: sent at once, since a person waits on them
    /// (the cancel workload's p99 rose from 13 to 21-24 ms with lingering).
    /// A producer of their own rather than an expedited send on `producer`, so
    /// that a backlog of start commands (a full local queue, a slow broker)
    /// never holds up or refuses a cancel. The two need no common order: the
    /// fold ranks a job's snapshots by attempt and sequence, not by arrival.
    let urgent: KafkaProducer
    let topics: TopicNames

    /// The start command and the `queued` snapshot that makes the job visible,
    /// sent together: a submit waits for one acknowledgement round trip, and is
    /// woken once. Each may fail alone; the result says which did.
    ///
    /// The command is keyed by the job's ordering key when it has one: Kafka
    /// keeps one key's messages in one partition, in order, which is the order
    /// its jobs run in. Other commands keep the job id as key, spreading over the partitions.
    func submit(_ job: JobSnapshot) async -> (start: KafkaError?, queued: KafkaError?) {
        let start: [UInt8], queued: [UInt8]
        do throws(KafkaError) {
            start = try encode { try WireFormat.encodeStartCommand(StartJobCommand(job: job)) }
            queued = try encode { try WireFormat.encodeSnapshot(job) }
        } catch {
            return (error, error)
        }
        let results = await producer.send([
            OutgoingMessage(topic: topics.commands, key: job.orderingKey.map { Array($0.utf8) } ?? key(job.id), value: start),
            OutgoingMessage(topic: topics.status, key: key(job.id), value: queued),
        ])
        return (results[0].failure, results[1].failure)
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

    /// Tells the compacted workers topic to forget a worker.
    func forgetWorker(_ workerID: String) async throws(KafkaError) {
        try await producer.send(topic: topics.workers, key: Array(workerID.utf8), value: nil)
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

private extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}
