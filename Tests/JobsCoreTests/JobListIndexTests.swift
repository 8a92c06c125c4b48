import Foundation
import JobsCore
import Testing

@Suite("Listing jobs: newest first, filtered, by cursor")
struct JobListIndexTests {
    /// `count` jobs, one per second, some sharing a creation instant, cycling
    /// through types and statuses.
    static func jobs(_ count: Int) throws -> [JobSnapshot] {
        try (0..<count).map { index in
            let queued = JobSnapshot.queued(id: JobID(rawValue: String(format: "job-%03d", index)),
                                            type: index % 3 == 0 ? "sleep" : "noop", params: [:],
                                            at: at(Double(index / 2)))
            return index % 2 == 0 ? try queued.started(attempt: 1, by: "w", at: at(Double(index / 2) + 0.5)) : queued
        }
    }

    struct Listing {
        var table = JobTable()
        var index = JobListIndex()

        init(_ jobs: [JobSnapshot]) {
            for job in jobs.shuffled() {
                table.apply(job)
                index.insert(JobListPosition(job))
            }
        }

        mutating func page(_ filter: JobFilter = JobFilter(), limit: Int, after cursor: JobListPosition? = nil, scanBudget: Int = 100_000) -> JobPage {
            index.page(filter, limit: limit, after: cursor, scanBudget: scanBudget) { table[$0] }
        }

        /// Every page, following cursors, as one list.
        mutating func all(_ filter: JobFilter = JobFilter(), limit: Int, scanBudget: Int = 100_000) -> (jobs: [JobSnapshot], pages: Int) {
            var jobs: [JobSnapshot] = []
            var cursor: JobListPosition?
            var pages = 0
            repeat {
                let page = page(filter, limit: limit, after: cursor, scanBudget: scanBudget)
                jobs += page.jobs
                pages += 1
                cursor = page.next
            } while cursor != nil && pages < 1000
            return (jobs, pages)
        }
    }

    @Test("pages come newest first, and following cursors visits every job exactly once, ties included")
    func cursorsVisitEveryJobOnce() throws {
        let jobs = try Self.jobs(25)
        var listing = Listing(jobs)
        let expected = jobs.sorted { JobListPosition($0) > JobListPosition($1) }.map(\.id)
        for limit in [1, 2, 7, 25, 26] {
            let (listed, pages) = listing.all(limit: limit)
            #expect(listed.map(\.id) == expected, "limit \(limit)")
            #expect(pages == max(1, (25 + limit - 1) / limit), "limit \(limit): no empty trailing page")
        }
    }

    @Test("the last page has no cursor, also when it is exactly full")
    func lastPageHasNoCursor() throws {
        var listing = Listing(try Self.jobs(10))
        #expect(listing.page(limit: 10).next == nil)
        #expect(listing.page(limit: 9).next != nil)
        #expect(listing.page(limit: 11).jobs.count == 10)
        var empty = Listing([])
        #expect(empty.page(limit: 5).jobs.isEmpty)
    }

    @Test("filters by status, type and a half-open creation range")
    func filters() throws {
        let jobs = try Self.jobs(30)
        var listing = Listing(jobs)
        let filters = [
            JobFilter(statuses: [.running]),
            JobFilter(statuses: [.queued, .running], types: ["sleep"]),
            JobFilter(types: ["noop"], createdSince: at(3), createdUntil: at(9)),
            JobFilter(createdUntil: at(0)),
            JobFilter(statuses: [.succeeded]),
        ]
        for filter in filters {
            let expected = jobs.filter(filter.matches).sorted { JobListPosition($0) > JobListPosition($1) }.map(\.id)
            #expect(listing.all(filter, limit: 4).jobs.map(\.id) == expected, "\(filter)")
        }
        let ranged = listing.all(JobFilter(createdSince: at(3), createdUntil: at(9)), limit: 100).jobs
        #expect(ranged.allSatisfy { $0.createdAt >= at(3) && $0.createdAt < at(9) })
        #expect(ranged.count == 12)
    }

    @Test("a filter that matches little answers a short page with a cursor once the scan budget is spent")
    func scanBudgetBoundsOnePage() throws {
        let jobs = try Self.jobs(40)
        var listing = Listing(jobs)
        let filter = JobFilter(types: ["sleep"])
        let first = listing.page(filter, limit: 50, scanBudget: 10)
        #expect(first.jobs.count < 10)
        #expect(first.next != nil)
        let expected = jobs.filter(filter.matches).sorted { JobListPosition($0) > JobListPosition($1) }.map(\.id)
        #expect(listing.all(filter, limit: 50, scanBudget: 10).jobs.map(\.id) == expected)
    }

    @Test("inserting twice and removing keep one position per job")
    func insertAndRemove() throws {
        let jobs = try Self.jobs(6)
        var index = JobListIndex()
        for job in jobs + jobs { index.insert(JobListPosition(job)) }
        #expect(index.count == 6)
        index.remove(JobListPosition(jobs[0]))
        index.remove(Set(jobs[1...2].map(JobListPosition.init)))
        #expect(index.count == 3)
    }

    @Test("thousands of inserts and removals in any order list exactly as a sorted set would")
    func outOfOrderChangesMatchASortedSet() {
        // Enough changes that the side sets outgrow their bound (4,096) and merge
        // on their own several times, besides the merges before each page.
        var random = SystemRandomNumberGenerator()
        var index = JobListIndex()
        var expected: Set<JobListPosition> = []
        let universe = (0..<12_000).map {
            JobListPosition(createdAtMillis: Int64($0 % 700), id: JobID(rawValue: "job-\($0)"))
        }
        for step in 0..<40_000 {
            let position = universe.randomElement(using: &random)!
            if Bool.random(using: &random) {
                // Half the inserts say the position is absent, when it is.
                if !expected.contains(position), Bool.random(using: &random) {
                    index.insertAbsent(position)
                } else {
                    index.insert(position)
                }
                expected.insert(position)
            } else {
                index.remove(position)
                expected.remove(position)
            }
            #expect(index.count == expected.count)
            if step % 9000 == 8999 || step == 39_999 {
                let page = index.page(JobFilter(), limit: 20_000, after: nil) { id in
                    JobSnapshot(id: id, type: "noop", params: [:], createdAt: Date(timeIntervalSince1970: 0))
                }
                #expect(page.jobs.map(\.id) == expected.sorted(by: >).map(\.id))
            }
        }
    }

    @Test("a cursor survives its text form; anything else is refused")
    func cursorText() throws {
        let position = JobListPosition(try Self.jobs(3)[2])
        #expect(JobListPosition(cursor: position.cursor) == position)
        #expect(JobListPosition(cursor: "1700000000123_some-job") == JobListPosition(createdAtMillis: 1_700_000_000_123, id: JobID(rawValue: "some-job")))
        // Any text after the separator is a place in the order, even one joining `_` into one character.
        #expect(JobListPosition(cursor: "9_\u{1F3FB}x")?.id == JobID(rawValue: "\u{1F3FB}x"))
        for garbage in ["", "abc", "_job", "12_", "-5_job", "1e3_job", "٣_job", String(repeating: "1", count: 600) + "_x"] {
            #expect(JobListPosition(cursor: garbage) == nil, "\(garbage)")
        }
        // At most 512 code points, as the API document's maxLength counts, whatever their bytes.
        #expect(JobListPosition(cursor: "1_" + String(repeating: "é", count: 510))?.id.rawValue.unicodeScalars.count == 510)
        #expect(JobListPosition(cursor: "1_" + String(repeating: "é", count: 511)) == nil)
    }

    @Test("a job's position agrees whether its time came from this process or from the wire")
    func positionSurvivesTheWire() throws {
        let created = Date(timeIntervalSince1970: 1_700_000_000.123_456)
        let job = JobSnapshot.queued(type: "noop", params: [:], at: created)
        let decoded = try WireFormat.decode(JobSnapshot.self, from: WireFormat.encode(job))
        #expect(JobListPosition(decoded) == JobListPosition(job))
    }
}
