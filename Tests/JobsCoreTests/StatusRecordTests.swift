import Foundation
import JobsCore
import Testing

@Suite("Records of the status topic")
struct StatusRecordTests {
    @Test("a value is a snapshot, a key without a value a tombstone, neither nothing, and a bad value an error")
    func recordsReadFromKeyAndValue() throws {
        let job = JobSnapshot.queued(id: JobID(rawValue: "job-1"), type: "noop", params: [:], at: at(0))
        let key = Array("job-1".utf8)
        guard case .snapshot(let read)? = try StatusRecord(key: key, value: try WireFormat.encodeSnapshot(job)) else {
            Issue.record("a value should read as a snapshot")
            return
        }
        #expect(read == job)
        guard case .tombstone(let id)? = try StatusRecord(key: key, value: nil) else {
            Issue.record("a key without a value should read as a tombstone")
            return
        }
        #expect(id == job.id)
        #expect(try StatusRecord(key: nil, value: nil) == nil)
        #expect(throws: (any Error).self) { try StatusRecord(key: key, value: Array("not json".utf8)) }
    }
}
