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
}
