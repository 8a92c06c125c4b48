/// The order in which snapshots of one job supersede each other.
///
/// Snapshots of a job come from several producers (the gateway, then one or more
/// workers) and a consumer may see them reordered, duplicated or replayed. Ordering
/// them by this key and keeping the greatest makes the fold order-independent:
/// terminal states first (a terminal snapshot is never replaced by a live one),
/// then attempt, then the state's rank within the attempt, then the per-attempt
/// sequence number.
public struct SnapshotOrder: Comparable, Hashable, Sendable {
    public let terminal: Bool
    public let attempt: Int
    public let rank: Int
    public let sequence: Int

    public init(_ snapshot: JobSnapshot) {
        terminal = snapshot.status.isTerminal
        attempt = snapshot.attempt
        rank = snapshot.status.rank
        sequence = snapshot.sequence
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.tuple < rhs.tuple
    }

    /// Between two terminal snapshots of one attempt, the one that got further
    /// (higher sequence) wins. Only the worker holding an attempt writes its
    /// verdict, so that takes records written before gateways stopped writing
    /// `cancelled` for jobs they saw queued: a worker's real outcome beats such a
    /// cancel. Rank then only breaks ties.
    private var tuple: (Int, Int, Int, Int) {
        terminal ? (1, attempt, sequence, rank) : (0, attempt, rank, sequence)
    }
}

/// The fold of status events into the current state of each job. Pure functions.
public enum JobFold {
    /// What `current` becomes when `incoming` is seen, or `nil` when nothing changes.
    ///
    /// The greater snapshot by ``SnapshotOrder`` wins. `stalled` joins a snapshot
    /// with the same order key. `cancelRequested` is an
    /// intent that only ever turns on, so it is merged from both sides (unless the
    /// job already ended), and a live job's `updatedAt` is then the latest of the
    /// winner's and every cancel request's, whatever order they arrive in. A
    /// terminal snapshot, once held, is only ever replaced by a greater terminal
    /// one, which a correct system never produces.
    public static func merge(_ current: JobSnapshot?, _ incoming: JobSnapshot) -> JobSnapshot? {
        guard let current else { return incoming }
        let currentOrder = SnapshotOrder(current)
        let incomingOrder = SnapshotOrder(incoming)
        if incomingOrder > currentOrder {
            guard current.cancelRequested, !incoming.status.isTerminal else {
                return incoming
            }
            var merged = incoming
            merged.cancelRequested = true
            merged.updatedAt = max(current.updatedAt, incoming.updatedAt)
            return merged
        }
        guard !current.status.isTerminal else { return nil }
        var merged = current
        var changed = false
        if incoming.cancelRequested, !current.cancelRequested || incoming.updatedAt > current.updatedAt {
            merged.cancelRequested = true
            changed = true
        }
        // A stall mark describes one state of the job: it joins only the snapshot
        // it was made for, so the next sign of life (a greater key) clears it.
        if incomingOrder == currentOrder, incoming.isStalled, !current.isStalled || incoming.updatedAt > current.updatedAt {
            merged.stalled = true
            changed = true
        }
        guard changed else { return nil }
        merged.updatedAt = max(current.updatedAt, incoming.updatedAt)
        return merged
    }
}

/// Every job's latest snapshot, keyed by id: the gateway's view, and the
/// worker's ledger of what has already happened.
public struct JobTable: Sendable {
    /// Boxed: a dictionary keeps up to twice as many slots as entries, and a
    /// slot holding a whole snapshot (about 300 bytes) rather than a reference
    /// made most of a gateway's memory per job.
    private var entries: [JobID: Entry] = [:]

    private final class Entry: Sendable {
        let snapshot: JobSnapshot
        let stamp: UInt64
        init(_ snapshot: JobSnapshot, stamp: UInt64) {
            self.snapshot = snapshot
            self.stamp = stamp
        }
    }

    public init() {}

    public subscript(id: JobID) -> JobSnapshot? { entries[id]?.snapshot }

    /// The job with the stamp of its latest change (see ``fold(_:stamp:)``).
    public func stamped(_ id: JobID) -> (snapshot: JobSnapshot, stamp: UInt64)? {
        entries[id].map { ($0.snapshot, $0.stamp) }
    }

    public var count: Int { entries.count }

    /// Every job, in no particular order.
    public var snapshots: some Sequence<JobSnapshot> { entries.values.lazy.map(\.snapshot) }

    /// Every job with the stamp of its latest change, in no particular order.
    public var stampedSnapshots: some Sequence<(snapshot: JobSnapshot, stamp: UInt64)> {
        entries.values.lazy.map { ($0.snapshot, $0.stamp) }
    }

    /// Forgets a job (its tombstone was read, or it expired from the view).
    @discardableResult
    public mutating func remove(_ id: JobID) -> JobSnapshot? {
        entries.removeValue(forKey: id)?.snapshot
    }

    /// Folds one snapshot in; returns the job's new state when it changed.
    @discardableResult
    public mutating func apply(_ snapshot: JobSnapshot) -> JobSnapshot? {
        fold(snapshot).changed
    }

    /// Folds one snapshot in; returns the job's state before, and its new state
    /// when it changed. One lookup of the id: a replay folds a million.
    ///
    /// - Parameter stamp: kept with the job if this changes it: the view's change
    ///   position, here rather than in a dictionary of its own beside the table.
    public mutating func fold(_ snapshot: JobSnapshot, stamp: UInt64 = 0) -> (previous: JobSnapshot?, changed: JobSnapshot?) {
        var result: (previous: JobSnapshot?, changed: JobSnapshot?) = (nil, nil)
        Self.update(&entries[snapshot.id]) { entry in
            result.previous = entry?.snapshot
            guard let merged = JobFold.merge(result.previous, snapshot) else { return }
            entry = Entry(merged, stamp: stamp)
            result.changed = merged
        }
        return result
    }

    private static func update(_ entry: inout Entry?, _ body: (inout Entry?) -> Void) { body(&entry) }
}
