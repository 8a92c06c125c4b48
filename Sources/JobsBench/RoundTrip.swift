import ArgumentParser
import AsyncHTTPClient
import Foundation
import JobsCore

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
        let system = try ChildProcess(executable, ["--embedded", "--port", "\(port)", "--log-level", "warning"], name: "gateway")
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

