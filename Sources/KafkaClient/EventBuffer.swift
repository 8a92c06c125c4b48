import Synchronization

/// The hand-off between a consumer's thread (one producer) and the task iterating
/// its events (one consumer). Its depth drives pause/resume of the partitions, so
/// it stays bounded although the thread never stops polling.
final class EventBuffer: Sendable {
    private struct State {
        var items: [ConsumerEvent] = []
        var head = 0
        var waiter: CheckedContinuation<ConsumerEvent?, Never>?
        var cancelledBeforeWaiting = false
        var finished = false

        var count: Int { items.count - head }

        mutating func popFirst() -> ConsumerEvent? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            compact()
            return item
        }

        mutating func popFirst(_ maxCount: Int) -> [ConsumerEvent] {
            let end = min(items.count, head + maxCount)
            guard head < end else { return [] }
            let taken = Array(items[head..<end])
            head = end
            compact()
            return taken
        }

        private mutating func compact() {
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024, head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
    }

    private let state = Mutex(State())
    /// Called (outside the lock) after a `next()` that leaves at most `lowWater` events.
    private let onDrained: @Sendable () -> Void
    let lowWater: Int

    init(lowWater: Int, onDrained: @escaping @Sendable () -> Void) {
        self.lowWater = lowWater
        self.onDrained = onDrained
    }

    var count: Int { state.withLock { $0.count } }

    func push(_ event: ConsumerEvent) {
        let waiter = state.withLock { state -> CheckedContinuation<ConsumerEvent?, Never>? in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(event)
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// Drops buffered messages of partitions this consumer no longer owns.
    func removeMessages(of partitions: Set<TopicPartition>) {
        state.withLock { state in
            let kept = state.items[state.head...].filter { event in
                if case .message(let message) = event { return !partitions.contains(message.topicPartition) }
                return true
            }
            state.items = Array(kept)
            state.head = 0
        }
    }

    /// Ends the sequence: pending and later `next()` calls return `nil`.
    func finish() {
        let waiter = state.withLock { state in
            state.finished = true
            state.items = []
            state.head = 0
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// The next event, or `nil` once finished or when the calling task is cancelled.
    func next() async -> ConsumerEvent? {
        if Task.isCancelled { return nil }
        if let waiting = state.withLock({ state in
            state.cancelledBeforeWaiting = false
            return state.popFirst()
        }) {
            drained()
            return waiting
        }
        return await waitForOne()
    }

    /// Every waiting event up to `maxCount` (at least one, waiting for it if none
    /// is), or `nil` once finished or when the calling task is cancelled. Taking
    /// what is there without suspending is what lets a replay keep pace: a task
    /// that suspends per message spends its time being rescheduled, not working.
    func nextBatch(maxCount: Int) async -> [ConsumerEvent]? {
        precondition(maxCount > 0)
        if Task.isCancelled { return nil }
        let waiting = state.withLock { state in
            state.cancelledBeforeWaiting = false
            return state.popFirst(maxCount)
        }
        if !waiting.isEmpty {
            drained()
            return waiting
        }
        return await waitForOne().map { [$0] }
    }

    private func drained() {
        if count <= lowWater { onDrained() }
    }

    /// Suspends until an event arrives, the buffer finishes, or the task is cancelled.
    private func waitForOne() async -> ConsumerEvent? {
        if Task.isCancelled { return nil }
        let event: ConsumerEvent? = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready: ConsumerEvent?? = state.withLock { state in
                    if let item = state.popFirst() { return .some(item) }
                    if state.finished || state.cancelledBeforeWaiting { return .some(nil) }
                    state.waiter = continuation
                    return .none
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                guard let waiter = state.waiter else {
                    state.cancelledBeforeWaiting = true
                    return nil as CheckedContinuation<ConsumerEvent?, Never>?
                }
                state.waiter = nil
                return waiter
            }
            waiter?.resume(returning: nil)
        }
        if event != nil { drained() }
        return event
    }
}
