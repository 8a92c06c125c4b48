import Foundation
@testable import JobsGateway
import JobsCore
import Testing

@Suite("The hand-written body of GET /jobs")
struct ListBodyTests {
    struct Decoded: Decodable, Equatable {
        let jobs: [JobSnapshot]
        let nextCursor: String?
    }

    @Test("reads back, with Foundation's decoder, as the jobs and cursor it was made from, escapes included")
    func readsBackAsWritten() throws {
        let created = Date(timeIntervalSince1970: 1_700_000_000.123)
        let jobs = try [
            JobSnapshot.queued(id: JobID(rawValue: "a"), type: "noop", params: [:], at: created),
            JobSnapshot.queued(id: JobID(rawValue: "b\"\\\u{1}é"), type: "sleep", params: ["steps": 3, "note": "x/y\n"], at: created)
                .started(attempt: 1, by: "w", at: created),
        ]
        for cursor in [nil, "1700000000123_b\"\\\u{1}é"] {
            let body = try JobListResponse(jobs: jobs, nextCursor: cursor).encoded()
            let decoded = try WireFormat.decode(Decoded.self, from: body)
            #expect(decoded == Decoded(jobs: jobs, nextCursor: cursor))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            #expect(Set(object.keys) == (cursor == nil ? ["jobs"] : ["jobs", "nextCursor"]))
        }
        #expect(try JobListResponse(jobs: [], nextCursor: nil).encoded() == Array(#"{"jobs":[]}"#.utf8))
    }
}
