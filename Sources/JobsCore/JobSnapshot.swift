import Foundation

/// The complete state of one job at one moment.
///
/// Status events are full snapshots, not deltas: a consumer that joins late, or a
/// compacted status topic, needs nothing but the latest snapshot of each job.
/// The JSON form is documented in `schemas/job-snapshot.schema.json`.
public struct JobSnapshot: Sendable, Hashable, Codable {
    /// Version of this JSON shape; bumped only for changes old readers can't ignore.
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var id: JobID
    public var type: String
    public var params: JSONValue
    public var status: JobStatus
    /// 1 for the first run; +1 each time the job is retried or re-run after its worker was lost.
    public var attempt: Int
    /// Counts the snapshots published within one attempt, so later ones win the fold.
    public var sequence: Int
    public var progress: JobProgress?
    public var result: JSONValue?
    public var error: JobError?
    /// The worker that runs (or last ran) the job.
    public var workerID: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var updatedAt: Date
    /// Set once a cancel has been asked for; never cleared.
    public var cancelRequested: Bool
    /// Attempts the job may use before a failure is final (nil: the job type's default).
    public var maxAttempts: Int?
    /// Longest one attempt may run before it fails with code `timeout` (nil: the type's default).
    public var timeoutMs: Int?
    /// True while the job's worker has fallen silent (no heartbeat): the job is
    /// probably not running any more and will be run again as a new attempt.
    public var stalled: Bool?
    /// The client's `Idempotency-Key`, if it sent one.
    public var idempotencyKey: String?
    /// The name of the API key the job was submitted with (nil with
    /// authentication off). An idempotency key counts only for its submitter.
    public var submittedBy: String?
    /// Jobs with the same ordering key run one at a time, in the order they were
    /// submitted; jobs with different keys (or none) run in parallel. The gateway
    /// makes it the start command's Kafka key, so one partition holds a key's jobs
    /// in order, and a worker never runs two jobs of one key at once.
    public var orderingKey: String?

    public init(
        id: JobID, type: String, params: JSONValue, status: JobStatus = .queued,
        attempt: Int = 1, sequence: Int = 0, progress: JobProgress? = nil,
        result: JSONValue? = nil, error: JobError? = nil, workerID: String? = nil,
        createdAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil,
        updatedAt: Date? = nil, cancelRequested: Bool = false, maxAttempts: Int? = nil, timeoutMs: Int? = nil,
        stalled: Bool? = nil, idempotencyKey: String? = nil, submittedBy: String? = nil, orderingKey: String? = nil
    ) {
        self.schemaVersion = Self.currentSchemaVersion
        self.id = id
        self.type = type
        self.params = params
        self.status = status
        self.attempt = attempt
        self.sequence = sequence
        self.progress = progress
        self.result = result
        self.error = error
        self.workerID = workerID
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.updatedAt = updatedAt ?? createdAt
        self.cancelRequested = cancelRequested
        self.maxAttempts = maxAttempts
        self.timeoutMs = timeoutMs
        self.stalled = stalled
        self.idempotencyKey = idempotencyKey
        self.submittedBy = submittedBy
        self.orderingKey = orderingKey
    }

    /// Whether the job's worker is believed lost (see ``stalled``).
    public var isStalled: Bool { stalled == true }

    /// A freshly accepted job, as the gateway publishes it.
    public static func queued(id: JobID = .generate(), type: String, params: JSONValue, maxAttempts: Int? = nil,
                              timeoutMs: Int? = nil, idempotencyKey: String? = nil, submittedBy: String? = nil,
                              orderingKey: String? = nil, at now: Date = Date()) -> JobSnapshot {
        // In whole milliseconds, as the wire carries it: the submitting gateway's
        // own copy then lists and filters exactly as every other reader's does.
        JobSnapshot(id: id, type: type, params: params, createdAt: WireFormat.wholeMilliseconds(now), maxAttempts: maxAttempts, timeoutMs: timeoutMs,
                    idempotencyKey: idempotencyKey, submittedBy: submittedBy, orderingKey: orderingKey)
    }
}

/// How far a running job has come, as its handler last reported.
public struct JobProgress: Sendable, Hashable, Codable {
    public var current: Int
    public var total: Int?
    public var message: String?

    public init(current: Int, total: Int? = nil, message: String? = nil) {
        self.current = current
        self.total = total
        self.message = message
    }

    /// The most UTF-8 bytes of a message a snapshot carries; a longer one is cut
    /// (marked with "…"). Every progress report is a status event, and one over
    /// the broker's message size could never be published.
    public static let maxMessageBytes = 4096

    /// This progress as a snapshot carries it: the message within ``maxMessageBytes``.
    public var bounded: JobProgress {
        var bounded = self
        bounded.message = message?.truncatedUTF8(to: Self.maxMessageBytes)
        return bounded
    }
}

/// Why a job failed: a stable machine-readable code and a human message.
public struct JobError: Sendable, Hashable, Codable, Error {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// The most UTF-8 bytes of a code and of a message a snapshot carries; longer
    /// ones are cut (marked with "…"). An error's text comes from any handler, and
    /// a final snapshot over the broker's message size could never be published:
    /// its job would stay `running` for good.
    public static let maxCodeBytes = 128
    public static let maxMessageBytes = 16_384

    /// This error as a snapshot carries it: code and message within their limits.
    public var bounded: JobError {
        JobError(code: code.truncatedUTF8(to: Self.maxCodeBytes), message: message.truncatedUTF8(to: Self.maxMessageBytes))
    }
}

extension String {
    /// The longest start of this text, in whole characters, whose size (as
    /// `size` counts each character's bytes) stays within `limit`.
    public func prefix(fittingIn limit: Int, size: (Character) -> Int) -> Substring {
        var used = 0
        var end = startIndex
        for index in indices {
            used += size(self[index])
            guard used <= limit else { break }
            end = self.index(after: index)
        }
        return self[..<end]
    }

    /// At most `limit` bytes of UTF-8, cut at a character boundary and ending in
    /// "…" when cut.
    func truncatedUTF8(to limit: Int) -> String {
        guard utf8.count > limit else { return self }
        let marker = "…"
        return prefix(fittingIn: limit - marker.utf8.count) { $0.utf8.count } + marker
    }
}
