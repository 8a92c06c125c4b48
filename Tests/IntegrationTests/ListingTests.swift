import Foundation
import JobsCore
import JobsGateway
import Testing

@Suite("GET /jobs: filters, pages, refusals", .serialized, .timeLimit(.minutes(3)))
struct ListingTests {
    @Test("lists newest first; following nextCursor visits every job once; filters by status, type and creation time")
    func pagesAndFilters() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            var submitted: [JobSnapshot] = []
            for index in 0..<7 {
                submitted.append(try await client.submit(index % 2 == 0 ? #"{"type":"noop"}"# : #"{"type":"sleep"}"#))
                try await Task.sleep(for: .milliseconds(3))
            }
            let newestFirst = submitted.reversed().map(\.id)

            #expect(try await client.list("").jobs.map(\.id) == newestFirst)
            var seen: [JobID] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await client.list("?limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
                #expect(page.jobs.count <= 3)
                seen += page.jobs.map(\.id)
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            #expect(seen == newestFirst)
            #expect(pages == 3)
            #expect(try await client.list("?limit=7").nextCursor == nil, "an exactly full last page has no cursor")

            #expect(try await client.list("?type=sleep").jobs.map(\.id) == newestFirst.filter { id in submitted.first { $0.id == id }?.type == "sleep" })
            #expect(try await client.list("?status=queued&status=running").jobs.count == 7)
            #expect(try await client.list("?status=succeeded").jobs.isEmpty)
            // Names are percent-decoded, as values are.
            #expect(try await client.list("?t%79pe=sleep&%6Cimit=2").jobs.map(\.id) == Array(newestFirst.filter { id in
                submitted.first { $0.id == id }?.type == "sleep" }.prefix(2)))
            let since = WireFormat.timestampText(submitted[4].createdAt)
            #expect(try await client.list("?createdSince=\(since)").jobs.map(\.id) == Array(newestFirst.prefix(3)))
            #expect(try await client.list("?createdUntil=\(since)").jobs.map(\.id) == Array(newestFirst.suffix(4)))
        }
    }

    static let badQueries = [
        ("?limit=0", "limit"), ("?limit=201", "limit"), ("?limit=ten", "limit"), ("?limit=1&limit=2", "limit"),
        ("?limit=%2B5", "limit"), ("?limit=-1", "limit"), ("?limit=", "limit"), ("?limit=5.0", "limit"),
        ("?status=done", "status"), ("?cursor=not-a-cursor", "cursor"), ("?createdSince=yesterday", "createdSince"),
        ("?createdUntil=2026-13-01", "createdUntil"), ("?state=running", "state"),
        ("?st%61te=running", "state"),
    ]

    @Test("refuses a bad query with a 400 naming the parameter")
    func refusesBadQueries() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            for (query, parameter) in Self.badQueries {
                let reply = try await client.request(.get, "/jobs\(query)")
                #expect(reply.status == .badRequest, "\(query)")
                #expect(reply.headers[.contentType] == "application/problem+json")
                struct Body: Decodable { let type: String; let parameters: [ParameterViolation] }
                struct ParameterViolation: Decodable { let parameter: String }
                let body = try JSONDecoder().decode(Body.self, from: Data(buffer: reply.body))
                #expect(body.type == "/problems/invalid-query", "\(query)")
                #expect(body.parameters.map(\.parameter) == [parameter], "\(query)")
            }
            // The refused value is quoted, so that an empty one reads as such.
            let empty = try await client.request(.get, "/jobs?status=running&status=")
            struct Detail: Decodable { let detail: String }
            let detail = try JSONDecoder().decode(Detail.self, from: Data(buffer: empty.body)).detail
            #expect(detail.hasPrefix("status: '' is not a status; statuses: queued, running"), "\(detail)")
        }
    }

    @Test("the page size's bound is configurable")
    func pageSizeBound() async throws {
        try await TestCluster().withGateway(worker: false, configure: { $0.maxPageSize = 5 }) { client in
            let atBound = try await client.request(.get, "/jobs?limit=5")
            let overBound = try await client.request(.get, "/jobs?limit=6")
            #expect(atBound.status == .ok)
            #expect(overBound.status == .badRequest)
        }
    }
}
