/// One record of the status topic, as its key and value bytes: a job's snapshot,
/// or a tombstone (no value) saying the job expired and is to be forgotten.
public enum StatusRecord: Sendable {
    case snapshot(JobSnapshot)
    case tombstone(JobID)

    /// `nil` for a record with neither value nor key; throws when the value is
    /// not a snapshot.
    public init?(key: [UInt8]?, value: [UInt8]?) throws {
        if let value {
            self = .snapshot(try WireFormat.decodeSnapshot(value).checkedAsRecord())
        } else if let key {
            self = .tombstone(JobID(rawValue: String(decoding: key, as: UTF8.self)))
        } else {
            return nil
        }
    }

    /// The records of `messages`, in order. One whose value is not a snapshot
    /// is left out and handed to `skipped`, for the caller to log.
    public static func decodeAll<Messages: Sequence>(
        _ messages: Messages, key: (Messages.Element) -> [UInt8]?, value: (Messages.Element) -> [UInt8]?,
        skipped: (Messages.Element, any Error) -> Void
    ) -> [StatusRecord] {
        messages.compactMap { message in
            do {
                return try StatusRecord(key: key(message), value: value(message))
            } catch {
                skipped(message, error)
                return nil
            }
        }
    }
}

extension JobSnapshot {
    /// The attempt numbers a job's records carry. Anyone may write to the
    /// topics, and readers count on from a record's attempt: one that no worker
    /// could have written (`Int.max`, whose next attempt would trap) is refused
    /// like a record that is not JSON.
    public static let attempts = 1...Int(Int32.max)
    /// The sequence numbers, likewise: a job's next snapshot counts on from its
    /// record's (`Int.max` would trap), and no attempt reports progress two
    /// billion times.
    public static let sequences = 0...Int(Int32.max)

    /// The snapshot, if it is one a reader may act on; else throws, saying why.
    public func checkedAsRecord() throws(ImplausibleRecord) -> JobSnapshot {
        guard Self.attempts.contains(attempt) else {
            throw ImplausibleRecord("attempt \(attempt) is outside \(Self.attempts.lowerBound)...\(Self.attempts.upperBound)")
        }
        guard Self.sequences.contains(sequence) else {
            throw ImplausibleRecord("sequence \(sequence) is outside \(Self.sequences.lowerBound)...\(Self.sequences.upperBound)")
        }
        return self
    }
}

extension StartJobCommand {
    /// The command, if its job is one a worker may act on (see ``JobSnapshot/checkedAsRecord()``).
    public func checkedAsRecord() throws(ImplausibleRecord) -> StartJobCommand {
        _ = try job.checkedAsRecord()
        return self
    }
}

/// A record that decodes but that no gateway or worker could have written.
public struct ImplausibleRecord: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
