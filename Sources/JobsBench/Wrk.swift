import Foundation
import JobsCore
import Subprocess

/// Debian's `wrk` as the load generator of the HTTP workloads.
///
/// Written in C, it leaves the two cores to the system under test: the
/// in-process AsyncHTTPClient loop it replaced took 15 % of the machine for
/// submits and 40 % for reads. The Lua script below stops each thread after its
/// share of a fixed count, checks every status, and prints one JSON line.
struct Wrk {
    struct Result: Decodable {
        let requests: Int
        let seconds: Double
        let p50_ms: Double
        let p99_ms: Double
        let unexpected_status: Int
        let socket_errors: Int
        /// wrk's CPU time over the run's wall time and all cores.
        var cpuShare = 0.0
        /// wrk's CPU time (user and system), in seconds.
        var cpuSeconds = 0.0

        enum CodingKeys: String, CodingKey {
            case requests, seconds, p50_ms, p99_ms, unexpected_status, socket_errors
        }

        var requestsPerSecond: Double { Double(requests) / seconds }

        /// The rate of several runs taken together.
        static func requestsPerSecond(_ runs: [Result]) -> Double {
            Double(runs.map(\.requests).reduce(0, +)) / runs.map(\.seconds).reduce(0, +)
        }
    }

    var connections = 64
    var threads = 2

    /// Sends requests to `base` until `requests` are answered (or `duration` ends,
    /// whichever is first); each status must be `expectedStatus`. Runs `wrk`
    /// as a subprocess, so no thread of the cooperative pool waits on it.
    ///
    /// - Parameter paths: one is chosen per request in turn; nil sends `path` each time.
    func run(base: String, method: String = "GET", path: String = "/", body: String? = nil, paths: [String]? = nil,
             expectedStatus: Int, requests: Int? = nil, duration: Duration) async throws -> Result {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = folder.appendingPathComponent("load.lua")
        try Data(Self.script.utf8).write(to: script)
        var environment: [Environment.Key: String] = [
            "BENCH_METHOD": method, "BENCH_TOKEN": benchToken, "BENCH_BODY": body ?? "",
            "BENCH_STATUS": String(expectedStatus),
            "BENCH_LIMIT": requests.map { String(($0 + threads - 1) / threads) } ?? "0",
        ]
        if let paths {
            let file = folder.appendingPathComponent("paths.txt")
            try Data((paths.joined(separator: "\n") + "\n").utf8).write(to: file)
            environment["BENCH_PATHS"] = file.path
        }

        let cpuBefore = childrenCPUSeconds()
        let started = ContinuousClock.now
        let printed: String
        let status: TerminationStatus
        do {
            let run = try await Subprocess.run(
                .path("/usr/bin/wrk"),
                arguments: ["-t\(threads)", "-c\(connections)", "-d\(max(1, Int(duration.timeInterval.rounded(.up))))s",
                            "--timeout", "30s", "-s", script.path, base + path],
                environment: .inherit.updating(environment),
                input: .none, output: .sequence, error: .discarded
            ) { execution in
                // wrk sleeps out its whole duration even when every thread has
                // stopped at its count; SIGINT makes it report at once.
                var text = ""
                var interrupted = false
                for try await buffer in execution.standardOutput {
                    text += buffer.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
                    if !interrupted, text.components(separatedBy: "thread-done\n").count > threads {
                        interrupted = true
                        try? execution.send(signal: .interrupt)
                    }
                }
                return text
            }
            printed = run.closureResult
            status = run.terminationStatus
        } catch {
            throw BenchError("cannot run /usr/bin/wrk (apt-get install wrk): \(error)")
        }
        let wall = (ContinuousClock.now - started).timeInterval
        guard let line = printed.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw BenchError("wrk printed no result (\(status)): \(printed)")
        }
        var result = try JSONDecoder().decode(Result.self, from: Data(line.utf8))
        result.cpuSeconds = childrenCPUSeconds() - cpuBefore
        result.cpuShare = result.cpuSeconds / (wall * Double(ProcessInfo.processInfo.activeProcessorCount))
        guard result.unexpected_status == 0, result.socket_errors == 0 else {
            throw BenchError("\(method) \(path): \(result.unexpected_status) answers were not \(expectedStatus), \(result.socket_errors) socket errors")
        }
        return result
    }

    /// Globals (not locals) where `done` reads them back from each thread.
    static let script = #"""
        -- Written by jobs-bench (Sources/JobsBench/Wrk.swift).
        local limit = tonumber(os.getenv("BENCH_LIMIT"))
        local expected = tonumber(os.getenv("BENCH_STATUS"))
        wrk.method = os.getenv("BENCH_METHOD")
        wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
        local body = os.getenv("BENCH_BODY")
        if body ~= "" then
          wrk.body = body
          wrk.headers["Content-Type"] = "application/json"
        end

        local paths = {}
        local pathsFile = os.getenv("BENCH_PATHS")
        if pathsFile then
          for line in io.lines(pathsFile) do paths[#paths + 1] = line end
        end

        answered, unexpected, sent = 0, 0, 0
        if #paths > 0 then
          function request()
            sent = sent + 1
            return wrk.format(nil, paths[(sent % #paths) + 1])
          end
        end

        function response(status, headers, body)
          answered = answered + 1
          if status ~= expected then unexpected = unexpected + 1 end
          if limit > 0 and answered == limit then
            io.write("thread-done\n")
            io.flush()
            wrk.thread:stop()
          end
        end

        local threads = {}
        function setup(thread) table.insert(threads, thread) end

        function done(summary, latency, requests)
          local wrong = 0
          for _, thread in ipairs(threads) do wrong = wrong + thread:get("unexpected") end
          local e = summary.errors
          io.write(string.format(
            '{"requests":%d,"seconds":%.6f,"p50_ms":%.3f,"p99_ms":%.3f,"unexpected_status":%d,"socket_errors":%d}\n',
            summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
            wrong, e.connect + e.read + e.write + e.timeout))
        end
        """#
}

/// CPU time (user + system) of this process's ended and reaped children.
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
