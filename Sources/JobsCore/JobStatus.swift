/// Where a job is in its life: `queued → running → succeeded | failed | cancelled`,
/// and `running → queued` when it is retried or its worker is lost.
public enum JobStatus: String, Sendable, Codable, CaseIterable {
    case queued
    case running
    case succeeded
    case failed
    case cancelled

    /// Terminal states are final: nothing ever moves a job out of one.
    public var isTerminal: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .failed, .cancelled: true
        }
    }

    /// Position within one attempt; part of the fold's order key.
    var rank: Int {
        switch self {
        case .queued: 0
        case .running: 1
        case .succeeded: 2
        case .failed: 3
        case .cancelled: 4
        }
    }
}
