import Foundation

/// Published by every worker every few seconds on the workers topic (key: worker
/// id): who it is, what it can run, and what it runs now. A worker that falls
/// silent is presumed lost, and the jobs it held are shown as stalled.
public struct WorkerHeartbeat: Sendable, Hashable, Codable {
    public var schemaVersion: Int
    public var workerID: String
    public var jobTypes: [JobTypeInfo]
    /// Jobs it runs at once at most.
    public var concurrency: Int
    public var runningJobs: [JobID]
    public var startedAt: Date
    public var sentAt: Date
    /// Sent once when the worker stops on purpose: it is gone, not lost.
    public var stopped: Bool
    /// How often the worker sends heartbeats, so readers can tell silence from a slow beat.
    public var intervalMs: Int

    public init(workerID: String, jobTypes: [JobTypeInfo], concurrency: Int, runningJobs: [JobID],
                startedAt: Date, sentAt: Date = Date(), stopped: Bool = false, intervalMs: Int) {
        self.schemaVersion = JobSnapshot.currentSchemaVersion
        self.workerID = workerID
        self.jobTypes = jobTypes
        self.concurrency = concurrency
        self.runningJobs = runningJobs
        self.startedAt = startedAt
        self.sentAt = sentAt
        self.stopped = stopped
        self.intervalMs = intervalMs
    }
}

/// A job type as a worker announces it: its name and the JSON Schema of its params.
public struct JobTypeInfo: Sendable, Hashable, Codable {
    public var name: String
    public var summary: String
    public var paramsSchema: JSONValue

    public init(_ descriptor: JobTypeDescriptor) {
        name = descriptor.name
        summary = descriptor.summary
        paramsSchema = descriptor.params.jsonSchema
    }
}
