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

    @Test("a batch reads in order, and a record that isn't a snapshot is handed back and left out")
    func batchSkipsWhatDoesNotDecode() throws {
        let job = JobSnapshot.queued(id: JobID(rawValue: "job-1"), type: "noop", params: [:], at: at(0))
        let batch: [(key: [UInt8]?, value: [UInt8]?)] = [
            (Array("job-1".utf8), try WireFormat.encodeSnapshot(job)),
            (Array("job-2".utf8), Array("not json".utf8)),
            (nil, nil),
            (Array("job-3".utf8), nil),
        ]
        var skipped: [String] = []
        let records = StatusRecord.decodeAll(batch, key: \.key, value: \.value) { message, _ in
            skipped.append(String(decoding: message.key ?? [], as: UTF8.self))
        }
        #expect(skipped == ["job-2"])
        #expect(records.count == 2)
        if case .snapshot(let read)? = records.first { #expect(read == job) } else { Issue.record("first: \(records)") }
        if case .tombstone(let id)? = records.last { #expect(id.rawValue == "job-3") } else { Issue.record("last: \(records)") }
    }

    @Test("a record whose attempt no worker could have written (0, Int.max) is refused, so no reader counts on from it")
    func impossibleAttemptsAreRefused() throws {
        try Self.expectRefused(\.attempt, outside: [0, -1, Int(Int32.max) + 1, Int.max], accepted: [1, 2, Int(Int32.max)])
    }

    @Test("a record whose sequence no worker could have written (-1, Int.max) is refused: a worker counting on from Int.max trapped")
    func impossibleSequencesAreRefused() throws {
        try Self.expectRefused(\.sequence, outside: [-1, Int(Int32.max) + 1, Int.max], accepted: [0, 1, Int(Int32.max)])
    }

    /// Status records and start commands whose `field` is one of `outside` are
    /// refused as implausible; those of `accepted` read back as written.
    private static func expectRefused(_ field: WritableKeyPath<JobSnapshot, Int>, outside: [Int], accepted: [Int]) throws {
        var job = JobSnapshot.queued(id: JobID(rawValue: "job-1"), type: "noop", params: [:], at: at(0))
        for number in outside {
            job[keyPath: field] = number
            let value = try WireFormat.encodeSnapshot(job)
            #expect(throws: ImplausibleRecord.self, "\(number)") { try StatusRecord(key: Array("job-1".utf8), value: value) }
            #expect(throws: ImplausibleRecord.self, "\(number)") { try StartJobCommand(job: job).checkedAsRecord() }
        }
        for number in accepted {
            job[keyPath: field] = number
            guard case .snapshot(let read)? = try StatusRecord(key: Array("job-1".utf8), value: try WireFormat.encodeSnapshot(job)) else {
                Issue.record("\(number) should read as a snapshot")
                continue
            }
            #expect(read[keyPath: field] == number)
            #expect(try StartJobCommand(job: job).checkedAsRecord().job[keyPath: field] == number)
        }
    }
}
