import Foundation
import JobsCore
import Testing

@Suite("The fold of status events")
struct JobFoldTests {
    @Test("every ordering of a retried job's history folds to the in-order result")
    func everyPermutationFoldsToTheSameSnapshot() throws {
        // 1 progress report per attempt: 7 events, 5040 orderings, all of them tried.
        let history = try RetriedJobHistory(steps: 1)
        let events = history.events
        let expected = try #require(fold(events))
        #expect(expected == history.succeeded)

        var tried = 0
        var mismatches: [[String]] = []
        forEachPermutation(of: events) { ordering in
            tried += 1
            if fold(ordering) != expected, mismatches.count < 3 {
                mismatches.append(ordering.map { "\($0.status.rawValue)#\($0.attempt).\($0.sequence)" })
            }
        }
        #expect(tried == factorial(events.count))
        #expect(mismatches.isEmpty, "orderings that folded differently: \(mismatches)")
    }

    @Test("seeded shuffles of a longer history with duplicates and replays fold to the in-order result")
    func shufflesWithDuplicatesAndReplaysFoldToTheSameSnapshot() throws {
        let history = try RetriedJobHistory(steps: 5)
        let events = history.events
        let expected = try #require(fold(events))
        #expect(expected == history.succeeded)

        var rng = SeededGenerator(seed: 0x5EED_0F_F01D)
        var mismatches = 0
        for _ in 0..<2_000 {
            var delivered = events
            // Duplicates: redeliveries of single events.
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                delivered.append(events.randomElement(using: &rng)!)
            }
            // A replay: a whole stretch of the topic delivered again.
            let start = Int.random(in: 0..<events.count, using: &rng)
            let end = Int.random(in: start..<events.count, using: &rng)
            delivered += events[start...end]
            delivered.shuffle(using: &rng)
            if fold(delivered) != expected { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test("no delivery order ever moves a job backwards")
    func theHeldSnapshotOnlyMovesForward() throws {
        let events = try RetriedJobHistory(steps: 3).events
        var rng = SeededGenerator(seed: 42)
        var regressions = 0
        var terminalLeft = 0
        for _ in 0..<500 {
            var table = JobTable()
            var held: SnapshotOrder?
            var terminal: JobSnapshot?
            for event in (events + events.prefix(4)).shuffled(using: &rng) {
                table.apply(event)
                let now = try #require(table[event.id])
                let order = SnapshotOrder(now)
                if let held, order < held { regressions += 1 }
                held = order
                if let terminal, now != terminal { terminalLeft += 1 }
                if now.status.isTerminal { terminal = now }
            }
        }
        #expect(regressions == 0)
        #expect(terminalLeft == 0)
    }

    @Test("a terminal snapshot is never replaced by a live one, even of a later attempt", arguments: [JobStatus.succeeded, .failed, .cancelled])
    func terminalSnapshotsAreFinal(_ ending: JobStatus) throws {
        let history = try RetriedJobHistory(steps: 2)
        let running = history.progress1.last!
        let ended: JobSnapshot = switch ending {
        case .succeeded: try running.succeeded(result: "done", at: at(4))
        case .failed: try running.failed(JobError(code: "boom", message: "it broke"), at: at(4))
        default: try running.cancelled(at: at(4))
        }
        #expect(ended.status == ending)

        var table = JobTable()
        table.apply(ended)
        let lateAttempt = try history.running2.started(attempt: 9, by: "worker-z", at: at(100))
        for live in history.events.filter({ !$0.status.isTerminal }) + [lateAttempt] {
            let change = table.apply(live)
            #expect(change == nil)
        }
        #expect(table[history.id] == ended)
    }

    @Test("a cancel request with the queued snapshot's order key is merged into a running job")
    func cancelRequestMergesIntoRunningJob() throws {
        let history = try RetriedJobHistory(steps: 2)
        let request = cancelRequest(for: history.queued, at: at(1.05))
        #expect(SnapshotOrder(request) == SnapshotOrder(history.queued))

        var table = JobTable()
        table.apply(history.queued)
        table.apply(history.running1)
        let change = table.apply(request)
        let merged = try #require(change)
        #expect(merged.cancelRequested)
        #expect(merged.status == .running)
        #expect(merged.workerID == "worker-a")
        #expect(merged.updatedAt == at(1.05))
    }

    @Test("a merged cancel request survives later running snapshots that lack it")
    func cancelRequestSurvivesLaterSnapshots() throws {
        let history = try RetriedJobHistory(steps: 2)
        var table = JobTable()
        table.apply(history.queued)
        table.apply(history.running1)
        table.apply(cancelRequest(for: history.queued, at: at(1.05)))
        for later in history.progress1 + [history.requeued, history.running2] {
            #expect(!later.cancelRequested)
            let change = table.apply(later)
            let now = try #require(change)
            #expect(now.cancelRequested, "lost at \(later.status) #\(later.attempt).\(later.sequence)")
            #expect(now.sequence == later.sequence && now.attempt == later.attempt)
        }
        #expect(table[history.id]?.status == .running)
        #expect(table[history.id]?.workerID == "worker-b")
    }

    @Test("a cancel request does not modify a terminal snapshot")
    func cancelRequestLeavesTerminalSnapshotAlone() throws {
        let history = try RetriedJobHistory(steps: 1)
        var table = JobTable()
        for event in history.events { table.apply(event) }
        let change = table.apply(cancelRequest(for: history.queued, at: at(60)))
        #expect(change == nil)
        #expect(table[history.id] == history.succeeded)
        #expect(table[history.id]?.cancelRequested == false)
    }

    @Test("the worker's own terminal snapshot replaces a merged cancel request as published")
    func terminalSnapshotWinsOverMergedCancel() throws {
        let history = try RetriedJobHistory(steps: 1)
        var table = JobTable()
        table.apply(history.running1)
        table.apply(cancelRequest(for: history.queued, at: at(1.5)))
        let cancelled = try history.running1.cancelled(at: at(2))
        let change = table.apply(cancelled)
        #expect(change == cancelled)
        #expect(table[history.id]?.status == .cancelled)
        #expect(table[history.id]?.updatedAt == at(2))
    }

    @Test("every ordering of a live job's history with two cancel requests folds to the same snapshot")
    func liveHistoryWithCancelRequestsIsOrderIndependent() throws {
        // The requests come after the worker's last report: the view must show the
        // last report, flagged, updated at the later request, in any order.
        let history = try RetriedJobHistory(steps: 2)
        let events = [history.queued, history.running1] + history.progress1
            + [cancelRequest(for: history.queued, at: at(3)), cancelRequest(for: history.queued, at: at(4))]
        var expected = history.progress1.last!
        expected.cancelRequested = true
        expected.updatedAt = at(4)
        #expect(fold(events) == expected)

        var mismatches = 0
        forEachPermutation(of: events) { if fold($0) != expected { mismatches += 1 } }
        #expect(mismatches == 0, "\(mismatches) of \(factorial(events.count)) orderings differ")
    }

    @Test("apply returns the new state when the job changes and nil for duplicates and stale events")
    func applyReportsOnlyChanges() throws {
        let history = try RetriedJobHistory(steps: 2)
        var table = JobTable()
        let request = cancelRequest(for: history.queued, at: at(2))
        let changes = [
            table.apply(history.queued), table.apply(history.queued),
            table.apply(history.running1), table.apply(history.running1), table.apply(history.queued),
            table.apply(request), table.apply(request),
        ]
        var expectedMerge = history.running1
        expectedMerge.cancelRequested = true
        expectedMerge.updatedAt = at(2)
        #expect(changes == [history.queued, nil, history.running1, nil, nil, expectedMerge, nil])
        #expect(table[history.id]?.status == .running)
    }

    @Test("fold reports the state before each snapshot, and the new state only when it changed")
    func foldReportsPreviousAndChange() throws {
        let history = try RetriedJobHistory(steps: 2)
        var table = JobTable()
        let first = table.fold(history.queued)
        let duplicate = table.fold(history.queued)
        let started = table.fold(history.running1)
        let stale = table.fold(history.queued)
        #expect(first.previous == nil && first.changed == history.queued)
        #expect(duplicate.previous == history.queued && duplicate.changed == nil)
        #expect(started.previous == history.queued && started.changed == history.running1)
        #expect(stale.previous == history.running1 && stale.changed == nil)
        #expect(table[history.id] == history.running1)
        #expect(table.count == 1)
    }

    @Test("a job keeps the stamp of the fold that last changed it; a fold that changes nothing leaves it")
    func stampsFollowChanges() throws {
        let history = try RetriedJobHistory(steps: 2)
        var table = JobTable()
        _ = table.fold(history.queued, stamp: 1)
        _ = table.fold(history.running1, stamp: 2)
        _ = table.fold(history.queued, stamp: 3)  // stale: no change
        let other = JobSnapshot.queued(id: JobID(rawValue: "other"), type: "noop", params: [:], at: at(0))
        _ = table.fold(other, stamp: 4)
        #expect(table.stamped(history.id)?.snapshot == history.running1)
        #expect(table.stamped(history.id)?.stamp == 2)
        #expect(table.stamped(other.id)?.stamp == 4)
        #expect(table.stamped(JobID(rawValue: "none")) == nil)
        let stamps = Dictionary(uniqueKeysWithValues: table.stampedSnapshots.map { ($0.snapshot.id, $0.stamp) })
        #expect(stamps == [history.id: 2, other.id: 4])
    }

    @Test("the table keeps each job's state apart")
    func tableKeysByJobID() throws {
        let a = JobSnapshot.queued(id: JobID(rawValue: "a"), type: "noop", params: [:], at: at(0))
        let b = JobSnapshot.queued(id: JobID(rawValue: "b"), type: "noop", params: [:], at: at(0))
        var table = JobTable()
        table.apply(a)
        table.apply(b)
        table.apply(try a.started(attempt: 1, by: "w", at: at(1)))
        #expect(table.count == 2)
        #expect(table[a.id]?.status == .running)
        #expect(table[b.id] == b)
        #expect(table[JobID(rawValue: "c")] == nil)
    }

    @Test("the order key ranks terminal above everything, then attempt, state and sequence")
    func snapshotOrderComparesInKeyOrder() throws {
        let history = try RetriedJobHistory(steps: 3)
        let lateProgress = history.progress1.last!
        #expect(SnapshotOrder(history.requeued) > SnapshotOrder(lateProgress))
        #expect(SnapshotOrder(history.running1) > SnapshotOrder(history.queued))
        #expect(SnapshotOrder(history.progress1[1]) > SnapshotOrder(history.progress1[0]))
        let endedInAttempt1 = try lateProgress.failed(JobError(code: "x", message: "y"), at: at(4))
        #expect(SnapshotOrder(endedInAttempt1) > SnapshotOrder(history.progress2.last!))
        #expect(SnapshotOrder(history.succeeded) > SnapshotOrder(history.progress2.last!))
        // The in-order history is strictly increasing.
        let orders = history.events.map(SnapshotOrder.init)
        #expect(zip(orders, orders.dropFirst()).allSatisfy { $0 < $1 })
    }
}
