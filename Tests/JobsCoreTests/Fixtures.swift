import Foundation
import JobsCore

/// A fixed instant, so every time in the tests is exact to the millisecond.
let epoch = Date(timeIntervalSince1970: 1_700_000_000)

/// `epoch` plus `seconds` (use whole milliseconds only: the wire keeps no more).
func at(_ seconds: Double) -> Date {
    Date(timeIntervalSince1970: epoch.timeIntervalSince1970 + seconds)
}

let builtinTypes = Dictionary(uniqueKeysWithValues: BuiltinJobTypes.all.map { ($0.name, $0) })

/// Every event the status topic sees for one `sleep` job that is lost by its
/// first worker and then succeeds on the second, built through the state machine.
struct RetriedJobHistory {
    let id = JobID(rawValue: "job-retried")
    let queued: JobSnapshot
    let running1: JobSnapshot
    let progress1: [JobSnapshot]
    let requeued: JobSnapshot
    let running2: JobSnapshot
    let progress2: [JobSnapshot]
    let succeeded: JobSnapshot

    /// `steps` progress reports in each attempt.
    init(steps: Int = 3) throws {
        queued = .queued(id: id, type: "sleep", params: ["steps": .number(Double(steps)), "stepMs": 10], at: at(0))
        running1 = try queued.started(attempt: 1, by: "worker-a", at: at(1))
        var reports: [JobSnapshot] = []
        var last = running1
        for step in 1...steps {
            last = try last.reporting(JobProgress(current: step, total: steps), at: at(1 + Double(step) / 10))
            reports.append(last)
        }
        progress1 = reports
        requeued = try last.requeued(error: JobError(code: "worker_lost", message: "worker-a stopped"), at: at(5))
        running2 = try requeued.started(attempt: requeued.attempt, by: "worker-b", at: at(6))
        reports = []
        last = running2
        for step in 1...steps {
            last = try last.reporting(JobProgress(current: step, total: steps, message: "step \(step)"), at: at(6 + Double(step) / 10))
            reports.append(last)
        }
        progress2 = reports
        succeeded = try last.succeeded(result: ["sleptMs": .number(Double(steps * 10))], at: at(9))
    }

    /// The events in the order they were produced.
    var events: [JobSnapshot] {
        [queued, running1] + progress1 + [requeued, running2] + progress2 + [succeeded]
    }
}

/// Folds `events` into a fresh table and returns the job's final state.
func fold(_ events: [JobSnapshot]) -> JobSnapshot? {
    var table = JobTable()
    for event in events { table.apply(event) }
    return events.first.flatMap { table[$0.id] }
}

/// Calls `body` with every permutation of `items` (Heap's algorithm, iterative).
func forEachPermutation<T>(of items: [T], _ body: ([T]) -> Void) {
    var a = items
    var c = Array(repeating: 0, count: a.count)
    body(a)
    var i = 0
    while i < a.count {
        if c[i] < i {
            a.swapAt(i.isMultiple(of: 2) ? 0 : c[i], i)
            body(a)
            c[i] += 1
            i = 0
        } else {
            c[i] = 0
            i += 1
        }
    }
}

func factorial(_ n: Int) -> Int { n <= 1 ? 1 : n * factorial(n - 1) }

/// A small seeded generator (SplitMix64), so shuffles are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The gateway's cancel request: the job as it accepted it, with the flag set.
func cancelRequest(for queued: JobSnapshot, at time: Date) -> JobSnapshot {
    var request = queued
    request.cancelRequested = true
    request.updatedAt = time
    return request
}

/// The keys of the top-level JSON object `value` encodes to.
func encodedKeys(_ value: some Encodable) throws -> Set<String> {
    let json = try WireFormat.decode(JSONValue.self, from: WireFormat.encode(value))
    return Set(json.objectValue.map { Array($0.keys) } ?? [])
}
