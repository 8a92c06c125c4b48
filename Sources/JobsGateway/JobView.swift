import Foundation
import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization

/// The gateway's view of every job: the status topic, folded from the beginning.
///
/// Every replica folds the whole topic, so any replica answers any query, and a
/// restarted gateway rebuilds the view from the topic alone. It is `ready` once
/// it has caught up with the topic's end as it was at start-up.
public final class JobView: Service {
    private struct State {
        var table = JobTable()
        /// Idempotency key, within its submitter's keys → the job it created.
        var idempotencyKeys: [IdempotencyScope: JobID] = [:]
        /// Jobs whose last record on the topic is a stale one (see ``isStaleTail``).
        var staleTails: Set<JobID> = []
        /// Jobs now `running`: the watch for silent workers looks only at these.
        var running: Set<JobID> = []
        var countsByStatus: [JobStatus: Int] = [:]
        /// Caught up with the topic's end as it was at start-up.
        var ready = false
        /// Every job by creation time, for listing.
        var listIndex = JobListIndex()
        /// Counts changes, and remembers the latest ones' jobs; each job's entry
        /// in the table is stamped with its latest, so a stream resumes exactly.
        var recentChanges: RecentChanges
        var changeSequence: UInt64 { recentChanges.latest }

        mutating func count(_ removed: JobSnapshot?, _ added: JobSnapshot?) {
            if let removed { countsByStatus[removed.status, default: 0] -= 1 }
            if let added { countsByStatus[added.status, default: 0] += 1 }
        }

        /// Folds one snapshot: the job's state before and after when it changed, and
        /// whether it left a stale tail on the topic (see ``isStaleTail``).
        mutating func fold(_ snapshot: JobSnapshot) -> (previous: JobSnapshot?, changed: JobSnapshot?, staleTail: Bool) {
            if let key = IdempotencyScope(snapshot) { claim(key, for: snapshot) }
            let (previous, changed) = table.fold(snapshot, stamp: changeSequence + 1)
            if changed == nil, let previous, Self.isStaleTail(snapshot, behind: previous) {
                staleTails.insert(snapshot.id)
                return (previous, nil, true)
            }
            if !staleTails.isEmpty { staleTails.remove(snapshot.id) }
            guard let changed else { return (previous, nil, false) }
            count(previous, changed)
            if changed.status == .running {
                if previous?.status != .running { running.insert(changed.id) }
            } else if previous?.status == .running {
                running.remove(changed.id)
            }
            let position = JobListPosition(changed)
            if let previous {
                let old = JobListPosition(previous)
                if old != position {
                    listIndex.remove(old)
                    listIndex.insert(position)
                }
            } else {
                listIndex.insertAbsent(position)  // new to the table, so to the index
            }
            recentChanges.record(changed.id)
            return (previous, changed, false)
        }

        /// Whether `record`, read after `held` and changing nothing, is one that
        /// compaction must not keep as the job's last: any record of an ended
        /// job, or a `queued` one (a gateway's, sent again after a failure, or a
        /// hand-back's) landing after a later state of a live job, such as its
        /// cancel marker or its `running`. Compacted, that job would read as
        /// never cancelled, or as not started (its next run repeating the attempt).
        ///
        /// Other records of live jobs are left to the job's own later snapshots:
        /// re-publishing a worker's snapshot could itself land behind the
        /// worker's next, and call for another, for as long as the job runs.
        /// A copy of the held snapshot is never stale, or re-publishing it would
        /// be read back as stale again, without end. A cancel marker this
        /// gateway applied before reading the job's first `queued` back makes
        /// that record look stale too: the marker is published once more, which
        /// is harmless.
        static func isStaleTail(_ record: JobSnapshot, behind held: JobSnapshot) -> Bool {
            let behind = SnapshotOrder(record) != SnapshotOrder(held)
            if held.status.isTerminal { return behind }
            guard record.status == .queued, record.sequence == 0 else { return false }
            return behind || (held.cancelRequested && !record.cancelRequested)
        }

        /// A key used again (once its job expired, or by two replicas at one
        /// instant) belongs to its newest job, whatever order the jobs' records
        /// are read in: they sit in different partitions, and a late record of
        /// the older job, followed by its tombstone, must not take the key away.
        private mutating func claim(_ key: IdempotencyScope, for snapshot: JobSnapshot) {
            if let holder = idempotencyKeys[key], holder != snapshot.id, let other = table[holder],
               (other.createdAt, other.id.rawValue) > (snapshot.createdAt, snapshot.id.rawValue) {
                return
            }
            idempotencyKeys[key] = snapshot.id
        }

        /// Forgets a job (its tombstone was read, or it expired).
        mutating func forget(_ id: JobID) {
            guard let removed = table.remove(id) else { return }
            count(removed, nil)
            if let key = IdempotencyScope(removed), idempotencyKeys[key] == id {
                idempotencyKeys.removeValue(forKey: key)
            }
            staleTails.remove(id)
            if removed.status == .running { running.remove(id) }
            listIndex.remove(JobListPosition(removed))
        }
    }

    private let state: Mutex<State>
    private let offsets = ConsumedOffsets()
    private let reader: KafkaTopicReader
    private let endOffsets: SharedQuery<[Int32: Int64]>
    /// Re-publishes a job's held snapshot over a stale tail (see `reassertStaleTails`).
    private let reassert: @Sendable (JobSnapshot) async -> Void
    private let retention: Retention?
    private let metrics: GatewayMetrics?
    private let logger: Logger
    private let feed = JobChangeFeed()
    /// Wakes the task that re-publishes stale tails; one pending wake is enough.
    private let staleTailsFound = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    /// Names this view instance in change positions (SSE event ids).
    public let epoch = String(UInt32.random(in: .min ... .max), radix: 36)

    /// Ended jobs older than `age` leave the view; `tombstone` tells the topic.
    struct Retention: Sendable {
        var age: Duration
        var sweepInterval: Duration
        var tombstone: @Sendable (JobID) async -> Void
    }

    /// - Parameter recentChanges: how many of the latest changes a resumed
    ///   stream finds without a scan of every job (see ``RecentChanges``).
    init(configuration: KafkaConfiguration, topic: String, logger: Logger, retention: Retention? = nil,
         metrics: GatewayMetrics? = nil, recentChanges: Int = 65_536,
         reassert: @escaping @Sendable (JobSnapshot) async -> Void) throws(KafkaError) {
        state = Mutex(State(recentChanges: RecentChanges(capacity: recentChanges)))
        // Clients wait on this reader (a job's progress, its cancel): it fetches eagerly.
        let reader = try KafkaTopicReader(configuration: configuration, topic: topic, from: .beginning,
                                          maxFetchWait: .milliseconds(3), logger: logger)
        self.reader = reader
        self.endOffsets = SharedQuery { try await reader.endOffsets() }
        self.reassert = reassert
        self.retention = retention
        self.metrics = metrics
        self.logger = logger
    }

    // In the locked state rather than an `Atomic<Bool>` stored property: Swift
    // 6.3.1's optimizer crashes on the latter here in release builds.
    public var isReady: Bool { state.withLock { $0.ready } }

    public var count: Int { state.withLock { $0.table.count } }

    public subscript(id: JobID) -> JobSnapshot? { state.withLock { $0.table[id] } }

    /// The job `submitter` created with this idempotency key, if any.
    public func job(forIdempotencyKey key: String, submittedBy submitter: String?) -> JobSnapshot? {
        let scoped = IdempotencyScope(key: key, submitter: submitter)
        return state.withLock { state in state.idempotencyKeys[scoped].flatMap { state.table[$0] } }
    }

    /// Running jobs on any of `workers` that are not marked stalled yet.
    func unstalledJobs(runningOn workers: Set<String>) -> [JobSnapshot] {
        state.withLock { state in
            state.running.compactMap { state.table[$0] }.filter { job in
                guard let worker = job.workerID else { return false }
                return workers.contains(worker) && !job.isStalled
            }
        }
    }

    /// A page of jobs matching `filter`, newest first (see ``JobListIndex``).
    public func page(_ filter: JobFilter, limit: Int, after cursor: JobListPosition?) -> JobPage {
        state.withLock { state in
            let table = state.table
            return state.listIndex.page(filter, limit: limit, after: cursor) { table[$0] }
        }
    }

    /// Changes from now on to jobs `matches` accepts.
    func subscribe(matching matches: @escaping @Sendable (JobChange) -> Bool) -> JobChangeFeed.Subscription {
        feed.subscribe(matching: matches)
    }

    /// The position of the latest change: where a stream opened now starts.
    var currentPosition: ChangePosition {
        state.withLock { ChangePosition(epoch: epoch, sequence: $0.changeSequence) }
    }

    /// A job's current state as a change, with the position of its latest change.
    func currentChange(of id: JobID) -> JobChange? {
        state.withLock { state in
            guard let (snapshot, stamp) = state.table.stamped(id) else { return nil }
            return JobChange(position: ChangePosition(epoch: epoch, sequence: stamp), snapshot: snapshot)
        }
    }

    /// What changed after `position` among jobs `filter` accepts: the current
    /// state of each such job, in change order, or nil when `position` is from
    /// another view instance or more than `limit` jobs changed since (the client
    /// must list again). `through` is the last position the answer covers.
    func changes(since position: ChangePosition, matching filter: JobFilter, limit: Int)
        -> (changes: [JobChange]?, through: UInt64)
    {
        state.withLock { state in
            guard position.epoch == epoch, position.sequence <= state.changeSequence else { return (nil, state.changeSequence) }
            var changed: [(UInt64, JobSnapshot)] = []
            func add(_ snapshot: JobSnapshot, at sequence: UInt64) -> Bool {
                guard filter.matches(snapshot) else { return true }
                guard changed.count < limit else { return false }
                changed.append((sequence, snapshot))
                return true
            }
            if let recent = state.recentChanges.changes(after: position.sequence) {
                // In change order already; a job counts at its latest change only.
                for (sequence, id) in recent {
                    guard let (snapshot, stamp) = state.table.stamped(id), stamp == sequence else { continue }
                    guard add(snapshot, at: sequence) else { return (nil, state.changeSequence) }
                }
            } else {
                for (snapshot, sequence) in state.table.stampedSnapshots where sequence > position.sequence {
                    guard add(snapshot, at: sequence) else { return (nil, state.changeSequence) }
                }
                changed.sort { $0.0 < $1.0 }
            }
            let changes = changed.map { JobChange(position: ChangePosition(epoch: epoch, sequence: $0.0), snapshot: $0.1) }
            return (changes, state.changeSequence)
        }
    }

    /// Folds a snapshot this gateway just published, so its own client reads it at once.
    public func apply(_ snapshot: JobSnapshot) {
        fold(CollectionOfOne(.snapshot(snapshot)))
    }

    /// Folds records in order, at most `chunkSize` per hold of the lock, so a
    /// replay never keeps a reader waiting long; returns whether some record
    /// left a stale tail (see `reassertStaleTails`).
    @discardableResult
    private func fold(_ records: some Collection<StatusRecord>, chunkSize: Int = 256) -> Bool {
        var sawStaleTail = false
        var rest = records[...]
        while !rest.isEmpty {
            let chunk = rest.prefix(chunkSize)
            rest = rest.dropFirst(chunk.count)
            let (changes, counts, stale) = state.withLock { state in
                var changes: [(previous: JobSnapshot?, current: JobSnapshot)] = []
                var stale = false
                for record in chunk {
                    switch record {
                    case .snapshot(let snapshot):
                        let (previous, changed, staleTail) = state.fold(snapshot)
                        if let changed {
                            // Under the lock, so every subscriber sees changes in sequence order.
                            feed.publish(JobChange(position: ChangePosition(epoch: epoch, sequence: state.changeSequence),
                                                   snapshot: changed, previous: previous))
                            // History replayed before `ready` is not news for the counters.
                            if state.ready { changes.append((previous, changed)) }
                        }
                        stale = stale || staleTail
                    case .tombstone(let id):
                        state.forget(id)
                    }
                }
                return (changes, state.countsByStatus, stale)
            }
            sawStaleTail = sawStaleTail || stale
            if let metrics {
                for change in changes { metrics.jobChanged(from: change.previous, to: change.current) }
                metrics.setJobCounts(counts)
            }
        }
        return sawStaleTail
    }

    /// Compaction keeps the *last* record of a key, so a job whose last record
    /// is stale (see ``State/isStaleTail(_:behind:)``) would read, once
    /// compacted, as it was then: an ended job as live, a cancelled one as not.
    /// Publishing the held snapshot again makes that the last record. Only done
    /// once caught up: while replaying history the later state may well follow
    /// further on, and a record that does clears the note.
    ///
    /// A task of its own, woken by `follow`: a partition that can't be written
    /// (each attempt then waits out the message timeout) must not hold up the
    /// folding of every other partition.
    private func reassertStaleTails() async {
        for await _ in staleTailsFound.stream {
            let held = state.withLock { state in
                defer { state.staleTails.removeAll() }
                return state.staleTails.compactMap { state.table[$0] }
            }
            for snapshot in held { await reassert(snapshot) }
        }
    }

    /// The job, waiting (bounded) for the view to reach the topic's current end if
    /// it is not known yet: a job accepted by another replica an instant ago is
    /// found rather than reported missing.
    public func snapshot(_ id: JobID, catchUpTimeout: Duration) async -> JobSnapshot? {
        if let known = self[id] { return known }
        await catchUp(timeout: catchUpTimeout)
        return self[id]
    }

    /// Waits (bounded) until the view has folded everything on the topic now.
    public func catchUp(timeout: Duration) async {
        guard let ends = try? await endOffsets.value() else { return }
        _ = await offsets.wait(until: ends, timeout: timeout)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.follow() }
                group.addTask { await self.becomeReady() }
                group.addTask { await self.reassertStaleTails() }
                if let retention = self.retention {
                    group.addTask { await self.expireOldJobs(retention) }
                }
            }
        }
        feed.finishAll()
        await reader.close()
    }

    private func follow() async {
        for await batch in reader.batches() {
            // Decoded before the lock is taken: the lock is held for the fold alone.
            // Tombstones are jobs that expired from some gateway's view: forgotten here too.
            let records = StatusRecord.decodeAll(batch, key: \.key, value: \.value) { message, error in
                logger.warning("skipping undecodable status event", metadata: ["offset": "\(message.offset)", "error": "\(error)"])
            }
            if fold(records), isReady {
                staleTailsFound.continuation.yield()
            }
            offsets.advance(past: batch)
        }
    }

    private func forget(_ ids: some Sequence<JobID>) {
        let counts = state.withLock { state in
            for id in ids { state.forget(id) }
            return state.countsByStatus
        }
        metrics?.setJobCounts(counts)
    }

    /// Drops ended jobs older than the retention age, and writes their tombstones
    /// so the compacted status topic forgets them too: the view never grows
    /// without bound. Every replica does this; duplicate tombstones are harmless.
    private func expireOldJobs(_ retention: Retention) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: retention.sweepInterval)
            guard isReady else { continue }
            let cutoff = Date().addingTimeInterval(-retention.age.timeInterval)
            let expired = state.withLock { state in
                state.table.snapshots.filter { $0.status.isTerminal && ($0.finishedAt ?? $0.updatedAt) < cutoff }.map(\.id)
            }
            guard !expired.isEmpty else { continue }
            forget(expired)
            for id in expired { await retention.tombstone(id) }
            logger.info("expired ended jobs from the view", metadata: ["jobs": "\(expired.count)"])
        }
    }

    private func becomeReady() async {
        let started = ContinuousClock.now
        while !Task.isCancelled {
            do {
                let ends = try await reader.endOffsets()
                if await offsets.wait(until: ends, timeout: .seconds(30)) {
                    state.withLock { $0.ready = true }
                    staleTailsFound.continuation.yield()
                    logger.info("job view caught up", metadata: ["jobs": "\(count)", "took": "\(ContinuousClock.now - started)"])
                    return
                }
            } catch {
                logger.warning("cannot read the status topic's end yet", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// One answer for many concurrent askers, never older than the asking: callers
/// that ask while a query runs share the *next* one, which starts when it ends.
/// A burst of requests makes one broker round trip at a time (and one thread),
/// not one each; and a caller never gets an answer read before it asked (a
/// query already under way may have read the topic's end before a job another
/// replica just acknowledged, whose id is what this caller is looking for).
final class SharedQuery<Value: Sendable>: Sendable {
    private struct State {
        var running = false
        /// Callers for the next round, which answers all of them.
        var waiting: [CheckedContinuation<Result<Value, any Error>, Never>] = []
    }

    private let run: @Sendable () async throws -> Value
    private let state = Mutex(State())

    init(_ run: @escaping @Sendable () async throws -> Value) {
        self.run = run
    }

    func value() async throws -> Value {
        try await withCheckedContinuation { continuation in
            let startRounds = state.withLock { state in
                state.waiting.append(continuation)
                defer { state.running = true }
                return !state.running
            }
            if startRounds { Task { await self.runRounds() } }
        }.get()
    }

    /// Runs a round for the callers waiting as it begins, until none are left.
    private func runRounds() async {
        while true {
            let callers = state.withLock { state in
                defer { state.waiting = [] }
                if state.waiting.isEmpty { state.running = false }
                return state.waiting
            }
            guard !callers.isEmpty else { return }
            let result: Result<Value, any Error>
            do { result = .success(try await run()) } catch { result = .failure(error) }
            callers.forEach { $0.resume(returning: result) }
        }
    }
}

/// An idempotency key as its submitter used it: two API keys that happen to
/// send the same `Idempotency-Key` create two jobs, and neither sees the other's.
/// Jobs submitted with authentication off (no submitter) share one scope.
struct IdempotencyScope: Hashable, Sendable {
    let key: String
    let submitter: String?

    init(key: String, submitter: String?) {
        self.key = key
        self.submitter = submitter
    }

    init?(_ snapshot: JobSnapshot) {
        guard let key = snapshot.idempotencyKey else { return nil }
        self.init(key: key, submitter: snapshot.submittedBy)
    }
}
