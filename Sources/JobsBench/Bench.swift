import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import JobsCore
import KafkaClient
import Logging
import NIOCore

/// `jobs-bench`: measures the system from the outside, as separate processes
/// (broker, gateway, workers) driven over HTTP from this one, and prints one
/// JSON line per workload.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs-bench",
        abstract: "Measures the job system; prints one JSON line per workload.",
        subcommands: [All.self, RoundTrip.self, Broker.self, ReferenceServer.self]
    )
}

/// Every workload of the README's "Benchmark" section, in order, each bounded in count and time.
struct All: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Runs every workload (use --quick for a smoke run of seconds).")

    @Flag(help: "Small counts and short durations: checks that the benchmark works, measures nothing.")
    var quick = false

    @Option(help: "Workloads to run, comma-separated: submit,e2e,cancel,reads,memory,scaleout")
    var only = "submit,e2e,cancel,reads,memory,scaleout"

    func run() async throws {
        let wanted = Set(only.split(separator: ",").map(String.init))
        let jobs = quick ? 500 : 20_000
        // Each HTTP workload gets a deployment of its own, so none measures what
        // the ones before it left behind: on one shared deployment, cancel's p99
        // rose from about 15 ms to 80-125 ms after 40,000 jobs (see the README).
        func fresh(_ body: (Deployment) async throws -> Void) async throws {
            let system = try await Deployment(port: 18180, partitions: 12, workers: 2, concurrency: 128)
            try await system.waitForWorkers(2)
            do { try await body(system) } catch { await system.shutdown(); throw error }
            await system.shutdown()
        }
        if wanted.contains("submit") { try await fresh { try await submit($0, jobs: jobs) } }
        if wanted.contains("e2e") { try await fresh { try await endToEnd($0, jobs: jobs) } }
        if wanted.contains("cancel") { try await fresh { try await cancel($0, jobs: quick ? 20 : 200) } }
        if wanted.contains("reads") {
            try await fresh { system in
                try await reads(system, ids: try await submitted(system, jobs: 1000), duration: quick ? .seconds(1) : .seconds(10))
            }
        }
        if wanted.contains("memory") { try await memory(jobs: quick ? 10_000 : 1_000_000) }
        if wanted.contains("scaleout") { try await scaleOut(jobs: quick ? 100 : 1_000) }
    }

    /// 1. POST /jobs (noop) at 64 connections.
    func submit(_ system: Deployment, jobs: Int) async throws {
        let cpuBefore = system.cpuUsage(), started = ContinuousClock.now
        let result = try await Wrk().run(base: system.base, method: "POST", path: "/jobs", body: #"{"type":"noop"}"#,
                                   expectedStatus: 202, requests: jobs, duration: .seconds(120))
        // The workers run the jobs meanwhile: their CPU time counts too.
        let cpu = (system.cpuUsage() - cpuBefore).figures(jobs: Double(result.requests), loadGenerator: result.cpuSeconds,
                                                          seconds: (ContinuousClock.now - started).timeInterval)
        printLine(workload: "submit", [
            "requests": Double(result.requests), "requests_per_s": result.requestsPerSecond,
            "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "loadgen_cpu_share": result.cpuShare,
        ].merging(cpu) { first, _ in first })
    }

    /// 2. From the first POST until every job is `succeeded` in the view.
    ///
    /// The gateway's own count of accepted jobs says how many must succeed: wrk
    /// stops after a count of answers, and a request in flight then may still be accepted.
    func endToEnd(_ system: Deployment, jobs: Int) async throws {
        try await drain(system)
        let accepted = #"jobs_submitted_total{type="noop"}"#, succeeded = #"jobs{status="succeeded"}"#
        let acceptedBefore = try await metric(system.client, base: system.base, accepted)
        let succeededBefore = try await metric(system.client, base: system.base, succeeded)
        let cpuBefore = system.cpuUsage()
        let started = ContinuousClock.now
        let load = try await Wrk().run(base: system.base, method: "POST", path: "/jobs", body: #"{"type":"noop"}"#,
                          expectedStatus: 202, requests: jobs, duration: .seconds(120))
        // Requests wrk left in flight are still being accepted for a moment: the
        // count of accepted jobs must hold still for 400 ms before the run ends.
        // The time is taken when the last accepted job succeeded, not after that wait.
        var total = 0.0, done = 0.0
        var totalSince = ContinuousClock.now
        var finished: ContinuousClock.Instant?
        let deadline = ContinuousClock.now + .seconds(300)
        while ContinuousClock.now < deadline {
            let now = try await metric(system.client, base: system.base, accepted) - acceptedBefore
            if now != total { (total, totalSince, finished) = (now, .now, nil) }
            done = try await metric(system.client, base: system.base, succeeded) - succeededBefore
            if done >= total {
                finished = finished ?? .now
                if ContinuousClock.now - totalSince >= .milliseconds(400) { break }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let seconds = ((finished ?? .now) - started).timeInterval
        let cpu = (system.cpuUsage() - cpuBefore).figures(jobs: done, loadGenerator: load.cpuSeconds, seconds: seconds)
        printLine(workload: "e2e", ["jobs": total, "jobs_per_s": done / seconds, "lost": total - done, "seconds": seconds]
            .merging(cpu) { first, _ in first })
    }

    /// `jobs` noop jobs submitted one at a time, for the reads to read.
    func submitted(_ system: Deployment, jobs: Int) async throws -> [JobID] {
        var ids: [JobID] = []
        for _ in 0..<jobs {
            ids.append(try await send(system.client, "POST", system.base + "/jobs", body: #"{"type":"noop"}"#).snapshot.id)
        }
        return ids
    }

    /// 3. Long sleep jobs, all running, cancelled one by one.
    func cancel(_ system: Deployment, jobs: Int) async throws {
        try await drain(system)
        var ids: [JobID] = []
        for _ in 0..<jobs {
            ids.append(try await send(system.client, "POST", system.base + "/jobs",
                                      body: #"{"type":"sleep","params":{"steps":100000,"stepMs":10}}"#).snapshot.id)
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await metric(system.client, base: system.base, #"jobs{status="running"}"#) < Double(jobs) {
            guard ContinuousClock.now < deadline else { throw BenchError("the sleep jobs did not all start") }
            try await Task.sleep(for: .milliseconds(50))
        }
        var latencies: [Double] = []
        var late = 0
        for id in ids {
            let started = ContinuousClock.now
            _ = try await send(system.client, "POST", system.base + "/jobs/\(id)/cancel")
            // Bounded: a cancel not seen within 10 s counts as 10 s, and as late.
            while try await send(system.client, "GET", system.base + "/jobs/\(id)").snapshot.status != .cancelled,
                  ContinuousClock.now - started < .seconds(10) {}
            let latency = (ContinuousClock.now - started).milliseconds
            if latency >= 10_000 { late += 1 }
            latencies.append(latency)
        }
        printLine(workload: "cancel", ["jobs": Double(jobs), "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                                       "not_seen_within_10s": Double(late)])
    }

    /// 4. GET /jobs/{id} at 64 connections, beside a bare Hummingbird route measured the same way.
    ///
    /// Each is measured in two halves, in turn, so that a change in the machine's
    /// speed during the run weighs on both alike; wrk's script picks each request's
    /// path from a list of the same length for both, so the load costs the same.
    /// Latencies are the worse half's.
    func reads(_ system: Deployment, ids: [JobID], duration: Duration) async throws {
        let reference = try ChildProcess(sibling("jobs-bench"), ["reference-server", "--port", "18190"], name: "reference")
        defer { reference.stop() }
        try await waitUntilReady(system.client, base: "http://127.0.0.1:18190")
        let jobPaths = ids.map { "/jobs/\($0)" }
        let referencePaths = Array(repeating: "/ready", count: jobPaths.count)
        var reads: [Wrk.Result] = []
        var bare: [Wrk.Result] = []
        for _ in 0..<2 {
            reads.append(try await Wrk().run(base: system.base, paths: jobPaths, expectedStatus: 200, duration: duration / 2))
            bare.append(try await Wrk().run(base: "http://127.0.0.1:18190", paths: referencePaths, expectedStatus: 200,
                                            duration: duration / 2))
        }
        let rate = Wrk.Result.requestsPerSecond(reads)
        let referenceRate = Wrk.Result.requestsPerSecond(bare)
        printLine(workload: "reads", [
            "requests_per_s": rate, "p50_ms": reads.map(\.p50_ms).max()!, "p99_ms": reads.map(\.p99_ms).max()!,
            "reference_requests_per_s": referenceRate, "reference_p99_ms": bare.map(\.p99_ms).max()!,
            "share_of_reference": rate / referenceRate,
            "share_of_reference_first_half": reads[0].requestsPerSecond / bare[0].requestsPerSecond,
            "share_of_reference_second_half": reads[1].requestsPerSecond / bare[1].requestsPerSecond,
            "loadgen_cpu_share": reads.map(\.cpuShare).reduce(0, +) / Double(reads.count),
        ])
    }

    /// 5. A gateway's memory with `jobs` ended jobs in its view, and its time to ready.
    func memory(jobs: Int) async throws {
        // The embedded broker keeps at most 5 MiB (or 100,000 batches) per partition and
        // deletes the oldest beyond that (librdkafka's mock cluster): 128 partitions hold
        // a million snapshots of about 400 bytes.
        let broker = try ChildProcess(sibling("jobs-bench"), ["broker", "--partitions", "128"], name: "broker")
        defer { broker.stop() }
        let bootstrap = try broker.firstLine()
        let client = HTTPClient.shared
        func startGateway(_ port: Int) async throws -> (ChildProcess, Duration) {
            let started = ContinuousClock.now
            let gateway = try ChildProcess(sibling("gateway"), ["--brokers", bootstrap, "--port", "\(port)", "--create-topics", "false",
                                       "--api-key", benchAPIKey,
                                                                "--log-level", ChildLogs.level], name: "gateway")
            try await waitUntilReady(client, base: "http://127.0.0.1:\(port)", timeout: .seconds(600))
            return (gateway, ContinuousClock.now - started)
        }
        let (empty, _) = try await startGateway(18200)
        try await Task.sleep(for: .seconds(1))
        let emptyBytes = empty.residentBytes
        empty.stop()

        // A bulk load, in large batches. The embedded broker answers a fetch with one batch per
        // partition, and finds it by walking the partition's list of batches from the first
        // (librdkafka's mock; a real broker has an offset index): written in small batches, the
        // replay was quadratic in them and measured the embedded broker, at 40 % of both cores,
        // rather than the gateway (docs/profiles/gateway-catch-up.txt).
        let bulk = ["linger.ms": "100", "batch.num.messages": "10000", "batch.size": "4000000",
                    // Messages may wait in the queue far longer than a request would.
                    "message.timeout.ms": "900000"]
        let producer = try KafkaProducer(configuration: KafkaConfiguration(bootstrapServers: bootstrap, properties: bulk),
                                         topics: ["jobs.status"], logger: Logger(label: "bench"))
        let now = Date()
        let encoder = WireFormat.encoder()
        for index in 0..<jobs {
            let id = JobID.generate()
            var job = JobSnapshot.queued(id: id, type: "noop", params: [:], at: now)
            job = try job.started(attempt: 1, by: "bench-\(index % 4)", at: now).succeeded(result: nil, at: now)
            try producer.post(topic: "jobs.status", key: Array(id.rawValue.utf8), value: Array(encoder.encode(job)))
        }
        await producer.shutdown(flushTimeout: .seconds(120))

        let (full, readyAfter) = try await startGateway(18201)
        try await Task.sleep(for: .seconds(1))
        let fullBytes = full.residentBytes
        // The view's own count, not what was published: the figure is per job held.
        struct Readiness: Decodable { let jobs: Int }
        let held = try JSONDecoder().decode(Readiness.self, from: Data(Array(buffer: try await send(client, "GET", "http://127.0.0.1:18201/ready").body))).jobs
        full.stop()
        printLine(workload: "memory", [
            "jobs": Double(jobs), "jobs_in_view": Double(held), "bytes_per_job": Double(fullBytes - emptyBytes) / Double(max(held, 1)),
            "rss_empty_mib": Double(emptyBytes) / 1_048_576, "rss_full_mib": Double(fullBytes) / 1_048_576,
            "ready_after_s": readyAfter.timeInterval,
        ])
    }

    /// 6. Throughput of 20 ms sleep jobs with 1, 2 and 4 worker processes.
    ///
    /// Each worker runs 2 jobs at a time (100 jobs/s), so that even 4 of them
    /// stay well below what the gateway and broker move: the workers are the
    /// bottleneck, as the workload asks. A warm-up batch first lets the group
    /// settle: each join is a rebalance, which in the embedded broker waits
    /// out the session timeout.
    func scaleOut(jobs: Int) async throws {
        var rates: [Int: Double] = [:], warmUps: [Int: Int] = [:]
        let concurrency = 2
        for workers in [1, 2, 4] {
            let system = try await Deployment(port: 18210 + workers, partitions: 12, workers: workers, concurrency: concurrency)
            try await system.waitForWorkers(workers)
            warmUps[workers] = try await warmUp(system, jobs: workers * concurrency * 20, workers: workers)
            let before = try await metric(system.client, base: system.base, #"jobs{status="succeeded"}"#)
            let (client, base) = (system.client, system.base)
            let started = ContinuousClock.now
            _ = try await load(connections: 64, total: jobs) { _ in
                _ = try await send(client, "POST", base + "/jobs", body: #"{"type":"sleep","params":{"steps":1,"stepMs":20}}"#)
            }
            let deadline = ContinuousClock.now + .seconds(300)
            while try await metric(system.client, base: system.base, #"jobs{status="succeeded"}"#) - before < Double(jobs) {
                guard ContinuousClock.now < deadline else {
                    // Not a rate: say where the jobs are, and leave nothing running.
                    var stuck: [String] = []
                    for status in ["queued", "running"] {
                        stuck.append("\(status) \(try await metric(system.client, base: system.base, "jobs{status=\"\(status)\"}"))")
                    }
                    let lag = try await metric(system.client, base: system.base, #"jobs_commands_consumer_lag{group="jobs-workers"}"#)
                    await system.shutdown()
                    throw BenchError("scale-out with \(workers) workers: not every job succeeded within 300 s (\(stuck.joined(separator: ", ")), consumer lag \(lag))")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            rates[workers] = Double(jobs) / (ContinuousClock.now - started).timeInterval
            await system.shutdown()
        }
        printLine(workload: "scaleout", [
            "jobs": Double(jobs), "workers_1_jobs_per_s": rates[1] ?? 0, "workers_2_jobs_per_s": rates[2] ?? 0,
            "workers_4_jobs_per_s": rates[4] ?? 0, "speedup_4_over_1": (rates[4] ?? 0) / max(rates[1] ?? 1, 0.001),
            "warm_up_rounds_2": Double(warmUps[2] ?? 0), "warm_up_rounds_4": Double(warmUps[4] ?? 0),
        ])
    }

    /// Runs `jobs` short sleep jobs to their end, again (up to 5 times) until
    /// they were spread evenly over `workers` workers (no worker ran more than
    /// twice as many as another), and waits until the group has been quiet (no
    /// job waiting) for a couple of seconds.
    ///
    /// A worker that ran none owns no partition yet, and one that ran far more
    /// owns partitions it is about to give away: the group is still rebalancing,
    /// and a measurement then would count fewer workers.
    /// - Returns: how many rounds it took.
    func warmUp(_ system: Deployment, jobs: Int, workers: Int) async throws -> Int {
        let (client, base) = (system.client, system.base)
        struct Page: Decodable {
            struct Job: Decodable { let workerID: String? }
            let jobs: [Job]
        }
        var spread: [String: Int] = [:]
        for round in 1...5 {
            _ = try await load(connections: 16, total: jobs) { _ in
                _ = try await send(client, "POST", base + "/jobs", body: #"{"type":"sleep","params":{"steps":1,"stepMs":20}}"#)
            }
            try await drain(system)
            try await Task.sleep(for: .seconds(2))
            try await drain(system)
            let newest = try await send(client, "GET", base + "/jobs?limit=\(min(jobs, 200))").body
            let page = try JSONDecoder().decode(Page.self, from: Data(Array(buffer: newest)))
            spread = page.jobs.compactMap(\.workerID).reduce(into: [:]) { $0[$1, default: 0] += 1 }
            if spread.count >= workers, let most = spread.values.max(), let least = spread.values.min(), most <= 2 * least { return round }
        }
        throw BenchError("after 5 warm-ups, the jobs were still not spread over \(workers) workers: \(spread)")
    }

    /// Waits until nothing is queued or running and no submit is still being
    /// accepted (wrk may leave requests in flight), so one workload doesn't measure the last.
    func drain(_ system: Deployment) async throws {
        let deadline = ContinuousClock.now + .seconds(300)
        var lastAccepted = -1.0
        while ContinuousClock.now < deadline {
            let accepted = try await metric(system.client, base: system.base, "jobs_submitted_total{type=\"noop\"}")
            let queued = try await metric(system.client, base: system.base, #"jobs{status="queued"}"#)
            let running = try await metric(system.client, base: system.base, #"jobs{status="running"}"#)
            if queued + running == 0, accepted == lastAccepted { return }
            lastAccepted = accepted
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// The embedded (in-memory) broker as a process of its own, with the job topics.
/// Prints its bootstrap address as its first line.
struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs an embedded broker with the job topics until killed.",
        discussion: """
            The broker never answers CreateTopics. A gateway finds the job topics here and asks \
            to create none; one with another --topic-prefix needs --create-topics false.
            """
    )

    @Option var partitions: Int32 = 6

    func run() async throws {
        var logger = Logger(label: "broker")
        logger.logLevel = .error
        let cluster = try EmbeddedKafkaCluster(logger: logger)
        let topics = TopicNames()
        for topic in topics.all { try cluster.createTopic(topic, partitions: topic == topics.workers ? 1 : partitions) }
        writeLine(cluster.bootstrapServers)
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

/// A bare Hummingbird route returning a small JSON object: the reference the
/// reads workload is compared with.
struct ReferenceServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reference-server", abstract: "Serves GET /ready with a small JSON object.")

    @Option var port = 18190

    func run() async throws {
        struct Body: ResponseEncodable { let status: String }
        let router = Router()
        router.get("/ready") { _, _ in Body(status: "ready") }
        var logger = Logger(label: "reference")
        logger.logLevel = .error
        try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
            .runService()
    }
}
