import Foundation
import GRDB
import JobsCore
import JobsWorker

/// Params of a `count-page-view` job.
public struct PageViewParams: Codable, Sendable, Hashable {
    public var path: String

    public init(path: String) {
        self.path = path
    }
}

/// The names, params schemas and options of the example's job types.
public enum ExampleJobTypes {
    public static let countPageView = "count-page-view"
    public static let wordCount = "word-count"

    /// Checked by the gateway before anything is published (it learns the
    /// schema from this worker's heartbeats, or from its own configuration),
    /// and by the worker again before the handler runs.
    public static let countPageViewSchema = ParamsSchema([
        .init("path", .string(maxLength: 2048), required: true, summary: "The page's path, e.g. /pricing."),
    ])

    /// A small database write: retried (the database may be busy past its
    /// busy timeout, or briefly unavailable), with a time limit per attempt.
    /// Not cancellable once running: the write is one short transaction, so a
    /// cancel can only usefully stop a job that has not started yet.
    public static let countPageViewOptions = JobOptions(
        maxAttempts: 5, initialBackoff: .milliseconds(200), maxBackoff: .seconds(5),
        timeout: .seconds(30), cancellable: false
    )

    public static let wordCountSchema = ParamsSchema([
        .init("text", .string(maxLength: 1_000_000), required: true, summary: "The text to count."),
        .init("top", .integer(minimum: 0, maximum: 100), summary: "Most frequent words to list (default 5)."),
        .init("linesPerStep", .integer(minimum: 1, maximum: 100_000), summary: "Lines between progress reports (default 1000)."),
        .init("pauseMs", .integer(minimum: 0, maximum: 10_000), summary: "Pause after each step, in ms (default 0)."),
    ])

    /// CPU work on a text held in the job: never worth retrying, bounded in
    /// time, and at most two at once per worker so other types keep flowing.
    public static let wordCountOptions = JobOptions(maxAttempts: 1, timeout: .seconds(600), maxConcurrent: 2)
}

/// Registers `count-page-view` and `word-count` into `registry`, after
/// bringing `database`'s schema up to date.
public func registerExampleJobs(into registry: inout JobRegistry, database: DatabaseQueue) throws {
    let pageViews = try PageViewStore(database: database)

    registry.register(
        ExampleJobTypes.countPageView, params: PageViewParams.self, schema: ExampleJobTypes.countPageViewSchema,
        summary: "Counts one view of a page in the worker's SQLite database.",
        options: ExampleJobTypes.countPageViewOptions
    ) { params, context in
        // The job id makes the write idempotent: a re-run of this job changes nothing.
        let outcome = try await pageViews.count(path: params.path, jobID: context.jobID)
        context.logger.debug("page view", metadata: [
            "path": "\(outcome.path)", "count": "\(outcome.count)", "counted": "\(outcome.counted)",
        ])
        return outcome
    }

    registry.register(
        ExampleJobTypes.wordCount, params: WordCountParams.self, schema: ExampleJobTypes.wordCountSchema,
        summary: "Counts the lines, words and characters of a text, and its most frequent words.",
        options: ExampleJobTypes.wordCountOptions
    ) { params, context in
        try await WordCount.run(params, context: context)
    }
}

public enum ExampleDatabase {
    /// Opens (creating it if needed) the SQLite file at `path`.
    ///
    /// A web application usually shares this file: while another connection
    /// holds the write lock, a job's write waits for it up to `busyTimeout`
    /// instead of failing at once; past that it fails and the job is retried.
    public static func open(path: String, busyTimeout: TimeInterval = 5) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        return try DatabaseQueue(path: path, configuration: configuration)
    }
}
