import JobsCore
import KafkaClient
import Synchronization

/// A command taken from the commands topic: the message, its decoded form
/// (`nil` if it doesn't decode), and the generation of its partition's
/// assignment it was taken under (see ``OffsetTracker``).
struct TakenCommand: Sendable {
    let message: KafkaMessage
    let generation: UInt64
    /// `var` only so that ``Admission/withdraw(_:)`` can mark its job's cancel.
    var command: StartJobCommand?

    var orderingKey: String? { command?.job.orderingKey }
    var type: String? { command?.job.type }

    /// Unique among the commands in flight on a worker.
    struct ID: Hashable, Sendable {
        let partition: TopicPartition
        let offset: Int64
        let generation: UInt64
    }

    var id: ID { ID(partition: message.topicPartition, offset: message.offset, generation: generation) }
}

/// Decides when a command taken from Kafka may start on this worker: a job slot
/// is free, no job of its ordering key is in progress here, and its type is
/// under its `maxConcurrent`.
///
/// A slot (and a place under the type's limit) stands for a running handler: it
/// is given back as soon as the handler is over, while the job's final snapshot
/// still waits for the broker's acknowledgement, a wait that uses nothing a slot
/// limits. The key stays busy until the command is done.
///
/// A command that can't start yet *waits* here, holding no slot, while commands
/// behind it that can start do: a key or a type that is busy never holds up the
/// others. Commands of one key start in the order they were taken, which for one
/// partition is offset order; a waiting command also holds back every later
/// command of its key, whatever it waits for. A job's key stays busy from its
/// start until its command is done, retries and the waits between them included.
///
/// Waiting commands stay in flight in the ``OffsetTracker``, so no offset past
/// them is committed. They have not started, so they can simply be dropped when
/// their partition is revoked, or when the worker stops: the next owner gets
/// them again, in offset order.
///
/// A waiting command whose job is cancelled need not wait at all: it is
/// *withdrawn* (``withdraw(_:)``) and ends `cancelled` without running, so it
/// takes no slot, no place under its type's limit and not its key, and the
/// commands of its key behind it keep their order.
///
/// Intake is bounded: the run loop takes the next message only while a slot is
/// free and fewer than `maxWaiting` commands wait. A worker whose slots are all
/// taken therefore stops reading, and its consumer pauses the partitions; a
/// worker whose free slots all face busy keys or types reads ahead, up to
/// `maxWaiting` commands, to find work for them. Nothing here can deadlock: a waiting command
/// holds nothing a running job needs, and every running job ends.
final class Admission: Sendable {
    private struct State {
        var running = 0
        var runningByType: [String: Int] = [:]
        /// Keys with a job started and not yet done; at most one job per key.
        var busyKeys: Set<String> = []
        /// In the order taken.
        var waiting: [TakenCommand] = []
        var closed = false
        /// The run loop, when it waits for room to take the next command.
        var intake: CheckedContinuation<Bool, Never>?
        var intakeCancelled = false
        /// Started commands whose slot was given back before they were done.
        var slotsReleased: Set<TakenCommand.ID> = []
        /// Withdrawn commands not done yet: they hold nothing to give back.
        var withdrawn: Set<TakenCommand.ID> = []
    }

    private let state = Mutex(State())
    let concurrency: Int
    let maxWaiting: Int
    private let typeLimits: [String: Int]

    init(concurrency: Int, maxWaiting: Int, typeLimits: [String: Int]) {
        self.concurrency = max(1, concurrency)
        self.maxWaiting = max(1, maxWaiting)
        self.typeLimits = typeLimits
    }

    /// Takes a command in; returns the commands to start now (it, or none).
    func enqueue(_ taken: TakenCommand) -> [TakenCommand] {
        state.withLock { state in
            guard !state.closed else { return [] }
            state.waiting.append(taken)
            return admit(&state)
        }
    }

    /// A started command's handler is over: its slot and its place under its
    /// type's limit go to the next command, while its key stays busy until it is
    /// ``finished(_:)``. Returns the waiting commands that may start now.
    func releaseSlot(of taken: TakenCommand) -> [TakenCommand] {
        let (ready, intake) = state.withLock { state -> ([TakenCommand], CheckedContinuation<Bool, Never>?) in
            guard !state.withdrawn.contains(taken.id), state.slotsReleased.insert(taken.id).inserted else { return ([], nil) }
            Self.freeSlot(of: taken, in: &state, typeLimits: typeLimits)
            return (admit(&state), takeIntakeIfRoom(&state))
        }
        intake?.resume(returning: true)
        return ready
    }

    /// Whether a started command still holds its slot: its handler runs, or
    /// waits to run again.
    func holdsSlot(_ taken: TakenCommand) -> Bool {
        state.withLock { !$0.slotsReleased.contains(taken.id) && !$0.withdrawn.contains(taken.id) }
    }

    /// Takes a cancelled job's waiting commands out of the waiting list, marked
    /// `cancelRequested`, to be ended without running: nothing they wait for
    /// matters any more. Returns them, and the waiting commands that may start now
    /// (one of them may have held back its key). Nothing if the job's command
    /// isn't waiting here: it has started (its execution sees the cancel) or
    /// hasn't been taken yet.
    func withdraw(_ jobID: JobID) -> (withdrawn: [TakenCommand], ready: [TakenCommand]) {
        let (withdrawn, ready, intake) = state.withLock { state -> ([TakenCommand], [TakenCommand], CheckedContinuation<Bool, Never>?) in
            var withdrawn: [TakenCommand] = []
            state.waiting.removeAll { taken in
                guard taken.command?.job.id == jobID else { return false }
                var cancelled = taken
                cancelled.command?.job.cancelRequested = true
                withdrawn.append(cancelled)
                return true
            }
            guard !withdrawn.isEmpty else { return ([], [], nil) }
            state.withdrawn.formUnion(withdrawn.map(\.id))
            return (withdrawn, admit(&state), takeIntakeIfRoom(&state))
        }
        intake?.resume(returning: true)
        return (withdrawn, ready)
    }

    /// A started command is done (its job ended, was handed back or given up);
    /// frees its key, and its slot unless ``releaseSlot(of:)`` did. Returns the
    /// waiting commands that may start now.
    func finished(_ taken: TakenCommand) -> [TakenCommand] {
        let (ready, intake) = state.withLock { state -> ([TakenCommand], CheckedContinuation<Bool, Never>?) in
            if state.withdrawn.remove(taken.id) != nil {
                // It held nothing; ending it frees nothing.
                return ([], nil)
            }
            if state.slotsReleased.remove(taken.id) == nil {
                Self.freeSlot(of: taken, in: &state, typeLimits: typeLimits)
            }
            if let key = taken.orderingKey { state.busyKeys.remove(key) }
            let ready = admit(&state)
            return (ready, takeIntakeIfRoom(&state))
        }
        intake?.resume(returning: true)
        return ready
    }

    private static func freeSlot(of taken: TakenCommand, in state: inout State, typeLimits: [String: Int]) {
        state.running -= 1
        if let type = taken.type, typeLimits[type] != nil {
            state.runningByType[type, default: 1] -= 1
        }
    }

    /// The waiting commands that may start now. Needed only after ``drop(in:)``,
    /// which frees no slot but may unblock a key shared across partitions.
    func admitWaiting() -> [TakenCommand] {
        state.withLock { admit(&$0) }
    }

    /// Forgets the waiting commands of partitions being revoked: they never
    /// started, and their offsets were never stored, so the next owner of the
    /// partition receives them again in order. Called on the consumer's thread.
    func drop(in partitions: Set<TopicPartition>) {
        let intake = state.withLock { state in
            state.waiting.removeAll { partitions.contains($0.message.topicPartition) }
            return takeIntakeIfRoom(&state)
        }
        intake?.resume(returning: true)
    }

    /// The worker stops: nothing waiting will start here any more (another worker
    /// will run it), and nothing new is taken in.
    func close() {
        let intake = state.withLock { state in
            state.closed = true
            state.waiting.removeAll()
            defer { state.intake = nil }
            return state.intake
        }
        intake?.resume(returning: false)
    }

    /// Suspends the run loop until it may take another command: a slot is free
    /// and the waiting list has room. `false` once closed or if the calling task
    /// is cancelled.
    func waitForRoom() async -> Bool {
        if Task.isCancelled { return false }
        state.withLock { $0.intakeCancelled = false }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let answer: Bool? = state.withLock { state in
                    if state.closed || state.intakeCancelled { return false }
                    if hasRoom(state) { return true }
                    state.intake = continuation
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            let intake = state.withLock { state in
                state.intakeCancelled = true
                defer { state.intake = nil }
                return state.intake
            }
            intake?.resume(returning: false)
        }
    }

    /// Whether the run loop is suspended in ``waitForRoom()``: for tests.
    var intakeWaits: Bool { state.withLock { $0.intake != nil } }

    private func hasRoom(_ state: State) -> Bool {
        state.running < concurrency && state.waiting.count < maxWaiting
    }

    private func takeIntakeIfRoom(_ state: inout State) -> CheckedContinuation<Bool, Never>? {
        guard state.intake != nil, hasRoom(state) else { return nil }
        defer { state.intake = nil }
        return state.intake
    }

    /// Starts, in order, every waiting command that may start. A key is held
    /// back from the first waiting command of it that can't start, so no later
    /// command of that key overtakes it.
    private func admit(_ state: inout State) -> [TakenCommand] {
        guard !state.closed else {
            state.waiting.removeAll()
            return []
        }
        var started: [TakenCommand] = []
        var heldBack: Set<String> = []
        var stillWaiting: [TakenCommand] = []
        for (index, taken) in state.waiting.enumerated() {
            guard state.running < concurrency else {
                stillWaiting += state.waiting[index...]
                break
            }
            let keyFree = taken.orderingKey.map { !state.busyKeys.contains($0) && !heldBack.contains($0) } ?? true
            let typeFree = taken.type.flatMap { type in
                typeLimits[type].map { limit in state.runningByType[type, default: 0] < limit }
            } ?? true
            guard keyFree, typeFree else {
                stillWaiting.append(taken)
                if let key = taken.orderingKey { heldBack.insert(key) }
                continue
            }
            state.running += 1
            if let type = taken.type, typeLimits[type] != nil { state.runningByType[type, default: 0] += 1 }
            if let key = taken.orderingKey { state.busyKeys.insert(key) }
            started.append(taken)
        }
        state.waiting = stillWaiting
        return started
    }
}
