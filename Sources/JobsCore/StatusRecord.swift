/// One record of the status topic, as its key and value bytes: a job's snapshot,
/// or a tombstone (no value) saying the job expired and is to be forgotten.
public enum StatusRecord: Sendable {
    case snapshot(JobSnapshot)
    case tombstone(JobID)

    /// `nil` for a record with neither value nor key; throws when the value is
    /// not a snapshot.
    public init?(key: [UInt8]?, value: [UInt8]?) throws {
        if let value {
            self = .snapshot(try WireFormat.decodeSnapshot(value))
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
