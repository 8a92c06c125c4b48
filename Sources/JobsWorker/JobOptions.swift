/// How one job type is run: attempts, backoff between them, a time limit, how
/// many may run at once, and whether a user may stop one midway.
/// A request may override `maxAttempts` and the timeout for its own job.
public struct JobOptions: Sendable, Hashable {
    /// Attempts before a failure is final; 1 means no retry.
    public var maxAttempts: Int
    /// Wait before the second attempt; each later wait doubles, up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration
    /// Longest one attempt may run. The handler's task is then cancelled, and
    /// the job ends `failed` with code `timeout`, not retried; a handler that
    /// ignores the cancellation and returns anyway ends as it returns.
    public var timeout: Duration?
    /// Most jobs of this type one worker runs at once (`nil`: only the worker's
    /// own concurrency limits them), for a type that strains a scarce resource.
    /// A job over the limit waits on the worker without taking a slot, so jobs of
    /// other types keep flowing past it; its offset stays uncommitted meanwhile.
    /// A job waiting between retries still counts.
    public var maxConcurrent: Int?
    /// Whether a cancel may stop a running job of this type. When `false`, the
    /// *worker* ignores a cancel that arrives while the handler runs, and the
    /// job ends however its handler ends (the cancel is still recorded as
    /// `cancelRequested`). The gateway doesn't know the flag and still answers
    /// `202`. A job not running yet (queued, or waiting between attempts) is
    /// cancelled as usual; a cancel ignored during an attempt stops the job
    /// before a retry. Stops that are not a user's cancel (timeout, hand-back on
    /// shutdown or rebalance) still apply.
    public var cancellable: Bool
    /// How long a stopped attempt (cancelled, timed out, handed back) may take
    /// to end. A worker that gives up a partition, on a rebalance or at
    /// shutdown, waits this long for the jobs it stopped there before the
    /// partition goes to another worker, so that the next owner does not start
    /// a job this one is still running. A handler that ignores cancellation for
    /// longer is logged, and its partition goes all the same.
    public var stopGracePeriod: Duration

    /// The stop grace period unless one is given: prompt for a Swift handler,
    /// whose `Task.sleep` and `progress` throw at once when it is cancelled.
    public static let defaultStopGracePeriod = Duration.seconds(5)

    public init(maxAttempts: Int = 1, initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(60),
                timeout: Duration? = nil, maxConcurrent: Int? = nil, cancellable: Bool = true,
                stopGracePeriod: Duration = JobOptions.defaultStopGracePeriod) {
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.timeout = timeout
        self.maxConcurrent = maxConcurrent.map { max(1, $0) }
        self.cancellable = cancellable
        self.stopGracePeriod = max(.zero, stopGracePeriod)
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
