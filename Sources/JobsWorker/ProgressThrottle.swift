import Synchronization

/// Publishes a running job's progress at most once per interval, always the
/// latest: a handler may report thousands of times a second (a loop over
/// rows, a 10 ms sleep), and every report would otherwise be a status event
/// that every gateway and worker folds. The job's snapshot still advances on
/// every report, so its final snapshot carries the last progress.
final class ProgressThrottle: Sendable {
    private struct State {
        var lastPosted: ContinuousClock.Instant?
        var flushScheduled = false
        /// A report arrived since the last post.
        var pending = false
        var closed = false
    }

    private let state = Mutex(State())
    private let interval: Duration
    /// Posts the job's current snapshot. Called under the lock, so that once
    /// ``close()`` returns no progress can be queued behind what follows.
    private let postCurrent: @Sendable () -> Void

    init(interval: Duration, postCurrent: @escaping @Sendable () -> Void) {
        self.interval = interval
        self.postCurrent = postCurrent
    }

    /// The handler reported progress (already applied to the job's snapshot).
    func reported() {
        let wait: Duration? = state.withLock { state in
            guard !state.closed else { return nil }
            let now = ContinuousClock.now
            if let last = state.lastPosted, now - last < interval {
                state.pending = true
                guard !state.flushScheduled else { return nil }
                state.flushScheduled = true
                return interval - (now - last)
            }
            state.lastPosted = now
            state.pending = false
            postCurrent()
            return nil
        }
        guard let wait else { return }
        Task {
            try? await Task.sleep(for: wait)
            self.flush()
        }
    }

    private func flush() {
        state.withLock { state in
            state.flushScheduled = false
            guard !state.closed, state.pending else { return }
            state.lastPosted = .now
            state.pending = false
            postCurrent()
        }
    }

    /// The attempt's handler has returned: nothing more is posted, so the
    /// snapshot that concludes the attempt is the job's last event.
    func close() {
        state.withLock { $0.closed = true }
    }
}
