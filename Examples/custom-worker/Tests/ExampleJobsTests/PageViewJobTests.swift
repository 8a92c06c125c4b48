import ExampleJobs
import Foundation
import GRDB
import JobsCore
import Testing

/// The background side effect: a page view is counted in SQLite by a job, after
/// the HTTP answer. Each test runs an embedded cluster, a live gateway and a
/// worker with the example registry, all in this process.
@Suite("count-page-view: a database write after the response", .serialized)
struct PageViewJobTests {
    @Test("the 202 comes back at once; the job writes the row after it")
    func answersBeforeTheWrite() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            // Another connection holds the database's write lock while the job is
            // submitted, so no job can have written the row before the answer:
            // the answer does not wait for the write, whatever the database does.
            let lock = try DatabaseLock(path: harness.databasePath)
            try await lock.lock()

            let clock = ContinuousClock()
            let start = clock.now
            let reply = try await gateway.post(type: ExampleJobTypes.countPageView, params: PageViewParams(path: "/pricing"))
            let latency = clock.now - start
            let answeredAt = Date()
            try #require(reply.status == .accepted, "POST /jobs answered \(reply.status): \(reply.text)")
            let queued = try reply.snapshot()
            #expect(queued.status == .queued)
            #expect(latency < .seconds(2), "the answer took \(latency)")

            // At the moment of the answer, the row is not there.
            #expect(try await lock.pageView("/pricing") == nil)
            // The worker has taken the job; its write waits for the lock.
            try await gateway.waitFor(queued.id) { $0.status == .running }
            #expect(try await lock.pageView("/pricing") == nil)
            try await lock.unlock()

            // Then the job writes it.
            let row = try await harness.waitForPageView("/pricing", count: 1)
            #expect(row.count == 1)
            // After the client had its answer (GRDB stores dates to the millisecond).
            #expect(row.updatedAt.timeIntervalSince(answeredAt) > -0.001,
                    "row written at \(row.updatedAt), answer at \(answeredAt)")

            let done = try await gateway.waitFor(queued.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(try decodeResult(PageViewStore.Outcome.self, of: done) == .init(path: "/pricing", count: 1, counted: true))
            let finishedAt = try #require(done.finishedAt)
            #expect(finishedAt > answeredAt)
        }
    }

    @Test("without contention too: each job counts one more view, after its answer")
    func everyJobCountsOneView() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            let clock = ContinuousClock()
            var jobs: [JobID] = []
            var firstSentAt: Date?
            for _ in 0..<2 {
                firstSentAt = firstSentAt ?? Date()
                let start = clock.now
                let job = try await gateway.submit(type: ExampleJobTypes.countPageView, params: PageViewParams(path: "/home"))
                let latency = clock.now - start
                #expect(latency < .seconds(2), "the answer took \(latency)")
                jobs.append(job.id)
            }

            let row = try await harness.waitForPageView("/home", count: 2)
            #expect(row.count == 2)
            // Written by a job, so after the request that made it.
            #expect(row.updatedAt.timeIntervalSince(try #require(firstSentAt)) > -0.001)

            var outcomes: [PageViewStore.Outcome] = []
            for id in jobs {
                let done = try await gateway.waitFor(id) { $0.status.isTerminal }
                #expect(done.status == .succeeded)
                outcomes.append(try decodeResult(PageViewStore.Outcome.self, of: done))
            }
            // The two jobs may run in either order, even at once: SQLite serializes the writes.
            #expect(Set(outcomes.map(\.count)) == [1, 2])
            #expect(outcomes.allSatisfy { $0.counted && $0.path == "/home" })
            #expect(try await harness.pageViews.pageView("/pricing") == nil)
        }
    }

    @Test("a job run again after its write committed does not count twice")
    func aRerunCountsNothing() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            // The job's first run: its write committed, then its worker died
            // before publishing anything more (the gateway never saw it run).
            let id = JobID.generate()
            let firstRun = try await harness.pageViews.count(path: "/docs", jobID: id)
            #expect(firstRun == .init(path: "/docs", count: 1, counted: true))

            // Its start command is delivered again, to a worker that runs the job again.
            try await harness.publishStart(.queued(id: id, type: ExampleJobTypes.countPageView, params: ["path": "/docs"]))
            let rerun = try await gateway.waitFor(id) { $0.status.isTerminal }
            #expect(rerun.status == .succeeded)
            #expect(try decodeResult(PageViewStore.Outcome.self, of: rerun) == .init(path: "/docs", count: 1, counted: false))
            #expect(try await harness.pageViews.pageView("/docs")?.count == 1)

            // Another job for the same page counts as usual.
            let next = try await gateway.submit(type: ExampleJobTypes.countPageView, params: PageViewParams(path: "/docs"))
            let done = try await gateway.waitFor(next.id) { $0.status.isTerminal }
            #expect(try decodeResult(PageViewStore.Outcome.self, of: done) == .init(path: "/docs", count: 2, counted: true))
        }
    }

    @Test("params the schema refuses are answered 400 with the field, from the announced schema")
    func badParamsAreRefused() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            let missing = try await gateway.post(type: ExampleJobTypes.countPageView, params: [String: String]())
            #expect(missing.status == .badRequest)
            #expect(try missing.problemPointers() == ["/params/path"], "\(missing.text)")

            let tooLong = try await gateway.post(type: ExampleJobTypes.countPageView,
                                                 params: PageViewParams(path: "/" + String(repeating: "a", count: 2048)))
            #expect(tooLong.status == .badRequest)
            #expect(try tooLong.problemPointers() == ["/params/path"], "\(tooLong.text)")
        }
        #expect(try await harness.pageViews.pageView("/") == nil)
    }
}

/// The store alone, without Kafka: what makes the write safe to repeat.
@Suite("PageViewStore")
struct PageViewStoreTests {
    @Test("the same job id counts once; another job counts again")
    func countsEachJobOnce() async throws {
        let store = try PageViewStore(database: DatabaseQueue())
        let job = JobID.generate()
        #expect(try await store.count(path: "/a", jobID: job) == .init(path: "/a", count: 1, counted: true))
        #expect(try await store.count(path: "/a", jobID: job) == .init(path: "/a", count: 1, counted: false))
        #expect(try await store.count(path: "/a", jobID: .generate()) == .init(path: "/a", count: 2, counted: true))
        #expect(try await store.count(path: "/b", jobID: .generate()) == .init(path: "/b", count: 1, counted: true))
        #expect(try await store.pageView("/a")?.count == 2)
    }

    @Test("updated_at is the last counting job's time")
    func updatedAtFollowsTheLastCount() async throws {
        let store = try PageViewStore(database: DatabaseQueue())
        let first = Date(timeIntervalSince1970: 1_800_000_000)
        let second = first.addingTimeInterval(60)
        try await store.count(path: "/a", jobID: .generate(), at: first)
        try await store.count(path: "/a", jobID: .generate(), at: second)
        #expect(try await store.pageView("/a")?.updatedAt == second)
    }

    @Test("forgetting old job ids keeps the counts")
    func forgetsOldJobIDs() async throws {
        let store = try PageViewStore(database: DatabaseQueue())
        let old = Date(timeIntervalSince1970: 1_800_000_000)
        try await store.count(path: "/a", jobID: .generate(), at: old)
        try await store.count(path: "/a", jobID: .generate(), at: old.addingTimeInterval(3600))
        #expect(try await store.forgetCountedJobs(before: old.addingTimeInterval(60)) == 1)
        #expect(try await store.pageView("/a")?.count == 2)
    }
}
