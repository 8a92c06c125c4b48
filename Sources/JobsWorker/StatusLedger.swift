import Foundation
import JobsCore
import KafkaClient
import Logging
import Synchronization

/// What a worker knows of every job's history, folded from the status topic.
///
/// It answers the question a new partition owner must ask about every command
/// past the last committed offset: has this job already finished (never run it
/// again), was a cancel asked for (end it without running), and which attempt
/// comes next. Only the fields needed for that are kept.
final class StatusLedger: Sendable {
    private let table = Mutex(JobTable())
    let offsets = ConsumedOffsets()
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    subscript(id: JobID) -> JobSnapshot? { table.withLock { $0[id] } }

    /// Folds the status topic until the reader is closed, a batch at a time.
    func follow(_ reader: KafkaTopicReader) async {
        for await batch in reader.batches() {
            // Tombstones are jobs that expired long after they ended (docs/operations.md).
            let records = StatusRecord.decodeAll(batch, key: \.key, value: \.value) { message, error in
                logger.warning("skipping undecodable status event", metadata: ["offset": "\(message.offset)", "error": "\(error)"])
            }
            table.withLock { table in
                for record in records {
                    switch record {
                    case .snapshot(let snapshot): _ = table.apply(Self.compact(snapshot))
                    case .tombstone(let id): table.remove(id)
                    }
                }
            }
            offsets.advance(past: batch)
        }
    }

    /// Also called with the worker's own snapshots as it publishes them, so its
    /// next decision doesn't wait for the round trip through the topic.
    func record(_ snapshot: JobSnapshot) {
        let compact = Self.compact(snapshot)
        table.withLock { _ = $0.apply(compact) }
    }

    /// Only what the ledger's questions need: not a job's params, result or progress.
    private static func compact(_ snapshot: JobSnapshot) -> JobSnapshot {
        var compact = snapshot
        compact.params = .null
        compact.result = nil
        compact.progress = nil
        compact.error = nil
        return compact
    }

    /// Waits until everything on the status topic now is folded in.
    func catchUp(with reader: KafkaTopicReader, timeout: Duration) async -> Bool {
        do {
            let ends = try await reader.endOffsets(timeout: timeout)
            return await offsets.wait(until: ends, timeout: timeout)
        } catch {
            logger.warning("could not read the status topic's end offsets", metadata: ["error": "\(error)"])
            return false
        }
    }
}
