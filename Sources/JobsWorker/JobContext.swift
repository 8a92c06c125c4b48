import Foundation
import JobsCore
import Logging

/// What a handler gets besides its params: identity, a logger that carries the
/// job's id, progress reporting, the attempt's deadline, and cancellation.
///
/// Cancellation is ordinary Swift task cancellation: `Task.sleep`, `Task.checkCancellation()`
/// and any cancellation-aware call end the handler when the job is cancelled, and
/// ``progress(current:total:message:)`` throws `CancellationError` too. Work the
/// handler moves off its task (a thread, a detached task) asks ``isCancelled``.
public struct JobContext: Sendable {
    public let jobID: JobID
    public let type: String
    /// 1 for the first run, higher when the job is retried or re-run after a worker was lost.
    public let attempt: Int
    /// Carries `job.id`, `job.type` and `job.attempt` on every line.
    public let logger: Logger
    /// When this attempt will be stopped as timed out, if the job has a time limit.
    public let deadline: ContinuousClock.Instant?
    let reporter: @Sendable (JobProgress) throws -> Void
    let stopped: @Sendable () -> Bool

    /// A worker makes one for every attempt. Make one yourself to call a handler
    /// in a unit test, with no worker and no Kafka: `progress` receives each
    /// report (throw `CancellationError` from it to act as a cancelled job's
    /// worker does); cancelling the calling task cancels the handler, and so
    /// does `cancelled` returning `true`, as for threads the handler starts.
    public init(
        jobID: JobID = .generate(),
        type: String,
        attempt: Int = 1,
        logger: Logger = Logger(label: "jobs.handler"),
        deadline: ContinuousClock.Instant? = nil,
        progress: @escaping @Sendable (JobProgress) throws -> Void = { _ in },
        cancelled: @escaping @Sendable () -> Bool = { false }
    ) {
        self.jobID = jobID
        self.type = type
        self.attempt = attempt
        self.logger = logger
        self.deadline = deadline
        self.stopped = cancelled
        self.reporter = progress
    }

    /// Reports progress. The job's snapshot takes it at once; it is published
    /// at most once per ``WorkerConfiguration/progressInterval`` (100 ms), the
    /// latest report winning, so reporting often costs nothing downstream.
    /// Throws `CancellationError` when the job has been cancelled.
    public func progress(current: Int, total: Int? = nil, message: String? = nil) async throws {
        try checkCancellation()
        try reporter(JobProgress(current: current, total: total, message: message))
    }

    /// For long CPU-bound loops that make no other cancellable call. Throws
    /// `CancellationError` once the attempt is to stop.
    public func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }

    /// Whether the attempt is to stop: cancelled, timed out, or handed back.
    /// Unlike `Task.isCancelled`, true also in an unstructured `Task`, a
    /// detached one or a thread that the handler started.
    public var isCancelled: Bool { Task.isCancelled || stopped() }
}
