import JobsCore

/// Which job each of the view's latest changes was to, by change position.
///
/// A stream resumed with `Last-Event-ID` needs the jobs changed since its
/// position. Without this, finding them meant a scan of every job in the view
/// under its lock, about 13 ms with a million jobs, on every reconnect. Here a
/// recent position costs one step per change missed; an older one than the log
/// holds falls back to the scan.
struct RecentChanges {
    /// Slot `sequence % capacity` holds the job changed at `sequence`.
    private var jobs: [JobID?]
    /// The latest position recorded.
    private(set) var latest: UInt64 = 0

    init(capacity: Int) {
        precondition(capacity > 0, "the log of recent changes needs room for one")
        jobs = Array(repeating: nil, count: capacity)
    }

    /// Records the view's next change, at `latest + 1`.
    mutating func record(_ id: JobID) {
        latest += 1
        jobs[slot(latest)] = id
    }

    /// The jobs changed after `position`, with their positions, oldest first; nil
    /// when the log no longer reaches back that far. A job changed twice is in
    /// it twice: the caller keeps the change that is the job's latest.
    func changes(after position: UInt64) -> LazyMapSequence<Range<UInt64>, (position: UInt64, job: JobID)>? {
        guard position <= latest, latest - position <= UInt64(jobs.count) else { return nil }
        return (position + 1 ..< latest + 1).lazy.map { (position: $0, job: jobs[slot($0)]!) }
    }

    private func slot(_ position: UInt64) -> Int { Int(position % UInt64(jobs.count)) }
}
