import Foundation
import HTTPTypes
import HummingbirdTesting
import JobsCore
import KafkaClient
import Synchronization
import Testing

// Helpers of the fault suite (issue 3): one embedded cluster per scenario, the
// built `gateway` and `fault-worker` executables as separate processes, the
// fault-worker's execution logs watched from the test, and the analysis that
// turns the status topic and those logs into the scenario's `FAULT` line.

/// The fault-worker executable's name: `fault-worker` when a product of that
/// name is declared, else the name SwiftPM gives the `FaultWorker` target.
enum FaultExecutables {
    static let faultWorker: String = ["fault-worker", "FaultWorker"].first(where: isBuilt) ?? "fault-worker"

    private static func isBuilt(_ name: String) -> Bool {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let debug = packageRoot.appendingPathComponent(".build/debug/\(name)")
        return [besideTests, debug].contains { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}

/// A gateway process and the port it listens on.
struct GatewayProcess: Sendable {
    let process: ChildProcess
    let port: Int

    /// Runs `body` with a client on one connection to this gateway.
    func withClient<Value: Sendable>(_ body: @escaping @Sendable (GatewayClient) async throws -> Value) async throws -> Value {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { http in try await body(GatewayClient(http)) }
    }
}

/// A fault-worker process and its execution log (one file per process).
struct WorkerProcess: Sendable {
    let process: ChildProcess
    let workerID: String
    let executionLog: URL
    var pid: Int32 { process.pid }

    func waitUntilReady() async throws {
        try await process.waitForLog("ready for assigned partitions", timeout: .seconds(30))
    }

    /// `true` once the worker is ready, `false` if it exits first.
    func readyOrExited(timeout: Duration = .seconds(30)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if process.log.contains("ready for assigned partitions") { return true }
            if !process.isRunning { return false }
            try #require(ContinuousClock.now < deadline, "\(process.name) neither ready nor exited within \(timeout):\n\(process.log.suffix(3000))")
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// One scenario's world: a fresh embedded cluster, the processes started
/// against it, and the watcher of their execution logs.
final class FaultScenario: @unchecked Sendable {
    let name: String
    let system: TestCluster
    let watcher = ExecutionLogWatcher()
    let directory: URL
    private let children = Mutex<[ChildProcess]>([])

    init(_ name: String, partitions: Int32 = 6) throws {
        self.name = name
        system = try TestCluster(partitions: partitions)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-fault-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    var brokers: String { system.cluster.bootstrapServers }
    var cluster: EmbeddedKafkaCluster { system.cluster }

    /// Starts a gateway on a free port and waits until it listens.
    func gateway(_ label: String, _ extra: [String] = []) async throws -> GatewayProcess {
        let process = try ChildProcess("gateway", ["--brokers", brokers, "--port", "0", "--create-topics", "false",
                                                   "--api-key", TestKeys.admin] + extra,
                                       name: "\(name)-\(label)")
        children.withLock { $0.append(process) }
        let log = try await process.waitForLog("listening on", timeout: .seconds(30))
        let port = try #require(log.firstMatch(of: /listening on 127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) },
                                "no port in the log of \(label):\n\(log.suffix(2000))")
        return GatewayProcess(process: process, port: port)
    }

    /// Starts a fault-worker with its own execution log, watched from now on.
    func worker(_ workerID: String, label: String? = nil, _ extra: [String] = []) throws -> WorkerProcess {
        let label = label ?? workerID
        let executionLog = directory.appendingPathComponent("\(label).executions")
        watcher.add(executionLog, name: label)
        let process = try ChildProcess(FaultExecutables.faultWorker,
                                       ["--brokers", brokers, "--worker-id", workerID, "--execution-log", executionLog.path] + extra,
                                       name: "\(name)-\(label)")
        children.withLock { $0.append(process) }
        return WorkerProcess(process: process, workerID: workerID, executionLog: executionLog)
    }

    /// Stops every process still running (SIGTERM, then SIGKILL after `timeout`).
    func stopAll(timeout: Duration = .seconds(15)) async {
        let all = children.withLock { $0 }
        await withTaskGroup(of: Void.self) { group in
            for child in all where child.isRunning {
                group.addTask { await child.stop(SIGTERM, timeout: timeout) }
            }
        }
    }

    /// The watcher's wait, failing with what every process logged last.
    @discardableResult
    func waitUntil(_ what: String, timeout: Duration, _ condition: ([ExecutionLine]) -> Bool) async throws -> [ExecutionLine] {
        try await watcher.waitUntil(what, timeout: timeout, explain: { logTails() }, condition)
    }

    /// The end of every process's log, for failure messages.
    func logTails(_ characters: Int = 1500) -> String {
        children.withLock { $0 }.map { "--- \($0.name) (\($0.isRunning ? "running" : "exited")):\n\($0.log.suffix(characters))" }
            .joined(separator: "\n")
    }

    // MARK: Status topic

    /// Reads the status topic (independently of any gateway) until every job of
    /// `ids` has a terminal snapshot, or `timeout` passes.
    func waitForTerminal(_ ids: some Collection<JobID>, timeout: Duration) async throws -> [JobSnapshot] {
        let remaining = Mutex(Set(ids))
        if remaining.withLock({ $0.isEmpty }) { return [] }
        return try await system.statusEvents(timeout: timeout) { events in
            guard let last = events.last, last.status.isTerminal else { return false }
            return remaining.withLock { $0.remove(last.id); return $0.isEmpty }
        }
    }

    /// Every event of the status topic, up to its end as it is now.
    func allStatusEvents(timeout: Duration = .seconds(20)) async throws -> [JobSnapshot] {
        let total = try await system.recordCount(system.topics.status)
        return try await system.statusEvents(timeout: timeout) { $0.count >= total }
    }

    /// Where the start commands of `ids` are on the commands topic (read to its
    /// current end), to tell a command never stored from one never run.
    func commandLocations(_ ids: some Collection<JobID>) async throws -> [JobID: [String]] {
        let wanted = Set(ids)
        let total = try await system.recordCount(system.topics.commands)
        let reader = try KafkaTopicReader(configuration: system.kafka, topic: system.topics.commands, from: .beginning, logger: .quiet)
        let found = await withTaskGroup(of: [JobID: [String]]?.self) { group in
            group.addTask {
                var found: [JobID: [String]] = [:]
                var seen: Int64 = 0
                for await message in reader {
                    seen += 1
                    if let value = message.value, let command = try? WireFormat.decode(StartJobCommand.self, from: value),
                       wanted.contains(command.job.id) {
                        found[command.job.id, default: []].append("partition \(message.partition) offset \(message.offset)")
                    }
                    if seen >= total { break }
                }
                return found
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(10))
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            await reader.close()
            if let first { return first }
            return await group.next()! ?? [:]
        }
        return found
    }

    /// For failure messages about jobs that never ended: their status events and
    /// executions, where their commands are, and every process log line naming them.
    func diagnose(_ ids: [JobID], _ analysis: FaultAnalysis) async -> String {
        guard !ids.isEmpty else { return "" }
        let locations = (try? await commandLocations(ids)) ?? [:]
        let logs = children.withLock { $0 }.map { ($0.name, $0.log) }
        return ids.prefix(3).map { id in
            let mentions = logs.flatMap { name, log in
                log.split(separator: "\n").filter { $0.contains(id.rawValue) }.map { "  [\(name)] \($0)" }
            }
            return analysis.timeline([id]) + "\n  command: \(locations[id]?.joined(separator: ", ") ?? "NOT on the commands topic")\n"
                + mentions.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Prints the scenario's one line and checks the two figures every scenario
    /// must hold at zero.
    func report(_ analysis: FaultAnalysis, worstRecovery: Double) async {
        let lostDetails = await diagnose(analysis.lost, analysis)
        let line = "FAULT \(name) submitted=\(analysis.accepted.count) lost=\(analysis.lost.count) "
            + "executedAfterCompletion=\(analysis.executedAfterCompletion) worstRecovery=\(String(format: "%.2f", worstRecovery))"
        print(line)
        #expect(analysis.lost.isEmpty, """
            \(analysis.lost.count) of \(analysis.accepted.count) accepted jobs have no terminal state: \
            \(analysis.describe(analysis.lost.prefix(5)))
            \(lostDetails)
            \(logTails())
            """)
        #expect(analysis.conflicting.isEmpty, """
            \(analysis.conflicting.count) jobs show two different terminal statuses: \(analysis.describe(analysis.conflicting.prefix(5)))
            """)
        #expect(analysis.executedAfterCompletion == 0, """
            \(analysis.executedAfterCompletion) executions after completion: \
            \(analysis.afterCompletion.prefix(5).map { "\($0.key): \($0.value.joined(separator: "; "))" })
            \(analysis.timeline(analysis.afterCompletion.keys.prefix(3)))
            \(logTails())
            """)
    }
}

// MARK: Execution logs

/// One line of a fault-worker's execution log, with bounds on when it was
/// written: after `notBefore` (the previous read of its file, which did not
/// see it, began then) and before `notAfter` (the read that found it ended).
struct ExecutionLine: Sendable {
    enum Event: String, Sendable { case start, end }
    let event: Event
    let jobID: JobID
    let attempt: Int
    let pid: Int32
    /// The log file's label (one file per worker process).
    let file: String
    let notBefore: Date
    let notAfter: Date
}

/// Polls the execution logs every 20 ms, so each line gets a time window.
final class ExecutionLogWatcher: Sendable {
    private struct File {
        let url: URL
        let name: String
        var offset: UInt64 = 0
        var previousReadStart: Date
        /// When the last read ended inside a line: the lower bound for that line,
        /// which was being written before that read began.
        var partialLineSince: Date?
    }

    private struct State {
        var files: [File] = []
        var lines: [ExecutionLine] = []
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Registers a file before its writer starts, so its first lines are bounded too.
    func add(_ url: URL, name: String) {
        state.withLock { $0.files.append(File(url: url, name: name, previousReadStart: Date())) }
        ensureRunning()
    }

    private func ensureRunning() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self] in
                while !Task.isCancelled {
                    self?.poll()
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }
    }

    /// Reads what was appended since the last read of each file.
    func poll() {
        state.withLock { state in
            for index in state.files.indices {
                let readStart = Date()
                guard let handle = try? FileHandle(forReadingFrom: state.files[index].url) else {
                    state.files[index].previousReadStart = readStart
                    continue
                }
                defer { try? handle.close() }
                try? handle.seek(toOffset: state.files[index].offset)
                // A failed read says nothing about what the file held: the bound stays.
                let data: Data
                do { data = try handle.readToEnd() ?? Data() } catch { continue }
                let readEnd = Date()
                let notBefore = state.files[index].previousReadStart
                // The first line may be one a previous read saw only part of.
                let firstNotBefore = state.files[index].partialLineSince ?? notBefore
                // Only whole lines; a partial one is read again next time.
                guard let lastNewline = data.lastIndex(of: UInt8(ascii: "\n")) else {
                    if !data.isEmpty { state.files[index].partialLineSince = firstNotBefore }
                    state.files[index].previousReadStart = readStart
                    continue
                }
                let complete = data[data.startIndex...lastNewline]
                state.files[index].offset += UInt64(complete.count)
                for (number, raw) in String(decoding: complete, as: UTF8.self).split(separator: "\n").enumerated() {
                    let fields = raw.split(separator: " ")
                    guard fields.count == 4, let event = ExecutionLine.Event(rawValue: String(fields[0])),
                          let attempt = Int(fields[2]), let pid = Int32(fields[3]) else { continue }
                    state.lines.append(ExecutionLine(event: event, jobID: JobID(rawValue: String(fields[1])), attempt: attempt,
                                                     pid: pid, file: state.files[index].name,
                                                     notBefore: number == 0 ? firstNotBefore : notBefore, notAfter: readEnd))
                }
                state.files[index].partialLineSince = complete.count < data.count ? notBefore : nil
                state.files[index].previousReadStart = readStart
            }
        }
    }

    /// Every line read so far (polls once more first).
    var lines: [ExecutionLine] {
        poll()
        return state.withLock { $0.lines }
    }

    /// Stops polling after a last read.
    func stop() async {
        let running = task.withLock { task -> Task<Void, Never>? in defer { task = nil }; return task }
        running?.cancel()
        await running?.value
        poll()
    }

    deinit {
        task.withLock { $0?.cancel() }
    }

    /// Polls until `condition` holds on the lines read; fails at the deadline,
    /// saying what `explain` returns then.
    @discardableResult
    func waitUntil(_ what: String, timeout: Duration, explain: () -> String = { "" },
                   _ condition: ([ExecutionLine]) -> Bool) async throws -> [ExecutionLine] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = lines
            if condition(current) { return current }
            try #require(ContinuousClock.now < deadline,
                         "timed out after \(timeout) waiting until \(what); \(current.count) execution lines\n\(explain())")
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

extension [ExecutionLine] {
    /// Jobs started on `pid` whose attempt there has no `end` line: what the process held.
    func unfinished(on pid: Int32) -> [JobID: Int] {
        var held: [JobID: Int] = [:]
        for line in self where line.pid == pid && line.event == .start { held[line.jobID] = line.attempt }
        for line in self where line.pid == pid && line.event == .end && held[line.jobID] == line.attempt {
            held.removeValue(forKey: line.jobID)
        }
        return held
    }

    func starts(on pid: Int32) -> [ExecutionLine] { filter { $0.pid == pid && $0.event == .start } }
}

// MARK: Analysis

/// What the status topic and the execution logs say about the accepted jobs.
struct FaultAnalysis {
    let accepted: [JobID]
    /// Every job's folded state.
    let finals: JobTable
    /// Every terminal snapshot each job got, in topic order.
    let terminals: [JobID: [JobSnapshot]]
    let executions: [JobID: [ExecutionLine]]
    /// Every status event of each job, in topic order.
    let allEvents: [JobID: [JobSnapshot]]
    /// Accepted jobs without a terminal snapshot.
    let lost: [JobID]
    /// Jobs with two different terminal statuses.
    let conflicting: [JobID]
    /// For each job executed after it had completed, why we say so.
    let afterCompletion: [JobID: [String]]
    /// The number of executions after completion, over all jobs.
    let executedAfterCompletion: Int

    /// Snapshots carry times rounded to the millisecond (WireFormat), so a
    /// `finishedAt` may read up to that much earlier than it was.
    static let timestampPrecision: TimeInterval = 0.002

    /// - Parameter killedPIDs: processes killed with SIGKILL. An `end` line of
    ///   theirs whose attempt never got a terminal snapshot is an interrupted
    ///   attempt (killed between its handler's end and the publication of its
    ///   result), which the delivery promise allows to run again.
    init(accepted: [JobID], events: [JobSnapshot], executions lines: [ExecutionLine], killedPIDs: Set<Int32> = []) {
        self.accepted = accepted
        var table = JobTable()
        var terminals: [JobID: [JobSnapshot]] = [:]
        for event in events {
            table.apply(event)
            if event.status.isTerminal { terminals[event.id, default: []].append(event) }
        }
        finals = table
        self.terminals = terminals
        executions = Dictionary(grouping: lines, by: \.jobID)
        allEvents = Dictionary(grouping: events, by: \.id)
        lost = accepted.filter { terminals[$0] == nil }
        conflicting = accepted.filter { Set(terminals[$0]?.map(\.status) ?? []).count > 1 }

        var afterCompletion: [JobID: [String]] = [:]
        var total = 0
        for id in accepted {
            guard let ends = terminals[id], !ends.isEmpty else { continue }
            let completedAttempt = ends.map(\.attempt).min()!
            let completedAt = ends.compactMap(\.finishedAt).min() ?? ends.map(\.updatedAt).min()!
            let terminalAttempts = Set(ends.map(\.attempt))
            let lines = executions[id] ?? []
            var reasons: [String] = []

            // A start of a later attempt than the one that completed, or a start
            // provably written after the job's terminal snapshot was made.
            var lateStarts = 0
            for start in lines where start.event == .start {
                if start.attempt > completedAttempt {
                    lateStarts += 1
                    reasons.append("start of attempt \(start.attempt) on \(start.file) after it completed as attempt \(completedAttempt)")
                } else if start.notBefore > completedAt.addingTimeInterval(FaultAnalysis.timestampPrecision) {
                    lateStarts += 1
                    reasons.append("start of attempt \(start.attempt) on \(start.file) written after it finished at \(completedAt)")
                }
            }
            // More than one handler run reached its end (interrupted ones excepted).
            let completedRuns = lines.filter { line in
                line.event == .end && !(killedPIDs.contains(line.pid) && !terminalAttempts.contains(line.attempt))
            }
            let extraRuns = Swift.max(0, completedRuns.count - 1)
            if extraRuns > 0 {
                reasons.append("handler ended \(completedRuns.count) times: \(completedRuns.map { "\($0.file)#\($0.attempt)" })")
            }
            let extraTerminals = terminalAttempts.count - 1
            if extraTerminals > 0 { reasons.append("terminal snapshots for attempts \(terminalAttempts.sorted())") }

            let count = Swift.max(lateStarts, extraRuns, extraTerminals)
            if count > 0 {
                afterCompletion[id] = reasons
                total += count
            }
        }
        self.afterCompletion = afterCompletion
        executedAfterCompletion = total
    }

    func endLines(_ id: JobID) -> [ExecutionLine] { (executions[id] ?? []).filter { $0.event == .end } }
    func startLines(_ id: JobID) -> [ExecutionLine] { (executions[id] ?? []).filter { $0.event == .start } }

    /// Every status event and execution line of some jobs, with times, for failure messages.
    func timeline(_ ids: some Sequence<JobID>) -> String {
        let clock = DateFormatter()
        clock.dateFormat = "HH:mm:ss.SSS"
        clock.timeZone = TimeZone(identifier: "UTC")
        return ids.map { id in
            let snapshots = (allEvents[id] ?? []).map { event in
                "  \(event.status.rawValue)#\(event.attempt).\(event.sequence) by \(event.workerID ?? "-") "
                    + "updated \(clock.string(from: event.updatedAt)) finished \(event.finishedAt.map(clock.string) ?? "-")"
            }
            let lines = (executions[id] ?? []).map { line in
                "  \(line.event.rawValue) #\(line.attempt) pid \(line.pid) (\(line.file)) written in "
                    + "[\(clock.string(from: line.notBefore)), \(clock.string(from: line.notAfter))]"
            }
            return (["job \(id):"] + snapshots + lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// A short account of some jobs, for failure messages.
    func describe(_ ids: some Sequence<JobID>) -> String {
        ids.map { id in
            let final = finals[id].map { "\($0.status.rawValue)#\($0.attempt)@\($0.workerID ?? "-")" } ?? "no snapshot"
            let lines = (executions[id] ?? []).map { "\($0.event.rawValue)#\($0.attempt)@\($0.file)" }
            return "\(id): \(final) \(lines)"
        }.joined(separator: ", ")
    }
}

// MARK: Submitting

enum FaultJobs {
    static func sleep(steps: Int, stepMs: Int) -> String {
        #"{"type":"sleep","params":{"steps":\#(steps),"stepMs":\#(stepMs)}}"#
    }

    static let noop = #"{"type":"noop"}"#
}

extension GatewayProcess {
    /// Submits every body (each must be accepted with 202) over `lanes`
    /// connections; returns the ids in the order of `bodies`.
    func submitAll(_ bodies: [String], lanes: Int = 4) async throws -> [JobID] {
        let port = self.port
        let results = try await withThrowingTaskGroup(of: [(Int, JobID)].self) { group in
            for lane in 0..<Swift.min(lanes, bodies.count) {
                group.addTask {
                    try await TestClient.withClient(host: "127.0.0.1", port: port) { http in
                        let client = GatewayClient(http)
                        var accepted: [(Int, JobID)] = []
                        for index in stride(from: lane, to: bodies.count, by: lanes) {
                            accepted.append((index, try await client.submit(bodies[index]).id))
                        }
                        return accepted
                    }
                }
            }
            var all: [(Int, JobID)] = []
            for try await part in group { all += part }
            return all
        }
        return results.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

// MARK: Time

extension Date {
    /// Seconds from `earlier` to this date.
    func seconds(since earlier: Date) -> Double { timeIntervalSince(earlier) }
}

/// Polls `condition` every 20 ms until it holds; `false` at the deadline.
func pollUntil(timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
