import Foundation
import JobsCore
import Testing

@Suite("Prometheus metrics", .timeLimit(.minutes(2)))
struct MetricsTests {
    @Test("GET /metrics counts submitted, started and finished jobs, shows jobs by status, wait and run times, and the workers' lag")
    func jobMetrics() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            // Counters count what happens once the view is live.
            let deadline = ContinuousClock.now + .seconds(10)
            while try await client.request(.get, "/ready").status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            var ids: [JobID] = []
            for _ in 0..<3 { ids.append(try await client.submit(#"{"type":"noop"}"#).id) }
            let failing = try await client.submit(#"{"type":"sleep","params":{"steps":50,"stepMs":20},"timeoutMs":50}"#)
            for id in ids + [failing.id] { try await client.waitFor(id) { $0.status.isTerminal } }

            let reply = try await client.request(.get, "/metrics")
            #expect(reply.status == .ok)
            #expect(reply.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = reply.text
            func value(_ series: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            #expect(value(#"jobs_submitted_total{type="noop"}"#) == 3)
            #expect(value(#"jobs_submitted_total{type="sleep"}"#) == 1)
            #expect(value(#"jobs_started_total{type="noop"}"#) == 3)
            #expect(value(#"jobs_finished_total{type="noop",status="succeeded"}"#) == 3)
            #expect(value(#"jobs_finished_total{type="sleep",status="failed"}"#) == 1)
            #expect(value(#"jobs{status="succeeded"}"#) == 3)
            #expect(value(#"jobs{status="failed"}"#) == 1)
            #expect(value(#"jobs{status="running"}"#) == 0)
            #expect(value(#"jobs_queue_wait_seconds_count{type="noop"}"#) == 3)
            #expect(value(#"jobs_run_seconds_count{type="sleep"}"#) == 1)
            #expect(text.contains(#"jobs_commands_consumer_lag{group="jobs-workers"}"#))

            let families = Self.families(text)
            #expect(families.described.isSuperset(of: [
                "jobs", "jobs_submitted_total", "jobs_started_total", "jobs_finished_total", "jobs_queue_wait_seconds",
                "jobs_run_seconds", "jobs_commands_consumer_lag", "hb_requests", "http_server_request_duration",
                "http_server_active_requests",
            ]), "\(families)")
            #expect(families.typed == families.described, "every family says what it measures: \(families)")
            #expect(text.contains("# HELP jobs_finished_total Jobs seen ending, by final status.\n# TYPE jobs_finished_total counter\n"))
        }
    }

    /// The metric families that have a `# TYPE` line, and those that have a `# HELP` line.
    static func families(_ exposition: String) -> (typed: Set<Substring>, described: Set<Substring>) {
        let lines = exposition.split(separator: "\n")
        func names(_ prefix: String) -> Set<Substring> {
            Set(lines.filter { $0.hasPrefix(prefix) }.compactMap { $0.dropFirst(prefix.count).split(separator: " ").first })
        }
        return (names("# TYPE "), names("# HELP "))
    }

    @Test("a live record whose times are centuries apart is folded and measured, not a crash: anyone may write the status topic")
    func centuriesApartAreMeasured() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            let deadline = ContinuousClock.now + .seconds(10)
            while try await client.request(.get, "/ready").status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            // Year 1 to year 9999: about 3.2e20 ns, past Int64.
            let created = Date(timeIntervalSinceReferenceDate: -63_113_904_000)
            let ended = Date(timeIntervalSinceReferenceDate: 252_423_993_599)
            var job = JobSnapshot.queued(type: "noop", params: [:], at: created)
            job = try job.started(attempt: 1, by: "w", at: created)
            job = try job.succeeded(result: nil, at: ended)
            try await system.publish(job)
            let read = try await client.waitFor(job.id) { $0.status == .succeeded }
            #expect(read.finishedAt == job.finishedAt)
            let metrics = try await client.request(.get, "/metrics").text
            #expect(metrics.contains(#"jobs_run_seconds_count{type="noop"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"jobs_run_seconds_bucket{type="noop",le="+Inf"} 1"#), "\(metrics)")
        }
    }

    @Test("HTTP metrics count requests by route, method and status, and an open event stream is an active request until it ends")
    func requestMetrics() async throws {
        try await TestCluster().withGateway { client in
            let port = try #require(client.port)
            // Long enough to outlast a loaded machine: the cancel below ends it, and its stream.
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":600,"stepMs":100}}"#)
            for _ in 0..<3 { #expect(try await client.request(.get, "/jobs/\(job.id)").status == .ok) }
            #expect(try await client.request(.get, "/jobs/no-such-job").status == .notFound)

            /// The value of the series named `name` whose labels include every one of `labels`.
            func value(_ name: String, _ labels: [String]) async throws -> Double? {
                let text = try await client.request(.get, "/metrics").text
                return text.split(separator: "\n").first { line in
                    line.hasPrefix(name + "{") && labels.allSatisfy { line.contains($0) }
                }.flatMap { Double($0.split(separator: " ").last ?? "") }
            }
            let read = [#"http_route="/jobs/{id}""#, #"http_request_method="GET""#]
            #expect(try await value("hb_requests", read + [#"http_response_status_code="200""#]) == 3)
            #expect(try await value("hb_requests", read + [#"http_response_status_code="404""#]) == 1)
            #expect(try await value("http_server_request_duration_count", read + [#"http_response_status_code="200""#]) == 3)

            // While a stream is open, it and the /metrics request reading the gauge are active.
            let stream = Task { try await readEventStream(port: port, "/jobs/\(job.id)/events") }
            let active = [#"http_request_method="GET""#]
            let deadline = ContinuousClock.now + .seconds(5)
            while try await value("http_server_active_requests", active) != 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await value("http_server_active_requests", active) == 2)
            #expect(try await client.request(.post, "/jobs/\(job.id)/cancel").status == .accepted)
            #expect(try await stream.value.ended)
            #expect(try await value("http_server_active_requests", active) == 1)
            let streamed = [#"http_route="/jobs/{id}/events""#, #"http_response_status_code="200""#]
            #expect(try await value("http_server_request_duration_count", streamed) == 1)
        }
    }

    @Test("hb_request_errors counts each error answer under its route and status code, and no success has a series")
    func requestErrorMetrics() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            #expect(try await client.request(.get, "/jobs/\(job.id)").status == .ok)
            for _ in 0..<2 { #expect(try await client.request(.get, "/jobs/no-such-job").status == .notFound) }
            #expect(try await client.request(.post, "/jobs", json: #"{"type":"noop""#).status == .badRequest)
            #expect(try await client.request(.get, "/jobs?state=running").status == .badRequest)
            #expect(try await client.request(.get, "/nowhere").status == .notFound)
            #expect(try await client.request(.delete, "/jobs").status == .methodNotAllowed)

            let lines = try await client.request(.get, "/metrics").text.split(separator: "\n")
            /// The value of the `hb_request_errors` series with exactly these labels.
            func errors(_ route: String, _ method: String, _ status: Int) -> Double? {
                let series = #"hb_request_errors{http_route="\#(route)",http_request_method="\#(method)",error_type="\#(status)"} "#
                return lines.first { $0.hasPrefix(series) }.flatMap { Double($0.dropFirst(series.count)) }
            }
            #expect(errors("/jobs/{id}", "GET", 404) == 2)
            #expect(errors("/jobs", "POST", 400) == 1)
            #expect(errors("/jobs", "GET", 400) == 1)
            #expect(errors("NotFound", "GET", 404) == 1)
            #expect(errors("NotFound", "DELETE", 405) == 1)
            let series = lines.filter { $0.hasPrefix("hb_request_errors{") }
            #expect(series.count == 5, "\(series)")
            #expect(!series.contains { $0.contains(#"error_type="2"#) }, "a success counted as an error: \(series)")
            #expect(series.allSatisfy { !$0.hasSuffix(" 0") }, "every series counts something: \(series)")
            #expect(lines.contains("# HELP hb_request_errors HTTP requests answered with an error status; error_type is the status code."))
        }
    }
}
