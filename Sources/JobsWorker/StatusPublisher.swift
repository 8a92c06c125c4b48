import Foundation
import JobsCore
import KafkaClient
import Logging

/// Publishes job snapshots on the status topic, keyed by job id.
struct StatusPublisher: Sendable {
    let producer: KafkaProducer
    let topic: String
    let ledger: StatusLedger
    let logger: Logger

    /// For progress snapshots: queued at once, not awaited.
    /// Per-key ordering puts it before the job's final snapshot.
    func post(_ snapshot: JobSnapshot) {
        ledger.record(snapshot)
        do {
            try producer.post(topic: topic, key: Array(snapshot.id.rawValue.utf8), value: WireFormat.encodeSnapshot(snapshot))
        } catch {
            logger.warning("status event not queued", metadata: ["job.id": "\(snapshot.id)", "error": "\(error)"])
        }
    }

    /// What became of a final snapshot given to ``publishFinal(_:)``.
    enum Outcome: Sendable, Equatable {
        case acknowledged
        /// The producer refused it as larger than its `message.max.bytes`, as it would every time.
        case tooLarge(KafkaError)
        /// The producer was shut down first (or the snapshot is not encodable).
        case notSent
    }

    /// For the snapshots a job's next step waits on (`running`, `queued` for a
    /// retry or a hand-back): awaits the broker's acknowledgement, retrying
    /// with backoff while the broker is unreachable. Returns `false` only once
    /// the producer is shut down: the command's offset then stays uncommitted,
    /// so the job is delivered again rather than lost.
    func publish(_ snapshot: JobSnapshot) async -> Bool {
        await send(snapshot, givingUpIfTooLarge: false) == .acknowledged
    }

    /// For a job's final snapshot: as ``publish(_:)``, but gives up on a
    /// snapshot the producer refuses as too large, which the caller can
    /// replace with a smaller one (only a result makes it larger than the
    /// snapshots before it). Any other snapshot is retried even then, holding
    /// its job's key: giving up would let the key's next job overtake it.
    func publishFinal(_ snapshot: JobSnapshot) async -> Outcome {
        await send(snapshot, givingUpIfTooLarge: true)
    }

    /// A `cancelled` snapshot answers someone's cancel request, so it is sent
    /// at once instead of after `linger.ms` (which was 5 of a cancel's 12 ms).
    ///
    /// The ledger learns of a snapshot before it is sent, so the worker's next
    /// decision doesn't wait for the round trip, but of a job's end only once
    /// the broker has it: a command delivered again meanwhile (after its
    /// partition was lost and came back) must not be taken for finished and
    /// committed while the end may never be written.
    private func send(_ snapshot: JobSnapshot, givingUpIfTooLarge: Bool) async -> Outcome {
        let final = snapshot.status.isTerminal
        if !final { ledger.record(snapshot) }
        let value: [UInt8]
        do {
            value = try WireFormat.encodeSnapshot(snapshot)
        } catch {
            logger.error("cannot encode snapshot", metadata: ["job.id": "\(snapshot.id)", "error": "\(error)"])
            return .notSent
        }
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await producer.send(topic: topic, key: Array(snapshot.id.rawValue.utf8), value: value,
                                        expedited: snapshot.status == .cancelled)
                if final { ledger.record(snapshot) }
                return .acknowledged
            } catch where error.isClientClosed {
                return .notSent
            } catch where error.isTooLargeToSend && givingUpIfTooLarge {
                logger.error("status event larger than the producer's message.max.bytes", metadata: [
                    "job.id": "\(snapshot.id)", "status": "\(snapshot.status)", "bytes": "\(value.count)", "error": "\(error)",
                ])
                return .tooLarge(error)
            } catch {
                logger.warning("status event not acknowledged; retrying",
                               metadata: ["job.id": "\(snapshot.id)", "status": "\(snapshot.status)", "error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
