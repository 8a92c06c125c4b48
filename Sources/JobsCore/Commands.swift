import Foundation

/// Published by the gateway on the commands topic (key: the job's ordering key
/// if it has one, else its id) for the worker group to run. It carries the job
/// as accepted, so a worker needs nothing else.
public struct StartJobCommand: Sendable, Hashable, Codable {
    public var schemaVersion: Int
    public var job: JobSnapshot

    public init(job: JobSnapshot) {
        self.schemaVersion = JobSnapshot.currentSchemaVersion
        self.job = job
    }
}

/// Published by the gateway on the control topic (key: job id), which every worker
/// reads, so the one running the job can stop it at once.
public struct ControlCommand: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable {
        case cancel
    }

    public var schemaVersion: Int
    public var kind: Kind
    public var jobID: JobID
    public var requestedAt: Date

    public init(kind: Kind, jobID: JobID, requestedAt: Date = Date()) {
        self.schemaVersion = JobSnapshot.currentSchemaVersion
        self.kind = kind
        self.jobID = jobID
        self.requestedAt = requestedAt
    }

    public static func cancel(_ id: JobID, at now: Date = Date()) -> ControlCommand {
        ControlCommand(kind: .cancel, jobID: id, requestedAt: now)
    }
}

/// The topics of one deployment; a prefix lets several share a cluster.
public struct TopicNames: Sendable, Hashable {
    public var commands: String
    public var control: String
    public var status: String
    /// Worker heartbeats, keyed by worker id.
    public var workers: String

    public init(prefix: String = "jobs") {
        let stem = prefix.isEmpty ? "" : prefix + "."
        commands = stem + "commands"
        control = stem + "control"
        status = stem + "status"
        workers = stem + "workers"
    }

    public var all: [String] { [commands, control, status, workers] }
}
