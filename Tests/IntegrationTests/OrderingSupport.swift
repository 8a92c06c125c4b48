import Foundation
@testable import JobsGateway
import JobsCore
import JobsWorker
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The params of the `step` job type the ordering tests run.
struct Step: Codable, Sendable {
    var key: String
    var index: Int
    /// How long the handler works.
    var ms: Int = 50
    /// Hold the job until runs of this many distinct keys have started (proves keys run side by side).
    var untilKeysStarted: Int?
    /// Hold the job until this many runs of *other* keys have completed (proves they were not held up).
    var untilOthersDone: Int?

    static let schema = ParamsSchema([
        .init("key", .string(), required: true), .init("index", .integer(), required: true), .init("ms", .integer()),
        .init("untilKeysStarted", .integer()), .init("untilOthersDone", .integer()),
    ])

    var params: JSONValue {
        get throws { try WireFormat.decode(JSONValue.self, from: WireFormat.encode(self)) }
    }
}

/// Every run of a `step` handler, in one total order: starts and ends take
/// numbers from one counter under one lock, so "ended before the next started"
/// is exact, whatever the clocks.
final class RunLog: Sendable {
    struct Run: Sendable {
        let job: JobID
        let key: String
        let index: Int
        let worker: String
        let attempt: Int
        let started: Int
        var ended: Int?
        var completed = false

        func overlaps(_ other: Run) -> Bool {
            started < (other.ended ?? .max) && other.started < (ended ?? .max)
        }
    }

    private struct State {
        var runs: [Run] = []
        var clock = 0
        var stickyWorker: String?
        /// Jobs after each key's first wait until a worker is made sticky.
        var laterJobsWaitForSticky = false
    }

    private let state = Mutex(State())

    func begin(job: JobID, key: String, index: Int, worker: String, attempt: Int) -> Int {
        state.withLock { state in
            state.clock += 1
            state.runs.append(Run(job: job, key: key, index: index, worker: worker, attempt: attempt, started: state.clock))
            return state.runs.count - 1
        }
    }

    func end(_ run: Int, completed: Bool) {
        state.withLock { state in
            state.clock += 1
            state.runs[run].ended = state.clock
            state.runs[run].completed = completed
        }
    }

    var runs: [Run] { state.withLock { $0.runs } }

    /// From now on, runs on `worker` hold on until some other worker has started a run.
    func makeSticky(_ worker: String) { state.withLock { $0.stickyWorker = worker } }
    /// From now on, every key's jobs but the first wait until ``makeSticky(_:)``:
    /// a test task that a loaded machine starves for seconds can't let a worker
    /// run through the backlog before the sticky phase begins.
    func holdLaterJobsUntilSticky() { state.withLock { $0.laterJobsWaitForSticky = true } }
    private var laterJobsWaitForSticky: Bool { state.withLock { $0.laterJobsWaitForSticky } }
    var stickyWorker: String? { state.withLock { $0.stickyWorker } }

    /// The most runs that were in progress at one moment.
    func peakOverlap(_ include: (Run) -> Bool = { _ in true }) -> Int {
        var events: [(Int, Int)] = []
        for run in runs where include(run) {
            events.append((run.started, 1))
            events.append((run.ended ?? .max, -1))
        }
        var current = 0
        var peak = 0
        for (_, change) in events.sorted(by: { $0.0 < $1.0 }) {
            current += change
            peak = max(peak, current)
        }
        return peak
    }

    /// Checks the ordering promise for every key: its runs never overlap, start
    /// in submit order (a run handed back may be followed by its own next
    /// attempt), and each job completed exactly once.
    func expectKeyOrder(sourceLocation: SourceLocation = #_sourceLocation) {
        let byKey = Dictionary(grouping: runs, by: \.key)
        for (key, runs) in byKey {
            let ordered = runs.sorted { $0.started < $1.started }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                #expect(!earlier.overlaps(later),
                        "key \(key): job \(earlier.index) (on \(earlier.worker)) and job \(later.index) (on \(later.worker)) overlap",
                        sourceLocation: sourceLocation)
                #expect(earlier.index <= later.index,
                        "key \(key): job \(later.index) started after job \(earlier.index) of a later submit",
                        sourceLocation: sourceLocation)
            }
            let completed = ordered.filter(\.completed).map(\.index)
            #expect(completed == Array(0..<completed.count), "key \(key): completed \(completed)", sourceLocation: sourceLocation)
        }
    }

    /// Polls `condition` every 10 ms; throws after `timeout` or when the task is cancelled.
    func hold(until condition: (RunLog) -> Bool, timeout: Duration = .seconds(20), what: String) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(self) {
            guard ContinuousClock.now < deadline else { throw JobError(code: "test_gate", message: "gave up waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

extension RunLog {
    /// A registry with the built-in types and `step`, which records each run
    /// under `worker` in this log.
    func registry(worker: String, options: JobOptions = JobOptions()) -> JobRegistry {
        var registry = JobRegistry.builtin
        registry.register("step", params: Step.self, schema: Step.schema, options: options) { step, context in
            let run = self.begin(job: context.jobID, key: step.key, index: step.index, worker: worker, attempt: context.attempt)
            var completed = false
            defer { self.end(run, completed: completed) }
            if let keys = step.untilKeysStarted {
                try await self.hold(until: { Set($0.runs.map(\.key)).count >= keys }, what: "\(keys) keys to start")
            }
            if let others = step.untilOthersDone {
                try await self.hold(until: { log in log.runs.filter { $0.key != step.key && $0.completed }.count >= others },
                                    what: "\(others) runs of other keys to complete")
            }
            if step.index > 0, self.laterJobsWaitForSticky {
                try await self.hold(until: { $0.stickyWorker != nil }, timeout: .seconds(60), what: "a worker to be made sticky")
            }
            if self.stickyWorker == worker {
                // Keeps this worker's jobs busy until the other worker has taken partitions over.
                try await self.hold(until: { log in log.runs.contains { $0.worker != worker } }, timeout: .seconds(60),
                                    what: "another worker to run a job")
            }
            try await Task.sleep(for: .milliseconds(step.ms))
            completed = true
            return ["index": step.index]
        }
        return registry
    }
}

/// Publishes start commands the way the gateway does (through its own
/// `JobCommands`), with an ordering key, plus the queued snapshot so the
/// gateway's view knows the job at once.
struct OrderedSubmitter: Sendable {
    let commands: JobCommands
    let producer: KafkaProducer

    init(_ system: TestCluster) throws {
        producer = try KafkaProducer(configuration: system.kafka, topics: [system.topics.commands, system.topics.status],
                                     logger: .quiet)
        commands = JobCommands(producer: producer, urgent: producer, topics: system.topics)
    }

    func submit(_ step: Step, orderingKey: String?) async throws -> JobSnapshot {
        let job = JobSnapshot.queued(type: "step", params: try step.params, orderingKey: orderingKey)
        let sent = await commands.submit(job)
        if let error = sent.start ?? sent.queued { throw error }
        return job
    }

    func shutdown() async { await producer.shutdown() }
}

/// One `JobWorker` in a service group of its own, so a test can add and stop
/// workers while a gateway runs.
struct RunningWorker: Sendable {
    let group: ServiceGroup
    let task: Task<Void, any Error>

    init(_ system: TestCluster, id: String, registry: JobRegistry, concurrency: Int = 8) {
        let worker = JobWorker(
            configuration: WorkerConfiguration(kafka: system.kafka, topics: system.topics, workerID: id, concurrency: concurrency),
            registry: registry, logger: .quiet
        )
        let group = ServiceGroup(configuration: .init(services: [worker], logger: .quiet))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// CRC-32 (IEEE), as librdkafka's default `consistent_random` partitioner
/// hashes a message key: partition = crc32(key) % partitions.
func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// One ordering key per partition, so every partition carries a key.
func keysCoveringPartitions(_ partitions: Int) -> [String] {
    var byPartition: [Int: String] = [:]
    var candidate = 0
    while byPartition.count < partitions {
        let key = "key-\(candidate)"
        let partition = Int(crc32(key.utf8) % UInt32(partitions))
        if byPartition[partition] == nil { byPartition[partition] = key }
        candidate += 1
    }
    return byPartition.keys.sorted().compactMap { byPartition[$0] }
}
