import Synchronization

/// How far an application has *handled* a topic (not merely fetched it), and
/// waiters for "caught up to these end offsets" — the basis of `/ready`, of
/// read-your-writes across gateways, and of a worker catching up before it acts.
public final class ConsumedOffsets: Sendable {
    private struct Waiter {
        let target: [Int32: Int64]
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var next: [Int32: Int64] = [:]
        var waiters: [UInt64: Waiter] = [:]
        /// Waits whose continuation is not registered yet. Whichever of the
        /// registration and the timer comes second sees its id gone.
        var unregistered: Set<UInt64> = []
        var nextWaiterID: UInt64 = 0

        func reached(_ target: [Int32: Int64]) -> Bool {
            target.allSatisfy { partition, end in end <= 0 || (next[partition] ?? 0) >= end }
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// Records that `message` and everything before it on its partition is handled.
    public func advance(past message: KafkaMessage) {
        advance(past: CollectionOfOne(message))
    }

    /// Records that every message of `messages`, and everything before each on its
    /// partition, is handled: one step for a batch.
    public func advance(past messages: some Sequence<KafkaMessage>) {
        let ready = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            for message in messages {
                state.next[message.partition] = max(state.next[message.partition] ?? 0, message.offset + 1)
            }
            guard !state.waiters.isEmpty else { return [] }
            let done = state.waiters.filter { state.reached($0.value.target) }
            for id in done.keys { state.waiters.removeValue(forKey: id) }
            return done.values.map(\.continuation)
        }
        ready.forEach { $0.resume(returning: true) }
    }

    /// The next offset to handle, per partition.
    public var positions: [Int32: Int64] { state.withLock { $0.next } }

    /// Whether every partition has been handled up to `ends`.
    public func hasReached(_ ends: [Int32: Int64]) -> Bool { state.withLock { $0.reached(ends) } }

    /// Waits until every partition is handled up to `ends`; `false` on timeout.
    public func wait(until ends: [Int32: Int64], timeout: Duration) async -> Bool {
        let id: UInt64? = state.withLock { state in
            if state.reached(ends) { return nil }
            state.nextWaiterID += 1
            state.unregistered.insert(state.nextWaiterID)
            return state.nextWaiterID
        }
        guard let id else { return true }
        return await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let immediate = self.state.withLock { state -> Bool? in
                        // The timer ran first (a zero timeout, a cancelled caller): too late to wait.
                        guard state.unregistered.remove(id) != nil else { return false }
                        if state.reached(ends) { return true }
                        state.waiters[id] = Waiter(target: ends, continuation: continuation)
                        return nil
                    }
                    if let immediate { continuation.resume(returning: immediate) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Only the side that removes the waiter resumes it.
                let waiter = self.state.withLock { state -> Waiter? in
                    if state.unregistered.remove(id) != nil { return nil }
                    return state.waiters.removeValue(forKey: id)
                }
                waiter?.continuation.resume(returning: false)
                return nil
            }
            var reached = false
            for await outcome in group {
                if let outcome {
                    reached = outcome
                    group.cancelAll()
                    break
                }
            }
            return reached
        }
    }
}
