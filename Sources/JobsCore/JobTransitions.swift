import Foundation

/// The job state machine: each transition returns the next snapshot, with the
/// sequence number advanced, or throws when the move is not allowed.
///
/// Workers build every snapshot they publish through these functions, so an
/// illegal move (running a finished job, finishing a queued one) is caught before
/// it reaches the status topic.
///
/// Times are kept to the millisecond, as the wire carries them: a snapshot read
/// back from the topic then equals the one its writer folded at once. (A gateway
/// that kept a finer time took its own cancel, read back, for a stale record and
/// published it again, without end.)
extension JobSnapshot {
    /// Why a transition was refused.
    public struct TransitionError: Error, Sendable, Hashable, CustomStringConvertible {
        public let from: JobStatus
        public let action: String
        public var description: String { "cannot \(action) a job that is \(from.rawValue)" }
    }

    /// A worker begins running attempt `attempt` of this job.
    public func started(attempt: Int, by workerID: String, at now: Date = Date()) throws -> JobSnapshot {
        let now = WireFormat.wholeMilliseconds(now)
        guard !status.isTerminal else { throw TransitionError(from: status, action: "start") }
        var next = self
        next.status = .running
        next.attempt = attempt
        next.sequence = 1
        next.workerID = workerID
        next.startedAt = now
        next.finishedAt = nil
        next.progress = nil
        next.error = nil
        next.updatedAt = now
        next.stalled = nil
        return next
    }

    /// The running job reported progress (its message cut to ``JobProgress/maxMessageBytes``).
    public func reporting(_ progress: JobProgress, at now: Date = Date()) throws -> JobSnapshot {
        let now = WireFormat.wholeMilliseconds(now)
        guard status == .running else { throw TransitionError(from: status, action: "report progress of") }
        var next = self
        next.progress = progress.bounded
        next.sequence += 1
        next.updatedAt = now
        next.stalled = nil
        return next
    }

    /// The job's handler returned a result.
    public func succeeded(result: JSONValue?, at now: Date = Date()) throws -> JobSnapshot {
        try finishing(.succeeded, at: now) { $0.result = result }
    }

    /// The job ended with an error and will not be retried (its text cut to ``JobError``'s limits).
    public func failed(_ error: JobError, at now: Date = Date()) throws -> JobSnapshot {
        try finishing(.failed, at: now) { $0.error = error.bounded }
    }

    /// The job was cancelled, while queued or while running.
    public func cancelled(at now: Date = Date()) throws -> JobSnapshot {
        try finishing(.cancelled, at: now) { $0.cancelRequested = true }
    }

    /// An end that can't be published as it is (its result is more than the
    /// producer may send) becomes a failure without the result. It replaces
    /// that end, which no reader has seen, so it keeps its sequence and times.
    public func failedInstead(_ error: JobError) throws -> JobSnapshot {
        guard status.isTerminal else { throw TransitionError(from: status, action: "replace the end of") }
        var next = self
        next.status = .failed
        next.result = nil
        next.error = error.bounded
        return next
    }

    /// The running attempt ended without a verdict (a retry, or the worker handed the
    /// job back while shutting down): the job waits again as the next attempt.
    /// The worker and start time stay, saying where the last attempt ran; its
    /// progress goes, as the next attempt has made none.
    public func requeued(error: JobError? = nil, at now: Date = Date()) throws -> JobSnapshot {
        let now = WireFormat.wholeMilliseconds(now)
        guard status == .running else { throw TransitionError(from: status, action: "requeue") }
        var next = self
        next.status = .queued
        next.attempt += 1
        next.sequence = 0
        next.progress = nil
        next.error = error?.bounded
        next.updatedAt = now
        next.stalled = nil
        return next
    }

    /// A user asked to cancel the job while it runs (or may be starting): the
    /// intent, which the worker running it acts on.
    public func requestingCancel(at now: Date = Date()) -> JobSnapshot {
        var next = self
        next.cancelRequested = true
        next.updatedAt = WireFormat.wholeMilliseconds(now)
        return next
    }

    /// The job's worker fell silent: the same state, marked stalled, so readers
    /// know it is probably not running any more.
    public func markedStalled(at now: Date = Date()) throws -> JobSnapshot {
        let now = WireFormat.wholeMilliseconds(now)
        guard status == .running else { throw TransitionError(from: status, action: "mark stalled") }
        var next = self
        next.stalled = true
        next.updatedAt = now
        return next
    }

    private func finishing(_ terminal: JobStatus, at now: Date, _ change: (inout JobSnapshot) -> Void) throws -> JobSnapshot {
        let now = WireFormat.wholeMilliseconds(now)
        guard !status.isTerminal else { throw TransitionError(from: status, action: "finish") }
        var next = self
        next.status = terminal
        next.sequence += 1
        next.finishedAt = now
        next.updatedAt = now
        next.stalled = nil
        change(&next)
        return next
    }
}
