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

    /// The longest cursor taken, in code points, as JSON Schema's `maxLength` counts.
    public static let cursorMaxLength = 512

    public init?(cursor: String) {
        guard cursor.unicodeScalars.count <= Self.cursorMaxLength else { return nil }
        // By bytes, not characters: an id may begin with a mark that joins `_` in one character.
        let bytes = Array(cursor.utf8)
        guard let separator = bytes.firstIndex(of: UInt8(ascii: "_")),
              (1...15).contains(separator), separator < bytes.count - 1,
              let millis = Int64(decimalDigits: bytes[..<separator]) else { return nil }
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
/// back from the end (or from a cursor).
///
/// Live jobs mostly arrive in creation order, so an insert is nearly always an
/// append. A replay does not: a restarted gateway reads the status topic one
/// partition batch at a time, so creation times arrive interleaved, and a sorted
/// insert into a million positions moves megabytes each time. Out-of-order inserts
/// and removals therefore wait in small side sets and are merged in one pass when
/// those grow to half the index, or before a page is read: a constant
/// amortized cost per change instead of one proportional to the index.
public struct JobListIndex: Sendable {
    /// Ordered; may still hold positions that `removals` names.
    private var sorted: [JobListPosition] = []
    /// Inserted out of order and not merged yet; never in `sorted`.
    private var arrivals: Set<JobListPosition> = []
    /// Like `arrivals`, but from `insertAbsent`: known unique, so a plain array
    /// (no hashing) until something needs to look a position up.
    private var absentArrivals: [JobListPosition] = []
    /// Removed from `sorted` but not yet taken out of it.
    private var removals: Set<JobListPosition> = []

    public init() {}

    public var count: Int { sorted.count - removals.count + arrivals.count + absentArrivals.count }

    private var hasPending: Bool { !arrivals.isEmpty || !removals.isEmpty || !absentArrivals.isEmpty }

    public mutating func insert(_ position: JobListPosition) {
        absorbAbsentArrivals()
        if !hasPending, sorted.last.map({ $0 < position }) ?? true {
            sorted.append(position)
        } else if contains(sortedAt: position) {
            removals.remove(position)
        } else {
            arrivals.insert(position)
            mergeIfLarge()
        }
    }

    /// Inserts a position the index is known not to hold (that of a job new to
    /// the view), without searching for a copy: a replay inserts a million.
    public mutating func insertAbsent(_ position: JobListPosition) {
        if !hasPending, sorted.last.map({ $0 < position }) ?? true {
            sorted.append(position)
        } else if removals.isEmpty || removals.remove(position) == nil {
            absentArrivals.append(position)
            mergeIfLarge()
        }
    }

    public mutating func remove(_ position: JobListPosition) {
        absorbAbsentArrivals()
        if arrivals.remove(position) == nil, contains(sortedAt: position) {
            removals.insert(position)
            mergeIfLarge()
        }
    }

    /// Removes many positions (a retention sweep).
    public mutating func remove(_ removed: Set<JobListPosition>) {
        for position in removed { remove(position) }
    }

    /// Up to `limit` jobs matching `filter`, newest first, starting after `cursor`.
    ///
    /// At most `scanBudget` positions are looked at, so a filter that matches
    /// little answers promptly with a short page (and a cursor to go on) rather
    /// than walking a million jobs in one request.
    public mutating func page(_ filter: JobFilter, limit: Int, after cursor: JobListPosition?, scanBudget: Int = 100_000,
                              lookup: (JobID) -> JobSnapshot?) -> JobPage {
        merge()
        let positions = sorted
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

    private func contains(sortedAt position: JobListPosition) -> Bool {
        let index = lowerBound(position)
        return index < sorted.endIndex && sorted[index] == position
    }

    /// Merges once the side sets hold half as many positions as the index (at
    /// least 4,096): each merge is one pass, so a change costs a few moves on
    /// average, and a replay of a million jobs merges about a dozen times.
    private mutating func mergeIfLarge() {
        if arrivals.count + absentArrivals.count + removals.count > max(4096, sorted.count / 2) { merge() }
    }

    /// Moves `absentArrivals` into `arrivals`, where they can be looked up: a
    /// cost per position moved, not per position held.
    private mutating func absorbAbsentArrivals() {
        guard !absentArrivals.isEmpty else { return }
        arrivals.formUnion(absentArrivals)
        absentArrivals.removeAll()
    }

    /// Folds the side sets into `sorted` in one pass.
    private mutating func merge() {
        guard hasPending else { return }
        absentArrivals.append(contentsOf: arrivals)
        absentArrivals.sort()
        let incoming = absentArrivals
        var merged: [JobListPosition] = []
        merged.reserveCapacity(count)
        var next = incoming.startIndex
        let filtering = !removals.isEmpty
        for position in sorted where !filtering || !removals.contains(position) {
            while next < incoming.endIndex, incoming[next] < position {
                merged.append(incoming[next])
                next += 1
            }
            merged.append(position)
        }
        merged.append(contentsOf: incoming[next...])
        sorted = merged
        arrivals.removeAll()
        absentArrivals.removeAll()
        removals.removeAll()
    }

    private func lowerBound(_ position: JobListPosition) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < position { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
