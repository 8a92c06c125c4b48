import Foundation

/// Which jobs a list or an event stream shows. Empty sets match everything.
public struct JobFilter: Sendable, Hashable {
    public var statuses: Set<JobStatus>
    public var types: Set<String>
    /// Created at or after this instant.
    public var createdSince: Date?
    /// Created before this instant (the range is half-open, so pages of
    /// consecutive ranges never share a job).
    public var createdUntil: Date?

    public init(statuses: Set<JobStatus> = [], types: Set<String> = [], createdSince: Date? = nil, createdUntil: Date? = nil) {
        self.statuses = statuses
        self.types = types
        self.createdSince = createdSince
        self.createdUntil = createdUntil
    }

    public func matches(_ snapshot: JobSnapshot) -> Bool {
        (statuses.isEmpty || statuses.contains(snapshot.status))
            && (types.isEmpty || types.contains(snapshot.type))
            && createdSince.map { snapshot.createdAt >= $0 } ?? true
            && createdUntil.map { snapshot.createdAt < $0 } ?? true
    }
}

/// A job's place in the newest-first listing: creation time in whole
/// milliseconds (as the wire carries it), then id to break ties.
public struct JobListPosition: Sendable, Hashable, Comparable {
    public let createdAtMillis: Int64
    public let id: JobID

    public init(_ snapshot: JobSnapshot) {
        self.init(createdAtMillis: Self.millis(snapshot.createdAt), id: snapshot.id)
    }

    public init(createdAtMillis: Int64, id: JobID) {
        self.createdAtMillis = createdAtMillis
        self.id = id
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.createdAtMillis, lhs.id.rawValue) < (rhs.createdAtMillis, rhs.id.rawValue)
    }

    /// Rounded as `WireFormat` rounds, so a decoded time and the one encoded agree.
    static func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    /// The cursor of the page that follows this position: `<creation ms>_<id>`.
    ///
    /// Any such text names a place in the order, whether or not a job is there
    /// now, so a cursor never goes stale: its page is simply what is older.
    public var cursor: String { "\(createdAtMillis)_\(id.rawValue)" }

    public init?(cursor: String) {
        // By bytes, not characters: an id may begin with a mark that joins `_` in one character.
        let bytes = Array(cursor.utf8)
        guard bytes.count <= 512, let separator = bytes.firstIndex(of: UInt8(ascii: "_")),
              (1...15).contains(separator), separator < bytes.count - 1,
              bytes[..<separator].allSatisfy({ (48...57).contains($0) }),
              let millis = Int64(String(decoding: bytes[..<separator], as: UTF8.self)) else { return nil }
        self.init(createdAtMillis: millis, id: JobID(rawValue: String(decoding: bytes[(separator + 1)...], as: UTF8.self)))
    }
}

/// One page of a listing.
public struct JobPage: Sendable {
    public var jobs: [JobSnapshot]
    /// Where the next page starts; nil on the last page.
    public var next: JobListPosition?
}

/// Every job's listing position, oldest first, so a newest-first page is a walk
/// back from the end (or from a cursor). Jobs mostly arrive in creation order,
/// so an insert is nearly always an append.
public struct JobListIndex: Sendable {
    private var positions: [JobListPosition] = []

    public init() {}

    public var count: Int { positions.count }

    public mutating func insert(_ position: JobListPosition) {
        if let last = positions.last, last < position {
            positions.append(position)
            return
        }
        let index = lowerBound(position)
        guard index == positions.endIndex || positions[index] != position else { return }
        positions.insert(position, at: index)
    }

    public mutating func remove(_ position: JobListPosition) {
        let index = lowerBound(position)
        if index < positions.endIndex, positions[index] == position { positions.remove(at: index) }
    }

    /// Removes many positions in one pass (a retention sweep).
    public mutating func remove(_ removed: Set<JobListPosition>) {
        guard !removed.isEmpty else { return }
        positions.removeAll { removed.contains($0) }
    }

    /// Up to `limit` jobs matching `filter`, newest first, starting after `cursor`.
    ///
    /// At most `scanBudget` positions are looked at, so a filter that matches
    /// little answers promptly with a short page (and a cursor to go on) rather
    /// than walking a million jobs in one request.
    public func page(_ filter: JobFilter, limit: Int, after cursor: JobListPosition?, scanBudget: Int = 100_000,
                     lookup: (JobID) -> JobSnapshot?) -> JobPage {
        var end = cursor.map(lowerBound) ?? positions.endIndex
        if let until = filter.createdUntil {
            end = min(end, lowerBound(JobListPosition(createdAtMillis: JobListPosition.millis(until), id: JobID(rawValue: ""))))
        }
        let sinceMillis = filter.createdSince.map(JobListPosition.millis)
        var jobs: [JobSnapshot] = []
        var index = end - 1
        var scanned = 0
        while index >= 0 {
            let position = positions[index]
            if let sinceMillis, position.createdAtMillis < sinceMillis { return JobPage(jobs: jobs, next: nil) }
            if scanned == scanBudget { return JobPage(jobs: jobs, next: positions[index + 1]) }
            scanned += 1
            if let job = lookup(position.id), filter.matches(job) {
                if jobs.count == limit { return JobPage(jobs: jobs, next: JobListPosition(jobs[jobs.count - 1])) }
                jobs.append(job)
            }
            index -= 1
        }
        return JobPage(jobs: jobs, next: nil)
    }

    private func lowerBound(_ position: JobListPosition) -> Int {
        var low = 0, high = positions.count
        while low < high {
            let middle = (low + high) / 2
            if positions[middle] < position { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
