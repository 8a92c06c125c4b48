import ArgumentParser
import AsyncHTTPClient
import Foundation
import JobsCore
import NIOCore
import NIOHTTP1

/// `jobs-bench`: measures the system from the outside, as separate processes
/// driven over HTTP, and prints one JSON line per workload.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs-bench",
        abstract: "Measures the job system; prints one JSON line per workload.",
        subcommands: [RoundTrip.self]
    )
}

/// One `noop` job at a time: POST, then GET until it is `succeeded`.
struct RoundTrip: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roundtrip",
        abstract: "Round-trip time of one noop job, POST to succeeded seen by GET, against `gateway --embedded`."
    )

    @Option(help: "Jobs to time, one after another.")
    var count = 200

    @Option(help: "Jobs run first and not timed (connections, group join, JIT-free warm caches).")
    var warmup = 20

    @Option(help: "Port for the gateway under test.")
    var port = 18080

    @Option(help: "The gateway executable (default: beside this one).")
    var gateway: String?

    func run() async throws {
        let executable = gateway ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gateway").path
        let system = try SystemUnderTest(executable: executable, arguments: ["--embedded", "--port", "\(port)", "--log-level", "warning"])
        defer { system.stop() }
        let base = "http://127.0.0.1:\(port)"
        let client = HTTPClient.shared

        try await waitUntilReady(client, base: base)
        var wallMs: [Double] = []
        var serverMs: [Double] = []
        for index in 0..<(warmup + count) {
            let started = ContinuousClock.now
            let accepted = try await send(client, "POST", base + "/jobs", body: #"{"type":"noop"}"#)
            guard accepted.status == .accepted else { throw BenchError("POST answered \(accepted.status)") }
            var snapshot = try accepted.snapshot
            while snapshot.status != .succeeded {
                guard !snapshot.status.isTerminal else { throw BenchError("job ended \(snapshot.status)") }
                snapshot = try await send(client, "GET", base + "/jobs/\(snapshot.id)").snapshot
            }
            guard index >= warmup else { continue }
            wallMs.append((ContinuousClock.now - started).milliseconds)
            serverMs.append((snapshot.finishedAt ?? snapshot.updatedAt).timeIntervalSince(snapshot.createdAt) * 1000)
        }
        printLine(workload: "roundtrip", [
            "jobs": Double(count),
            "p50_ms": percentile(wallMs, 50), "p99_ms": percentile(wallMs, 99),
            "min_ms": wallMs.min() ?? 0, "max_ms": wallMs.max() ?? 0,
            "server_p50_ms": percentile(serverMs, 50),
        ])
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The system as a child process, stopped (SIGTERM) when the benchmark ends.
final class SystemUnderTest {
    private let process = Process()

    init(executable: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
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
    if let body {
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
    }
    let response = try await client.execute(request, timeout: .seconds(30))
    return Reply(status: response.status, body: try await response.body.collect(upTo: 1 << 20))
}

func waitUntilReady(_ client: HTTPClient, base: String, timeout: Duration = .seconds(60)) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let reply = try? await send(client, "GET", base + "/ready"), reply.status == .ok { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw BenchError("the gateway was not ready within \(timeout)")
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count - 1)).rounded())
    return sorted[rank]
}

/// One JSON line: the workload's name, then its figures rounded to 0.01.
func printLine(workload: String, _ figures: [String: Double]) {
    let rendered = figures.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\(($0.value * 100).rounded() / 100)" }
    print("{\"workload\":\"\(workload)\"," + rendered.joined(separator: ",") + "}")
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
