import AsyncHTTPClient
import Foundation
import JobsCore
import NIOCore
import NIOHTTP1

/// A process of the system under test, started from the executables beside
/// this one and stopped (SIGTERM, then SIGKILL) when the benchmark is done.
final class ChildProcess: @unchecked Sendable {
    private let process = Process()
    private let output = Pipe()
    let name: String

    init(_ executable: String, _ arguments: [String], name: String, environment: [String: String] = [:]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        if let folder = ChildLogs.folder {
            let path = "\(folder)/\(name)-\(UUID().uuidString.prefix(8)).log"
            guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
                throw BenchError("cannot write \(path) (JOBS_BENCH_LOGS)")
            }
            process.standardError = file
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The first line the process prints on standard output.
    func firstLine(timeout: Duration = .seconds(30)) throws -> String {
        var bytes: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            bytes += chunk
            if let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) {
                return String(decoding: bytes[..<newline], as: UTF8.self)
            }
        }
        throw BenchError("\(name) printed no line")
    }

    /// Resident memory in bytes, from /proc.
    var residentBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kib * 1024
    }

    /// CPU time (user and system) so far, in seconds, from /proc.
    var cpuSeconds: Double {
        // Fields 14 and 15 after the parenthesized command name, in clock ticks.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(40)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// Locates the package's executables next to this benchmark's own binary.
func sibling(_ name: String) -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
}

/// The child processes' logs: none, or with `JOBS_BENCH_LOGS=<folder>` each
/// one's standard error in a file of its own there, at info level, to find out
/// afterwards what a run that went wrong went through (rebalances, retries).
enum ChildLogs {
    static let folder = ProcessInfo.processInfo.environment["JOBS_BENCH_LOGS"]
    static var level: String { folder == nil ? "error" : "info" }
}

/// A separate broker process, a gateway, and `workers` worker processes.
final class Deployment {
    let broker: ChildProcess
    let bootstrap: String
    let gateway: ChildProcess
    var workers: [ChildProcess] = []
    let base: String
    let client: HTTPClient

    init(port: Int, partitions: Int, workers workerCount: Int, concurrency: Int, gatewayArguments: [String] = []) async throws {
        broker = try ChildProcess(sibling("jobs-bench"), ["broker", "--partitions", "\(partitions)"], name: "broker")
        bootstrap = try broker.firstLine()
        gateway = try ChildProcess(sibling("gateway"), ["--brokers", bootstrap, "--port", "\(port)", "--create-topics", "false",
                                       "--api-key", benchAPIKey,
                                                        "--log-level", ChildLogs.level] + gatewayArguments, name: "gateway")
        base = "http://127.0.0.1:\(port)"
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)))
        try await waitUntilReady(client, base: base)
        for index in 0..<workerCount { try await addWorker(index: index, concurrency: concurrency) }
    }

    /// Starts a worker and waits until the gateway hears its heartbeat and it owns partitions.
    func addWorker(index: Int, concurrency: Int) async throws {
        let worker = try ChildProcess(sibling("worker"), ["--brokers", bootstrap, "--concurrency", "\(concurrency)",
                                                          "--worker-id", "bench-\(index)", "--log-level", ChildLogs.level], name: "worker-\(index)")
        workers.append(worker)
    }

    /// Waits until `count` workers are alive and the group has settled (a noop job round-trips).
    func waitForWorkers(_ count: Int, timeout: Duration = .seconds(90)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let reply = try await send(client, "GET", base + "/workers")
            let alive = String(buffer: reply.body).components(separatedBy: "\"alive\":true").count - 1
            if alive >= count { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        // The embedded broker rebalances for several seconds after members join:
        // wait until a job of every partition has run, i.e. the group is stable.
        try await Task.sleep(for: .seconds(12))
        let probe = try await send(client, "POST", base + "/jobs", body: #"{"type":"noop"}"#).snapshot
        var snapshot = probe
        while snapshot.status != .succeeded, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            snapshot = try await send(client, "GET", base + "/jobs/\(probe.id)").snapshot
        }
    }

    /// CPU time each part of the system has used so far.
    func cpuUsage() -> CPUUsage {
        CPUUsage(gateway: gateway.cpuSeconds, workers: workers.map(\.cpuSeconds).reduce(0, +), broker: broker.cpuSeconds)
    }

    func shutdown() async {
        workers.forEach { $0.stop() }
        gateway.stop()
        broker.stop()
        try? await client.shutdown()
    }
}

/// CPU seconds by part of the system, to say where a workload's time went.
///
/// On a saturated machine, the total CPU time per job bounds the rate: two
/// cores spending 400 µs per job cannot move more than 5,000 jobs/s, however
/// the work is spread.
struct CPUUsage {
    var gateway: Double
    var workers: Double
    var broker: Double

    static func - (after: CPUUsage, before: CPUUsage) -> CPUUsage {
        CPUUsage(gateway: after.gateway - before.gateway, workers: after.workers - before.workers, broker: after.broker - before.broker)
    }

    /// Figures for a workload's line: µs of CPU per job by part, their total
    /// with the load generator's, and how busy the machine was over `seconds`.
    func figures(jobs: Double, loadGenerator: Double, seconds: Double) -> [String: Double] {
        let perJob = { (cpu: Double) in cpu / max(jobs, 1) * 1e6 }
        let total = gateway + workers + broker + loadGenerator
        return [
            "cpu_us_per_job_gateway": perJob(gateway), "cpu_us_per_job_workers": perJob(workers),
            "cpu_us_per_job_broker": perJob(broker), "cpu_us_per_job_loadgen": perJob(loadGenerator),
            "cpu_us_per_job_total": perJob(total),
            "machine_busy": total / (seconds * Double(ProcessInfo.processInfo.activeProcessorCount)),
        ]
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Reply {
    let status: HTTPResponseStatus
    let body: ByteBuffer
    var snapshot: JobSnapshot {
        get throws { try WireFormat.decode(JobSnapshot.self, from: Array(buffer: body)) }
    }
}

func send(_ client: HTTPClient, _ method: String, _ url: String, body: String? = nil) async throws -> Reply {
    var request = HTTPClientRequest(url: url)
    request.method = HTTPMethod(rawValue: method)
    request.headers.add(name: "authorization", value: "Bearer \(benchToken)")
    if let body {
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await client.execute(request, timeout: .seconds(30))
    return Reply(status: response.status, body: try await response.body.collect(upTo: 1 << 20))
}

func waitUntilReady(_ client: HTTPClient, base: String, timeout: Duration = .seconds(120)) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let reply = try? await send(client, "GET", base + "/ready"), reply.status == .ok { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw BenchError("the gateway was not ready within \(timeout)")
}

/// A value of the gateway's /metrics, e.g. `jobs{status="succeeded"}`.
func metric(_ client: HTTPClient, base: String, _ series: String) async throws -> Double {
    let text = String(buffer: try await send(client, "GET", base + "/metrics").body)
    return text.split(separator: "\n").first { $0.hasPrefix(series + " ") }
        .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
}

/// Runs `total` requests over `connections` concurrent loops; returns latencies in ms.
func load(connections: Int, total: Int? = nil, duration: Duration? = nil,
          _ request: @escaping @Sendable (Int) async throws -> Void) async throws -> (latencies: [Double], seconds: Double) {
    let started = ContinuousClock.now
    let counter = Counter()
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
        for _ in 0..<connections {
            group.addTask {
                var mine: [Double] = []
                while true {
                    let index = counter.next()
                    if let total, index >= total { break }
                    if let duration, ContinuousClock.now - started >= duration { break }
                    let begin = ContinuousClock.now
                    try await request(index)
                    mine.append((ContinuousClock.now - begin).milliseconds)
                }
                return mine
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
    return (latencies, (ContinuousClock.now - started).timeInterval)
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[Int((p / 100 * Double(sorted.count - 1)).rounded())]
}

/// One JSON line: the workload's name, then its figures rounded to 0.01.
func printLine(workload: String, _ figures: [String: Double]) {
    let rendered = figures.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\(($0.value * 100).rounded() / 100)" }
    writeLine("{\"workload\":\"\(workload)\"," + rendered.joined(separator: ",") + "}")
}

/// Writes a line to standard output at once (it may be a pipe read line by line).
func writeLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

extension Duration {
    /// Fractional, for latencies.
    var milliseconds: Double { timeInterval * 1000 }
}

/// The key the benchmark's gateways accept and its clients send.
let benchToken = "jobs-bench-token-0123456789"
let benchAPIKey = "bench:admin:\(benchToken)"
