import Foundation
import JobsCore
import Testing

@Suite("Job state transitions")
struct JobTransitionsTests {
    let queued = JobSnapshot.queued(id: JobID(rawValue: "job-1"), type: "sleep", params: ["steps": 2], at: at(0))

    @Test("a queued job is attempt 1, sequence 0, with its times set to the submit time")
    func queuedSnapshotDefaults() {
        #expect(queued.status == .queued)
        #expect(queued.attempt == 1)
        #expect(queued.sequence == 0)
        #expect(queued.createdAt == at(0) && queued.updatedAt == at(0))
        #expect(queued.workerID == nil && queued.startedAt == nil && queued.finishedAt == nil)
        #expect(!queued.cancelRequested)
        #expect(queued.schemaVersion == 1)
    }

    @Test("a progress message, error code or error message over its limit is cut at a character boundary and marked")
    func oversizeTextIsCut() throws {
        let running = try queued.started(attempt: 1, by: "worker-a", at: at(1))
        // 3-byte characters, so that no limit falls on a character boundary by chance.
        let huge = String(repeating: "€", count: 700_000)
        let progress = try running.reporting(JobProgress(current: 1, message: huge), at: at(2)).progress?.message ?? ""
        let failed = try running.failed(JobError(code: huge, message: huge), at: at(2)).error
        let requeued = try running.requeued(error: JobError(code: "boom", message: huge), at: at(2)).error
        for (text, limit) in [(progress, JobProgress.maxMessageBytes), (failed?.code ?? "", JobError.maxCodeBytes),
                              (failed?.message ?? "", JobError.maxMessageBytes), (requeued?.message ?? "", JobError.maxMessageBytes)] {
            #expect(text.utf8.count <= limit && text.utf8.count > limit - 6, "\(text.utf8.count) bytes for a limit of \(limit)")
            #expect(text.hasSuffix("…") && text.dropLast().allSatisfy { $0 == "€" })
        }
        // Within the limits nothing changes.
        let small = JobError(code: "boom", message: String(repeating: "x", count: JobError.maxMessageBytes))
        #expect(try running.failed(small, at: at(2)).error == small)
        #expect(try running.reporting(JobProgress(current: 1, message: "step 1"), at: at(2)).progress?.message == "step 1")
    }

    @Test("every transition keeps its time to the millisecond, so its snapshot reads back from the wire unchanged")
    func transitionsSurviveTheWire() throws {
        // A time between milliseconds, as `Date()` gives.
        let fine = Date(timeIntervalSince1970: 1_764_668_400.123_456_7)
        let running = try queued.started(attempt: 1, by: "worker-a", at: fine)
        let snapshots = [
            running,
            try running.reporting(JobProgress(current: 1, total: 2), at: fine),
            try running.markedStalled(at: fine),
            running.requestingCancel(at: fine),
            try running.requeued(at: fine),
            try running.succeeded(result: ["ok": true], at: fine),
            try running.failed(JobError(code: "boom", message: "no"), at: fine),
            try queued.cancelled(at: fine),
        ]
        for snapshot in snapshots {
            #expect(try WireFormat.decodeSnapshot(WireFormat.encodeSnapshot(snapshot)) == snapshot, "\(snapshot.status)")
        }
        #expect(running.requestingCancel(at: fine).cancelRequested)
    }

    @Test("starting sets the worker, the start time, the attempt and sequence 1")
    func startedSetsWorkerAndStartTime() throws {
        let running = try queued.started(attempt: 1, by: "worker-a", at: at(2))
        #expect(running.status == .running)
        #expect(running.workerID == "worker-a")
        #expect(running.startedAt == at(2))
        #expect(running.updatedAt == at(2))
        #expect(running.createdAt == at(0))
        #expect(running.attempt == 1)
        #expect(running.sequence == 1)
    }

    @Test("starting a later attempt clears the previous attempt's progress, error and finish time")
    func startedClearsPreviousAttempt() throws {
        let reported = try queued.started(attempt: 1, by: "worker-a", at: at(1))
            .reporting(JobProgress(current: 1, total: 2), at: at(2))
        let requeued = try reported.requeued(error: JobError(code: "worker_lost", message: "gone"), at: at(3))
        let restarted = try requeued.started(attempt: requeued.attempt, by: "worker-b", at: at(4))
        #expect(restarted.attempt == 2)
        #expect(restarted.workerID == "worker-b")
        #expect(restarted.progress == nil)
        #expect(restarted.error == nil)
        #expect(restarted.finishedAt == nil)
        #expect(restarted.startedAt == at(4))
    }

    @Test("progress reports advance the sequence and carry the progress")
    func reportingAdvancesSequence() throws {
        let running = try queued.started(attempt: 1, by: "w", at: at(1))
        let first = try running.reporting(JobProgress(current: 1, total: 2, message: "half"), at: at(2))
        let second = try first.reporting(JobProgress(current: 2, total: 2), at: at(3))
        #expect(first.sequence == 2 && second.sequence == 3)
        #expect(first.progress == JobProgress(current: 1, total: 2, message: "half"))
        #expect(second.progress?.current == 2)
        #expect(second.updatedAt == at(3))
        #expect(second.status == .running)
    }

    @Test("requeueing increments the attempt, resets the sequence, drops the attempt's progress and records why")
    func requeuedStartsNextAttempt() throws {
        let running = try queued.started(attempt: 1, by: "w", at: at(1))
            .reporting(JobProgress(current: 1), at: at(2))
        let reason = JobError(code: "worker_lost", message: "worker w stopped answering")
        let requeued = try running.requeued(error: reason, at: at(3))
        #expect(requeued.status == .queued)
        #expect(requeued.attempt == 2)
        #expect(requeued.sequence == 0)
        #expect(requeued.error == reason)
        #expect(requeued.updatedAt == at(3))
        #expect(requeued.progress == nil)
        #expect(requeued.workerID == "w" && requeued.startedAt == at(1))
        #expect(SnapshotOrder(requeued) > SnapshotOrder(running))
    }

    @Test("finishing sets the finish time and the verdict, one sequence step on")
    func finishingRecordsVerdict() throws {
        let running = try queued.started(attempt: 1, by: "w", at: at(1))
        let succeeded = try running.succeeded(result: ["sleptMs": 20], at: at(2))
        #expect(succeeded.status == .succeeded)
        #expect(succeeded.result == ["sleptMs": 20])
        #expect(succeeded.finishedAt == at(2) && succeeded.updatedAt == at(2))
        #expect(succeeded.sequence == running.sequence + 1)

        let failure = JobError(code: "handler_error", message: "disk full")
        let failed = try running.failed(failure, at: at(3))
        #expect(failed.status == .failed)
        #expect(failed.error == failure)
        #expect(failed.finishedAt == at(3))
    }

    @Test("cancelling, while queued or running, ends the job with the cancel flag set")
    func cancelledFromQueuedOrRunning() throws {
        let cancelledQueued = try queued.cancelled(at: at(1))
        #expect(cancelledQueued.status == .cancelled)
        #expect(cancelledQueued.cancelRequested)
        #expect(cancelledQueued.finishedAt == at(1))

        let cancelledRunning = try queued.started(attempt: 1, by: "w", at: at(1)).cancelled(at: at(2))
        #expect(cancelledRunning.status == .cancelled)
        #expect(cancelledRunning.cancelRequested)
    }

    @Test("an end replaced as a failure drops the result and keeps the rest; only an end can be replaced")
    func endReplacedAsFailure() throws {
        let running = try queued.started(attempt: 2, by: "worker-a", at: at(1))
        let succeeded = try running.requestingCancel(at: at(2)).succeeded(result: ["big": "x"], at: at(3))
        let error = JobError(code: "status_too_large", message: "too large")
        let failed = try succeeded.failedInstead(error)
        #expect(failed.status == .failed && failed.result == nil && failed.error == error)
        #expect(failed.sequence == succeeded.sequence && failed.finishedAt == at(3) && failed.updatedAt == at(3))
        #expect(failed.attempt == 2 && failed.workerID == "worker-a" && failed.cancelRequested)
        #expect(throws: JobSnapshot.TransitionError.self) { try running.failedInstead(error) }
    }

    @Test("starting a finished job is refused", arguments: [JobStatus.succeeded, .failed, .cancelled])
    func cannotStartFinishedJob(_ ending: JobStatus) throws {
        let finished = try finish(queued, as: ending)
        let error = #expect(throws: JobSnapshot.TransitionError.self) {
            try finished.started(attempt: 2, by: "w", at: at(5))
        }
        #expect(error?.from == ending)
        #expect(error?.description == "cannot start a job that is \(ending.rawValue)")
    }

    @Test("reporting progress of a queued or finished job is refused", arguments: [JobStatus.queued, .succeeded])
    func cannotReportProgressUnlessRunning(_ status: JobStatus) throws {
        let snapshot = status == .queued ? queued : try finish(queued, as: status)
        let error = #expect(throws: JobSnapshot.TransitionError.self) {
            try snapshot.reporting(JobProgress(current: 1), at: at(5))
        }
        #expect(error?.from == status)
        #expect(error?.description == "cannot report progress of a job that is \(status.rawValue)")
    }

    @Test("finishing a finished job is refused", arguments: [JobStatus.succeeded, .failed, .cancelled])
    func cannotFinishFinishedJob(_ ending: JobStatus) throws {
        let finished = try finish(queued, as: ending)
        for again in [JobStatus.succeeded, .failed, .cancelled] {
            let error = #expect(throws: JobSnapshot.TransitionError.self) {
                try finish(finished, as: again)
            }
            #expect(error?.from == ending)
            #expect(error?.action == "finish")
        }
    }

    @Test("requeueing a job that is not running is refused", arguments: [JobStatus.queued, .succeeded])
    func cannotRequeueUnlessRunning(_ status: JobStatus) throws {
        let snapshot = status == .queued ? queued : try finish(queued, as: status)
        let error = #expect(throws: JobSnapshot.TransitionError.self) {
            try snapshot.requeued(at: at(5))
        }
        #expect(error?.from == status)
        #expect(error?.action == "requeue")
    }

    @Test("only succeeded, failed and cancelled are terminal")
    func terminalStatuses() {
        #expect(JobStatus.allCases.filter(\.isTerminal) == [.succeeded, .failed, .cancelled])
    }

    private func finish(_ snapshot: JobSnapshot, as ending: JobStatus) throws -> JobSnapshot {
        switch ending {
        case .succeeded: try snapshot.succeeded(result: nil, at: at(4))
        case .failed: try snapshot.failed(JobError(code: "e", message: "m"), at: at(4))
        case .cancelled: try snapshot.cancelled(at: at(4))
        case .queued, .running: snapshot
        }
    }
}
