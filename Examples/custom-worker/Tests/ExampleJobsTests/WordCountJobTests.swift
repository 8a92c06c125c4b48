import ExampleJobs
import Foundation
import GRDB
import JobsCore
import JobsWorker
import Synchronization
import Testing

@Suite("word-count: typed params and result, progress, cancel", .serialized)
struct WordCountJobTests {
    @Test("succeeds with its typed result, after its progress reports")
    func succeedsWithProgress() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            let params = WordCountParams(text: "The cat sat on the mat\nthe dog sat\na bird", top: 3, linesPerStep: 1)
            let job = try await gateway.submit(type: ExampleJobTypes.wordCount, params: params)
            let done = try await gateway.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded, "\(String(describing: done.error))")
            #expect(try decodeResult(WordCountResult.self, of: done) == WordCountResult(
                lines: 3, words: 11, characters: 39,
                top: [.init(word: "the", count: 3), .init(word: "sat", count: 2), .init(word: "a", count: 1)]
            ))
            #expect(done.progress == JobProgress(current: 3, total: 3, message: "3 of 3 lines"))

            // Reports reached the status topic in order, before the verdict: the first
            // at once, later ones at most every 100 ms (the latest winning), and the
            // verdict carries the last.
            let events = try await harness.statusEvents(of: job.id)
            #expect(events.last?.status == .succeeded)
            let reports = events.filter { $0.status == .running }.compactMap(\.progress)
            #expect(reports.first?.current == 1)
            #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.current < $1.current })
            #expect(reports.allSatisfy { $0.total == 3 })
        }
    }

    @Test("a cancel stops it midway")
    func aCancelStopsIt() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            // 200 steps of 100 ms: 20 s if nothing stops it.
            let text = (1...200).map { "line \($0) of a long text" }.joined(separator: "\n")
            let job = try await gateway.submit(type: ExampleJobTypes.wordCount,
                                               params: WordCountParams(text: text, linesPerStep: 1, pauseMs: 100))
            try await gateway.waitFor(job.id) { ($0.progress?.current ?? 0) >= 2 }

            let clock = ContinuousClock()
            let cancelledAt = clock.now
            let reply = try await gateway.request(.post, "/jobs/\(job.id)/cancel")
            #expect(reply.status == .accepted, "\(reply.text)")
            let done = try await gateway.waitFor(job.id, timeout: .seconds(10)) { $0.status.isTerminal }
            let stoppedAfter = clock.now - cancelledAt

            #expect(done.status == .cancelled)
            #expect(done.result == nil)
            #expect((done.progress?.current ?? 0) < 200)
            #expect(stoppedAfter < .seconds(5), "stopped \(stoppedAfter) after the cancel")
        }
    }

    @Test("params of the wrong type are refused at the gateway")
    func badParamsAreRefused() async throws {
        let harness = try ExampleHarness()
        defer { harness.removeFiles() }
        try await harness.withGateway { gateway in
            let reply = try await gateway.request(
                .post, "/jobs", body: Array(#"{"type":"word-count","params":{"text":"a b","top":"three"}}"#.utf8))
            #expect(reply.status == .badRequest)
            #expect(try reply.problemPointers() == ["/params/top"], "\(reply.text)")
        }
    }
}

@Suite("WordTally")
struct WordTallyTests {
    @Test("counts lines, words and characters; ranks words case-insensitively")
    func counts() {
        var tally = WordTally()
        for line in "It's a test.\nA TEST, it's\n\n42 tests".split(separator: "\n", omittingEmptySubsequences: false) {
            tally.add(line: line)
        }
        #expect(tally.result(top: 2) == WordCountResult(
            lines: 4, words: 8, characters: 32,
            top: [.init(word: "a", count: 2), .init(word: "it's", count: 2)]
        ))
        #expect(tally.result(top: 0).top.isEmpty)
    }
}

/// The handler alone, as a team tests its own: `JobRegistry.run` does what a
/// worker does with one attempt (schema check, typed params, JSON result), with
/// no Kafka, and a `JobContext` made in the test records the progress reports.
@Suite("word-count's handler, without Kafka")
struct WordCountHandlerTests {
    static func registry() throws -> JobRegistry {
        var registry = JobRegistry()
        try registerExampleJobs(into: &registry, database: DatabaseQueue())  // in memory
        return registry
    }

    @Test("returns its result as the job's result, after a progress report per step")
    func resultAndProgress() async throws {
        let reports = Mutex<[JobProgress]>([])
        let context = JobContext(type: ExampleJobTypes.wordCount) { progress in reports.withLock { $0.append(progress) } }
        let result = try await Self.registry().run(
            ExampleJobTypes.wordCount, params: ["text": "to be\nor not to be", "top": 2, "linesPerStep": 1], context: context)
        #expect(result == [
            "lines": 2, "words": 6, "characters": 17,
            "top": [["word": "be", "count": 2], ["word": "to", "count": 2]],
        ])
        #expect(reports.withLock { $0 } == [
            JobProgress(current: 1, total: 2, message: "1 of 2 lines"),
            JobProgress(current: 2, total: 2, message: "2 of 2 lines"),
        ])
    }

    @Test("stops at the first report after the job is cancelled")
    func stopsWhenCancelled() async throws {
        // A worker's reporter throws CancellationError once the job is cancelled.
        let context = JobContext(type: ExampleJobTypes.wordCount) { progress in
            if progress.current >= 3 { throw CancellationError() }
        }
        let text = (1...100).map { "line \($0)" }.joined(separator: "\n")
        await #expect(throws: CancellationError.self) {
            try await Self.registry().run(ExampleJobTypes.wordCount, params: ["text": .string(text), "linesPerStep": 1], context: context)
        }
    }

    @Test("refuses params its schema refuses, as a worker would, without running")
    func refusesBadParams() async throws {
        await #expect(throws: NonRetryableError(code: "invalid_params", message: "/params/top: must be at most 100")) {
            try await Self.registry().run(ExampleJobTypes.wordCount, params: ["text": "a", "top": 101], context: JobContext(type: "word-count"))
        }
    }
}
