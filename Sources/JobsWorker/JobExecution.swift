import Foundation
import Dispatch
import JobsCore
import KafkaClient
import Synchronization

/// One run of one job on this worker: the snapshot it publishes, the handler's
/// task, and why it was asked to stop, if it was.
final class JobExecution: Sendable {
    /// Why a running job is being stopped. A user's cancel wins over anything
    /// else; otherwise the first reason stands.
    enum StopReason: Sendable {
        /// The user cancelled the job: it ends `cancelled`.
        case cancelRequested
        /// The worker is draining or lost the partition: the job goes back to
        /// `queued` as the next attempt, for another worker to run.
        case handBack
        /// The attempt ran past its time limit: the job ends `failed`, code `timeout`.
        case timeout
    }

    /// How a handler's run ended.
    enum Outcome: Sendable {
        case succeeded(JSONValue?)
        /// `retryable` is false for a ``NonRetryableError``.
        case failed(JobError, retryable: Bool)
        case cancelled
        case handedBack
        case timedOut(Duration)
    }

    private struct State {
        var snapshot: JobSnapshot
        var stopReason: StopReason?
        var task: Task<JSONValue?, any Error>?
        var sleeper: Task<Void, any Error>?
        /// The handler is running (not waiting between attempts).
        var handlerRunning = false
        /// Counts the handler's runs, so a time limit stops only the run it was set for.
        var runs = 0
        /// A user's cancel that arrived while a non-cancellable handler ran: it
        /// stops the job once the attempt is over, before any retry.
        var deferredCancel = false
    }

    let taken: TakenCommand
    var message: KafkaMessage { taken.message }
    /// The assignment of the message's partition it was taken under (see ``OffsetTracker``).
    var generation: UInt64 { taken.generation }
    let jobID: JobID
    /// `false` for a job type whose running handler a user's cancel must not interrupt.
    let cancellable: Bool
    /// How long the job may take to end once stopped (``JobOptions/stopGracePeriod``).
    let stopGracePeriod: Duration
    private let state: Mutex<State>
    /// Left once the job's final snapshot is published (or given up on); lets the
    /// consumer's thread wait, blocking, during a revoke.
    private let done = DispatchGroup()

    /// - Parameter options: its type's; the defaults for a type this worker doesn't know.
    init(taken: TakenCommand, snapshot: JobSnapshot, options: JobOptions = JobOptions()) {
        self.taken = taken
        self.jobID = snapshot.id
        self.cancellable = options.cancellable
        self.stopGracePeriod = options.stopGracePeriod
        self.state = Mutex(State(snapshot: snapshot))
        done.enter()
    }

    var snapshot: JobSnapshot { state.withLock { $0.snapshot } }

    /// Applies a transition to the current snapshot and returns the result.
    func advance(_ transition: (JobSnapshot) throws -> JobSnapshot) rethrows -> JobSnapshot {
        try state.withLock { state in
            state.snapshot = try transition(state.snapshot)
            return state.snapshot
        }
    }

    func stop(_ reason: StopReason) {
        stop(reason, ifRunning: nil)
    }

    /// The watchdog's stop: only while the handler's run `run` goes on. Woken
    /// late, after a run that failed at its time limit, it must not end the wait
    /// for the retry, or the retry itself.
    func timeOut(run: Int) {
        stop(.timeout, ifRunning: run)
    }

    private func stop(_ reason: StopReason, ifRunning run: Int?) {
        let (task, sleeper) = state.withLock { state -> (Task<JSONValue?, any Error>?, Task<Void, any Error>?) in
            if let run, !state.handlerRunning || state.runs != run { return (nil, nil) }
            if reason == .cancelRequested, !cancellable, state.handlerRunning {
                // Not this type's to interrupt: the attempt runs to its end. The
                // request shows in the job's next snapshots.
                state.deferredCancel = true
                state.snapshot.cancelRequested = true
                return (nil, nil)
            }
            if state.stopReason == nil || reason == .cancelRequested { state.stopReason = reason }
            // Never cleared: a handler that returns despite the cancel still
            // succeeds, and its snapshot says a cancel was asked for.
            if reason == .cancelRequested { state.snapshot.cancelRequested = true }
            return (state.task, state.sleeper)
        }
        task?.cancel()
        sleeper?.cancel()
    }

    var stopReason: StopReason? { state.withLock { $0.stopReason } }

    /// Runs the handler in a task of its own, so a cancel reaches it as Swift
    /// task cancellation wherever it is; a watchdog stops it at `timeout`.
    func run(_ job: RegisteredJob, context: JobContext, timeout: Duration?) async -> Outcome {
        let params = snapshot.params
        let (stoppedEarly, thisRun) = state.withLock { state -> (StopReason?, Int) in
            if state.stopReason == nil {
                state.handlerRunning = true
                state.runs += 1
            }
            return (state.stopReason, state.runs)
        }
        if let stoppedEarly {
            // Stopped in the instant after `running` was posted: the handler isn't called at all.
            return Self.outcome(of: .failure(CancellationError()), stopReason: stoppedEarly, timeout: timeout)
        }
        let task = Task { try await job.run(params, context) }
        let stopAtOnce = state.withLock { state in
            state.task = task
            return state.stopReason != nil
        }
        if stopAtOnce { task.cancel() }
        let watchdog = timeout.map { limit in
            Task {
                try await Task.sleep(for: limit)
                self.timeOut(run: thisRun)
            }
        }
        let result = await withTaskCancellationHandler {
            await task.result
        } onCancel: {
            self.stop(.handBack)
        }
        watchdog?.cancel()
        // The reason is read as the run is marked over, in one step: a watchdog
        // that wakes later finds its run over and stops nothing.
        let stopReason = state.withLock { state -> StopReason? in
            let reason = state.stopReason
            state.handlerRunning = false
            if state.deferredCancel, reason == nil { state.stopReason = .cancelRequested }
            return reason
        }
        return Self.outcome(of: result, stopReason: stopReason, timeout: timeout)
    }

    private static func outcome(of result: Result<JSONValue?, any Error>, stopReason: StopReason?, timeout: Duration?) -> Outcome {
        switch (result, stopReason) {
        case (.success(let value), _):
            // A handler that finished despite a cancel did finish: report the truth.
            return .succeeded(value)
        case (.failure, .cancelRequested?):
            return .cancelled
        case (.failure, .handBack?):
            return .handedBack
        case (.failure, .timeout?):
            return .timedOut(timeout ?? .zero)
        case (.failure(let error as JobError), nil):
            return .failed(error, retryable: true)
        case (.failure(let error as NonRetryableError), nil):
            return .failed(error.error, retryable: false)
        case (.failure(let error), nil):
            return .failed(JobError(code: "handler_error", message: message(of: error)), retryable: true)
        }
    }

    /// A `LocalizedError`'s description, as a person should read it; else what
    /// `String(describing:)` makes of the error.
    static func message(of error: any Error) -> String {
        if let description = (error as? any LocalizedError)?.errorDescription { return description }
        return String(describing: error)
    }

    /// Waits between attempts; a stop (cancel, hand-back) ends the wait early.
    /// Returns why it was stopped, or `nil` when the wait ran out.
    func pause(for delay: Duration) async -> StopReason? {
        let sleeper = Task { try await Task.sleep(for: delay) }
        let alreadyStopped = state.withLock { state in
            state.task = nil
            state.sleeper = sleeper
            return state.stopReason != nil
        }
        if alreadyStopped { sleeper.cancel() }
        _ = await withTaskCancellationHandler {
            await sleeper.result
        } onCancel: {
            self.stop(.handBack)
        }
        return state.withLock { state in
            state.sleeper = nil
            return state.stopReason
        }
    }

    func markDone() { done.leave() }

    /// Suspends until done.
    func ended() async {
        await withCheckedContinuation { continuation in
            done.notify(queue: .global()) { continuation.resume() }
        }
    }

    /// Blocks the calling thread (never a pool thread) until done; `false` on timeout.
    func waitDone(until deadline: DispatchTime) -> Bool {
        done.wait(timeout: deadline) == .success
    }
}

/// The jobs running on this worker, by id, and cancels that arrived before their job.
final class RunningJobs: Sendable {
    private struct State {
        var executions: [JobID: JobExecution] = [:]
        /// Cancels for jobs not (yet) running here; bounded, oldest forgotten first.
        var earlyCancels: Set<JobID> = []
        var earlyCancelOrder: [JobID] = []
        var emptyWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        /// Waits whose continuation is not registered yet (see `waitUntilEmpty`).
        var unregisteredWaiters: Set<UInt64> = []
        var nextWaiterID: UInt64 = 0
    }

    private let state = Mutex(State())
    private static let earlyCancelLimit = 100_000

    enum Insertion {
        /// Registered; `cancelledEarly` if a cancel for the job already arrived.
        case inserted(cancelledEarly: Bool)
        /// Not registered: another execution of the job runs here.
        case alreadyRunning(JobExecution)
    }

    /// Registers a job about to run, unless it runs here already.
    func insert(_ execution: JobExecution) -> Insertion {
        state.withLock { state in
            if let earlier = state.executions[execution.jobID] { return .alreadyRunning(earlier) }
            state.executions[execution.jobID] = execution
            return .inserted(cancelledEarly: state.earlyCancels.contains(execution.jobID))
        }
    }

    func remove(_ execution: JobExecution) {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            if state.executions[execution.jobID] === execution {
                state.executions.removeValue(forKey: execution.jobID)
            }
            guard state.executions.isEmpty else { return [] }
            defer { state.emptyWaiters.removeAll() }
            return Array(state.emptyWaiters.values)
        }
        waiters.forEach { $0.resume(returning: true) }
    }

    /// Stops the job if it runs here; otherwise remembers the cancel for when it arrives.
    func requestCancel(_ id: JobID) {
        let execution = state.withLock { state -> JobExecution? in
            if let execution = state.executions[id] { return execution }
            if state.earlyCancels.insert(id).inserted {
                state.earlyCancelOrder.append(id)
                if state.earlyCancelOrder.count > Self.earlyCancelLimit {
                    state.earlyCancels.remove(state.earlyCancelOrder.removeFirst())
                }
            }
            return nil
        }
        execution?.stop(.cancelRequested)
    }

    /// Whether a cancel arrived for the job while it wasn't running here.
    func cancelArrived(for id: JobID) -> Bool {
        state.withLock { $0.earlyCancels.contains(id) }
    }

    func executions(in partitions: Set<TopicPartition>) -> [JobExecution] {
        state.withLock { $0.executions.values.filter { partitions.contains($0.message.topicPartition) } }
    }

    var all: [JobExecution] { state.withLock { Array($0.executions.values) } }

    var count: Int { state.withLock { $0.executions.count } }

    /// Waits until no job runs here; `false` on timeout.
    func waitUntilEmpty(timeout: Duration) async -> Bool {
        let id: UInt64? = state.withLock { state in
            if state.executions.isEmpty { return nil }
            state.nextWaiterID += 1
            state.unregisteredWaiters.insert(state.nextWaiterID)
            return state.nextWaiterID
        }
        guard let id else { return true }
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let immediate = self.state.withLock { state -> Bool? in
                        // The timer ran first (a zero timeout, a cancelled caller): too late to wait.
                        guard state.unregisteredWaiters.remove(id) != nil else { return false }
                        if state.executions.isEmpty { return true }
                        state.emptyWaiters[id] = continuation
                        return nil
                    }
                    if let immediate { continuation.resume(returning: immediate) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Only the side that removes the waiter resumes it.
                let waiter = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
                    if state.unregisteredWaiters.remove(id) != nil { return nil }
                    return state.emptyWaiters.removeValue(forKey: id)
                }
                waiter?.resume(returning: false)
                return nil
            }
            var outcome = false
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                    break
                }
            }
            return outcome
        }
    }
}
