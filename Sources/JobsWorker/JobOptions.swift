/// How one job type is run: attempts, backoff between them, and a time limit.
/// A request may override `maxAttempts` and the timeout for its own job.
public struct JobOptions: Sendable, Hashable {
    /// Attempts before a failure is final; 1 means no retry.
    public var maxAttempts: Int
    /// Wait before the second attempt; each later wait doubles, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Longest one attempt may run; it then ends `failed` with code `timeout`.
    public var timeout: Duration?

    public init(maxAttempts: Int = 1, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(60),
                timeout: Duration? = nil) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.timeout = timeout
    }

    /// The wait after failed attempt number `attempt` (1-based): exponential, capped.
    public func backoff(afterAttempt attempt: Int) -> Duration {
        var delay = initialBackoff
        for _ in 1..<max(1, attempt) where delay < maxBackoff {
            delay *= 2
        }
        return min(delay, maxBackoff)
    }
}
