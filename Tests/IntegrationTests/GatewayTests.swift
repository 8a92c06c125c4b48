import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import JobsCore
import JobsGateway
import KafkaClient
import NIOCore
import JobsWorker
import Synchronization
import Testing

@Suite("Jobs end to end, in one process", .timeLimit(.minutes(3)))
struct EndToEndTests {
    @Test("a noop job is accepted with 202 and a Location, then reaches succeeded")
    func noopSucceeds() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            let reply = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#)
            #expect(reply.status == .accepted)
            let accepted = try reply.snapshot()
            #expect(accepted.status == .queued)
            #expect(accepted.attempt == 1)
            #expect(reply.headers[.location] == "/jobs/\(accepted.id)")
            let done = try await client.waitFor(accepted.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(done.workerID == "test-worker")
            #expect(done.startedAt != nil && done.finishedAt != nil)
        }
    }

    @Test("a sleep job publishes increasing progress, then succeeds with its result and its last progress")
    func sleepReportsProgress() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":5,"stepMs":30}}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded)
            #expect(done.result == ["steps": 5, "sleptMs": 150])

            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.contains { $0.id == job.id && $0.status.isTerminal }
            }.filter { $0.id == job.id }
            let reported = events.compactMap { $0.status == .running ? $0.progress?.current : nil }
            #expect(reported.first == 1, "the first report is published at once: \(reported)")
            #expect(zip(reported, reported.dropFirst()).allSatisfy { $0 < $1 }, "progress as published: \(reported)")
            #expect(events.first?.status == .queued)
            #expect(events.last?.status == .succeeded)
            #expect(events.last?.progress?.current == 5)
        }
    }

    @Test("progress reported every 2 ms is published about every 100 ms, the latest winning")
    func progressIsThrottled() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            let started = ContinuousClock.now
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":200,"stepMs":2}}"#)
            // 0.4 s of steps; a full test run on two cores starved it past 20 s once.
            let done = try await client.waitFor(job.id, timeout: .seconds(60)) { $0.status.isTerminal }
            let elapsed = ContinuousClock.now - started
            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.contains { $0.id == job.id && $0.status.isTerminal }
            }.filter { $0.id == job.id }
            let reported = events.compactMap { $0.status == .running ? $0.progress?.current : nil }
            #expect(done.progress?.current == 200)
            #expect(reported.count >= 2)
            #expect(Double(reported.count) <= elapsed / .milliseconds(100) + 2, "\(reported.count) progress events in \(elapsed)")
            #expect(zip(reported, reported.dropFirst()).allSatisfy { $0 < $1 }, "\(reported) \(events.map { "\($0.status) \($0.sequence)" })")
        }
    }

    @Test("a running job that is cancelled ends cancelled within one step")
    func cancelStopsRunningJob() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            // The cancel goes out just after a step boundary, so a handler that only
            // checked a flag between steps would take the whole step (5 s) to stop;
            // task cancellation interrupts the step itself. The margin keeps the test
            // meaningful on a loaded two-core machine: with 2 s steps, one run of the
            // whole suite (every suite at once) took 2.05 s to cancel.
            let stepMs = 5000
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":100,"stepMs":\#(stepMs)}}"#)
            try await client.waitFor(job.id) { ($0.progress?.current ?? 0) >= 1 }

            let requestedAt = Date()
            let reply = try await client.request(.post, "/jobs/\(job.id)/cancel")
            #expect(reply.status == .accepted)
            #expect(try reply.snapshot().cancelRequested)

            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .cancelled)
            let finishedAt = try #require(done.finishedAt)
            #expect(finishedAt.timeIntervalSince(requestedAt) < Double(stepMs) / 1000, "cancel took \(finishedAt.timeIntervalSince(requestedAt)) s")
            #expect((done.progress?.current ?? 0) < 100)

            let again = try await client.request(.post, "/jobs/\(job.id)/cancel")
            #expect(again.status == .conflict)
            #expect(try again.problem().type == "/problems/job-finished")
        }
    }

    @Test("a cancel of a job no worker has taken is a request, written once; the worker that takes it ends it unrun")
    func queuedCancelWaitsForItsWorker() async throws {
        let system = try TestCluster()
        // No worker: the job stays queued until one comes.
        try await system.withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            let reply = try await client.request(.post, "/jobs/\(job.id)/cancel")
            #expect(reply.status == .accepted)
            let requested = try reply.snapshot()
            #expect(requested.status == .queued && requested.cancelRequested)
            // Long enough for the gateway to read its request back a few times over
            // (it fetches every 10 ms here): a read-back taken for a stale record
            // was published again, without end (hundreds of records a second).
            func records() async throws -> [JobSnapshot] {
                try await system.statusEvents(timeout: .seconds(2)) { _ in false }.filter { $0.id == job.id }
            }
            try await Task.sleep(for: .seconds(1))
            let first = try await records()
            try await Task.sleep(for: .seconds(1))
            let later = try await records()
            #expect(later.count == first.count, "the job's records went on growing: \(first.count) → \(later.count)")
            #expect(later.map(\.status) == [.queued, .queued] && later.last?.cancelRequested == true, "\(later)")

            let worker = RunningWorker(system, id: "late-worker", registry: .builtin)
            let ended = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(ended.status == .cancelled)
            #expect(ended.startedAt == nil && ended.workerID == nil, "the job was started: \(ended)")
            try await worker.stop()
        }
    }

    @Test("a cancel that crosses a job's start never shows two verdicts: the first terminal state is the last")
    func cancelRacingStartKeepsOneVerdict() async throws {
        let system = try TestCluster()
        try await system.withGateway { client in
            // The worker has joined its group once a first job ran.
            let first = try await client.submit(#"{"type":"noop"}"#)
            try await client.waitFor(first.id) { $0.status == .succeeded }
            // noop ends within a millisecond of starting: many of these cancels reach
            // jobs that the view still shows queued but that a worker has already run.
            // One at a time, so that no request waits for a connection.
            var replies: [JobID: HTTPReply] = [:]
            for index in 0..<60 {
                let job = try await client.submit(#"{"type":"noop"}"#)
                // Spread over the window in which the worker takes the command.
                try await Task.sleep(for: .microseconds(500 * (index % 20)))
                replies[job.id] = try await client.request(.post, "/jobs/\(job.id)/cancel")
            }
            for (id, reply) in replies {
                switch reply.status {
                case .accepted:
                    let body = try reply.snapshot()
                    #expect(!body.status.isTerminal || body.status == .cancelled, "202 for job \(id) with \(body.status)")
                    #expect(body.cancelRequested)
                case .conflict:
                    #expect(reply.text.contains("job-finished"), "\(reply.text)")
                default:
                    Issue.record("cancel of \(id) answered \(reply.status): \(reply.text)")
                }
            }
            var final: [JobID: JobSnapshot] = [:]
            for id in replies.keys { final[id] = try await client.waitFor(id) { $0.status.isTerminal } }
            // Every terminal record of a job on the topic, in topic order, says the same.
            let ids = Set(replies.keys)
            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                Set(events.filter { $0.status.isTerminal }.map(\.id)).isSuperset(of: ids)
            }
            for id in replies.keys {
                let verdicts = events.filter { $0.id == id && $0.status.isTerminal }.map(\.status)
                #expect(Set(verdicts).count == 1 && verdicts.first == final[id]?.status, "job \(id): \(verdicts), view \(String(describing: final[id]?.status))")
            }
        }
    }

    @Test("a cancel, its snapshot and the worker's cancelled verdict are sent at once, even while every other message lingers for seconds")
    func cancelDoesNotLinger() async throws {
        let system = try TestCluster()
        // Long, so that a cancel answered within half of it was not lingered even on a
        // loaded machine (with 4 s, one CI run answered in 2.1 s).
        let linger = Duration.seconds(10)
        try await system.withGateway(commandTimeout: .seconds(30),
                                     configure: { $0.kafka.properties["linger.ms"] = "10000" },
                                     configureWorker: {
                                         $0.kafka.properties["linger.ms"] = "10000"
                                         $0.kafka.properties["message.timeout.ms"] = "30000" // librdkafka: > linger.ms
                                     }) { client in
            // The submit waits out the linger: the setting reached the batching producer.
            let submitted = ContinuousClock.now
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":1000,"stepMs":100}}"#)
            #expect(ContinuousClock.now - submitted >= linger / 2)
            // So does the worker's `running` snapshot.
            let taken = ContinuousClock.now
            try await client.waitFor(job.id, timeout: .seconds(30)) { $0.status == .running }
            #expect(ContinuousClock.now - taken >= linger / 2)

            let requested = ContinuousClock.now
            let reply = try await client.request(.post, "/jobs/\(job.id)/cancel")
            #expect(reply.status == .accepted)
            let answeredAfter = ContinuousClock.now - requested
            #expect(answeredAfter < linger / 2, "the cancel was answered after \(answeredAfter)")
            #expect(try await client.waitFor(job.id) { $0.status.isTerminal }.status == .cancelled)
            let endedAfter = ContinuousClock.now - requested
            #expect(endedAfter < linger / 2, "the job was seen cancelled after \(endedAfter)")
        }
    }

    struct Explosion: Error, CustomStringConvertible {
        var description: String { "the fuse was too short" }
    }

    @Test("a job whose handler throws ends failed with the error's message, and the worker goes on")
    func throwingHandlerFails() async throws {
        var registry = JobRegistry.builtin
        registry.register("explode", params: [String: Int].self) { _, _ -> Int in throw Explosion() }
        let system = try TestCluster()
        try await system.withGateway(registry: registry) { client in
            let job = try await client.submit(#"{"type":"explode"}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .failed)
            #expect(done.error == JobError(code: "handler_error", message: "the fuse was too short"))

            let next = try await client.submit(#"{"type":"noop"}"#)
            #expect(try await client.waitFor(next.id) { $0.status.isTerminal }.status == .succeeded)
        }
    }

    final class Seen: Sendable { let cancel = Mutex(false) }

    @Test("work a handler moves to a thread of its own sees the job's cancel through context.isCancelled")
    func cancelReachesHandlerThreads() async throws {
        let seen = Seen()
        var registry = JobRegistry.builtin
        registry.register("wait-on-thread", params: JSONValue.self) { _, context -> NoResult in
            // On a thread, Task.isCancelled is always false: only the context can tell.
            let saw = await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    let deadline = Date().addingTimeInterval(20)
                    while !context.isCancelled, Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
                    continuation.resume(returning: context.isCancelled)
                }
            }
            seen.cancel.withLock { $0 = saw }
            try context.checkCancellation()
            return NoResult()
        }
        let system = try TestCluster()
        try await system.withGateway(registry: registry) { client in
            let job = try await client.submit(#"{"type":"wait-on-thread"}"#)
            _ = try await client.waitFor(job.id) { $0.status == .running }
            let clock = ContinuousClock()
            let cancelledAt = clock.now
            #expect(try await client.request(.post, "/jobs/\(job.id)/cancel").status == .accepted)
            let done = try await client.waitFor(job.id, timeout: .seconds(30)) { $0.status.isTerminal }
            let after = clock.now - cancelledAt
            #expect(done.status == .cancelled)
            #expect(after < .seconds(10), "the thread saw the cancel only after \(after)")
            #expect(seen.cancel.withLock { $0 })
        }
    }

    @Test("a job id in a path may be percent-encoded")
    func percentEncodedID() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            let raw = job.id.rawValue
            let encoded = raw.unicodeScalars.map { String(format: "%%%02X", $0.value) }.joined()
            let read = try await client.request(.get, "/jobs/\(encoded)")
            #expect(read.status == .ok)
            #expect(try read.snapshot().id == job.id)
            #expect(try await client.request(.post, "/jobs/\(encoded)/cancel").status == .accepted)
        }
    }

    @Test("a poller that sends the job's ETag back gets 304 without a body until the job changes")
    func unchangedJobIsNotModified() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            let first = try await client.request(.get, "/jobs/\(job.id)")
            let tag = try #require(first.headers[.eTag])
            #expect(first.headers[.cacheControl] == "private, no-cache")
            #expect(try await client.request(.get, "/jobs/\(job.id)").headers[.eTag] == tag, "same state, same tag")

            for ifNoneMatch in [tag, "W/\(tag)", "\"other\", \(tag)", "*"] {
                let unchanged = try await client.request(.get, "/jobs/\(job.id)", headers: [.ifNoneMatch: ifNoneMatch])
                #expect(unchanged.status == .notModified, "If-None-Match: \(ifNoneMatch)")
                #expect(unchanged.body.readableBytes == 0)
                #expect(unchanged.headers[.eTag] == tag)
            }
            for ifNoneMatch in ["\"other\"", "junk", String(tag.dropLast())] {
                let full = try await client.request(.get, "/jobs/\(job.id)", headers: [.ifNoneMatch: ifNoneMatch])
                #expect(full.status == .ok, "If-None-Match: \(ifNoneMatch)")
                #expect(try full.snapshot() == first.snapshot())
            }

            try await system.publish(try job.started(attempt: 1, by: "w"))
            try await client.waitFor(job.id) { $0.status == .running }
            let changed = try await client.request(.get, "/jobs/\(job.id)", headers: [.ifNoneMatch: tag])
            #expect(changed.status == .ok)
            #expect(try changed.snapshot().status == .running)
            #expect(changed.headers[.eTag] != nil && changed.headers[.eTag] != tag)
        }
    }

    @Test("unknown ids answer 404 with a problem body")
    func unknownIDIsNotFound() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            for path in ["/jobs/no-such-job", "/jobs/42"] {
                let reply = try await client.request(.get, path)
                #expect(reply.status == .notFound)
                #expect(reply.headers[.contentType] == "application/problem+json")
                #expect(try reply.problem().type == "/problems/job-not-found")
            }
            let cancel = try await client.request(.post, "/jobs/no-such-job/cancel")
            #expect(cancel.status == .notFound)
        }
    }

    @Test("health answers at once and ready once the view caught up")
    func healthAndReadiness() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            #expect(try await client.request(.get, "/health").status == .ok)
            let deadline = ContinuousClock.now + .seconds(10)
            var ready = try await client.request(.get, "/ready")
            while ready.status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                ready = try await client.request(.get, "/ready")
            }
            #expect(ready.status == .ok)
        }
    }
}

@Suite("Bad input gets a problem body and creates nothing", .timeLimit(.minutes(2)))
struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let body: String
        let contentType: String
        let status: HTTPResponse.Status
        let type: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "malformed JSON", body: #"{"type": "noop""#, contentType: "application/json", status: .badRequest, type: "/problems/malformed-json"),
        Case(name: "a trailing comma", body: #"{"type":"noop",}"#, contentType: "application/json", status: .badRequest, type: "/problems/malformed-json"),
        Case(name: "params with a trailing comma", body: #"{"type":"noop","params":[1,]}"#, contentType: "application/json", status: .badRequest, type: "/problems/malformed-json"),
        Case(name: "a member given twice", body: #"{"type":"noop","type":"sleep"}"#, contentType: "application/json", status: .badRequest, type: "/problems/malformed-json"),
        Case(name: "a body that is not an object", body: "[1,2]", contentType: "application/json", status: .badRequest, type: "/problems/invalid-request"),
        Case(name: "a missing type", body: #"{"params":{}}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-request"),
        Case(name: "a type of the wrong JSON type", body: #"{"type":7}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-request"),
        Case(name: "params that are not an object", body: #"{"type":"noop","params":"x"}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-request"),
        Case(name: "an unknown field", body: #"{"type":"noop","priority":1}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-request"),
        Case(name: "an unknown job type", body: #"{"type":"resize"}"#, contentType: "application/json", status: .badRequest, type: "/problems/unknown-job-type"),
        Case(name: "params of the wrong type", body: #"{"type":"sleep","params":{"steps":"ten"}}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-params"),
        Case(name: "params out of range", body: #"{"type":"sleep","params":{"steps":0}}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-params"),
        Case(name: "an unknown param", body: #"{"type":"sleep","params":{"naps":3}}"#, contentType: "application/json", status: .badRequest, type: "/problems/invalid-params"),
        Case(name: "a body over the size limit", body: #"{"type":"noop","params":{"x":""# + String(repeating: "a", count: 70_000) + #""}}"#,
             contentType: "application/json", status: .contentTooLarge, type: "/problems/body-too-large"),
        Case(name: "a body that is not JSON", body: "type=noop", contentType: "application/x-www-form-urlencoded", status: .unsupportedMediaType, type: "/problems/unsupported-media-type"),
    ]

    @Test("every bad submission gets its 4xx problem, and no command or status event is published")
    func badSubmissionsPublishNothing() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            for badCase in Self.cases {
                let reply = try await client.request(.post, "/jobs", json: badCase.body, headers: [.contentType: badCase.contentType])
                #expect(reply.status == badCase.status, "\(badCase.name): \(reply.text)")
                #expect(reply.headers[.contentType] == "application/problem+json", "\(badCase.name)")
                let problem = try reply.problem()
                #expect(problem.type == badCase.type, "\(badCase.name)")
                #expect(problem.status == badCase.status.code)
                #expect(!problem.detail.isEmpty)
            }
            let unknownType = try await client.request(.post, "/jobs", json: #"{"type":"resize"}"#).problem()
            #expect(unknownType.knownTypes == ["noop", "sleep"])
            let badParams = try await client.request(.post, "/jobs", json: #"{"type":"sleep","params":{"steps":"ten"}}"#).problem()
            #expect(badParams.errors?.map(\.pointer) == ["/params/steps"])
            // Thousands of refused fields are summed up, not each listed: the answer stays small.
            let fields = (0..<3000).map { #""f\#($0)":1"# }.joined(separator: ",")
            let flood = try await client.request(.post, "/jobs", json: #"{"type":"noop",\#(fields)}"#)
            #expect(flood.status == .badRequest)
            #expect(try flood.problem().errors?.count == 20)
            #expect(try flood.problem().detail.hasSuffix("; and 2980 more"))
            #expect(flood.body.readableBytes < 4096, "\(flood.body.readableBytes) bytes")
        }
        #expect(try await system.recordCount(system.topics.commands) == 0)
        #expect(try await system.recordCount(system.topics.status) == 0)
    }

    @Test("a body cut short of its Content-Length gets 400 incomplete-body: not a 500, not logged as an error")
    func truncatedBody() async throws {
        let logs = LogRecorder()
        let system = try TestCluster()
        try await system.withGateway(worker: false, logger: logs.logger()) { client in
            let port = try #require(client.port)
            let request = "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                + #"{"type":"noop"}"#
            let outcome = await RawHTTP.raw(port: port, request: request, halfClose: true)
            guard case .complete(let status, let headers, let body) = outcome else {
                Issue.record("no whole answer: \(outcome)")
                return
            }
            #expect(status == 400)
            #expect(headers["content-type"] == "application/problem+json")
            let problem = try JSONDecoder().decode(ProblemBody.self, from: Data(body))
            #expect(problem.type == "/problems/incomplete-body")
            #expect(problem.detail == "the request body ended before its Content-Length of 100 bytes")
            let metrics = try await client.request(.get, "/metrics").text
            #expect(metrics.contains(#"hb_requests{http_route="/jobs",http_request_method="POST",http_response_status_code="400"} 1"#))
            #expect(!metrics.contains(#"http_response_status_code="500""#))
        }
        #expect(try await system.recordCount(system.topics.commands) == 0)
        // Kafka's own warnings aside: nothing at error level, nothing at warning or above about the request.
        let loud = logs.entries.filter { $0.level >= .error || ($0.level >= .warning && $0.metadata.contains("/jobs")) }
        #expect(loud.isEmpty, "\(loud)")
        #expect(logs.entries.contains { $0.level <= .info && $0.metadata.contains("stream ended at an unexpected time") })
    }

    @Test("a route that takes no query parameters refuses any with a 400 invalid-query naming it, and creates nothing")
    func routesRefuseUnknownQuery() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"noop"}"#)
            let routes: [(HTTPRequest.Method, String)] = [
                (.post, "/jobs"), (.get, "/jobs/\(job.id)"), (.head, "/jobs/\(job.id)"), (.post, "/jobs/\(job.id)/cancel"),
                (.get, "/jobs/\(job.id)/events"), (.get, "/job-types"), (.get, "/workers"), (.get, "/whoami"),
                (.get, "/metrics"), (.get, "/health"), (.get, "/ready"), (.get, "/openapi.json"), (.get, "/openapi.yaml"),
            ]
            for (method, path) in routes {
                let body = method == .post ? #"{"type":"noop"}"# : nil
                let reply = try await client.request(method, path + "?wait=true", json: body)
                #expect(reply.status == .badRequest, "\(method) \(path)")
                guard method != .head else { continue }
                #expect(reply.headers[.contentType] == "application/problem+json", "\(method) \(path)")
                let problem = try reply.problem()
                #expect(problem.type == "/problems/invalid-query", "\(method) \(path)")
                #expect(problem.detail == "wait: this route takes no query parameters", "\(method) \(path)")
            }
            // An empty query is no parameter; the routes that take some still name theirs.
            #expect(try await client.request(.get, "/jobs/\(job.id)?").status == .ok)
            let list = try await client.request(.get, "/jobs?wait=true")
            #expect(try list.problem().detail == "wait: is not a query parameter here; known: createdSince, createdUntil, cursor, limit, status, type")
        }
        #expect(try await system.recordCount(system.topics.commands) == 1, "only the first submit's command")
        #expect(try await system.recordCount(system.topics.control) == 0, "the refused cancel was not sent")
    }

    @Test("an unknown route and a wrong method get problem bodies")
    func unknownRoute() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false) { client in
            let missing = try await client.request(.get, "/nowhere")
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")
            #expect(try missing.problem().type == "about:blank")
            let wrongMethod = try await client.request(.delete, "/jobs")
            #expect(wrongMethod.status.code >= 400 && wrongMethod.status.code < 500)
            #expect(wrongMethod.headers[.contentType] == "application/problem+json")
            // A path the router can't take apart gets a problem that says so.
            let unreadable = try await client.request(.get, "/jobs/%zz")
            #expect(unreadable.status == .badRequest)
            #expect(try unreadable.problem().detail == "the request's path can't be read: /jobs/%zz")
        }
    }

    @Test("when Kafka can't take the command in time the answer is 503 with Retry-After, and no job exists")
    func brokerDownGives503() async throws {
        let system = try TestCluster()
        let warm = try await system.withGatewayReturning(worker: false, commandTimeout: .seconds(1)) { client in
            let warm = try await client.submit(#"{"type":"noop"}"#)
            system.setLeader(-1, of: system.topics.all)
            let reply = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#)
            system.setLeader(1, of: system.topics.all)
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.headers[.retryAfter] == "1")
            #expect(try reply.problem().type == "/problems/broker-unavailable")
            #expect(try await client.job(warm.id).status == .queued)
            return warm
        }
        // Only the warm-up job's command and queued snapshot exist (the refused
        // job's tombstone may follow, withdrawing a snapshot that never landed).
        #expect(try await system.recordCount(system.topics.commands) == 1)
        let snapshots = try await system.statusEvents(timeout: .seconds(3)) { _ in false }
        #expect(snapshots.map(\.id) == [warm.id])
    }

    @Test("a gateway started while the broker is unreachable refuses a submit with 503 within the command timeout")
    func unreachableBrokerAtStartGives503InTime() async throws {
        // Port 1: nothing listens there, so every connection is refused at once.
        let configuration = GatewayConfiguration(kafka: KafkaConfiguration(bootstrapServers: "127.0.0.1:1"),
                                                 commandTimeout: .seconds(2), authentication: .disabled)
        let app = try buildGateway(configuration: configuration, logger: .quiet)
        try await app.test(.live) { client in
            let client = GatewayClient(client)
            let started = ContinuousClock.now
            let reply = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#)
            let answeredAfter = ContinuousClock.now - started
            #expect(reply.status == .serviceUnavailable)
            #expect(try reply.problem().type == "/problems/broker-unavailable")
            // The producer's metadata look-ups (5 s a topic, four topics) used to hold
            // up its delivery reports: the answer came after about 20 s. Within 2 s,
            // the timeout, on a quiet machine; 8.6 s was seen with every suite at once.
            #expect(answeredAfter < .seconds(12), "answered after \(answeredAfter)")
        }
    }

    @Test("a submit whose command fails while its queued snapshot lands is refused, and the snapshot is withdrawn")
    func refusedSubmitWithdrawsItsQueuedSnapshot() async throws {
        // The command and the queued snapshot are sent together; here only the
        // commands topic has no leader, so only the snapshot lands.
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(worker: false, commandTimeout: .seconds(1)) { client in
            let warm = try await client.submit(#"{"type":"noop"}"#)
            system.setLeader(-1, of: [system.topics.commands])
            let reply = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#)
            #expect(reply.status == .serviceUnavailable)
            #expect(try reply.problem().type == "/problems/broker-unavailable")
            let ids = try await system.statusEvents(timeout: .seconds(10)) { $0.count >= 2 }.map(\.id)
            #expect(ids.count == 2 && ids.first == warm.id)
            // Every view, this gateway's included, forgets it: its tombstone (sent
            // after the 503) has landed behind the warm-up job and the refused job's snapshot.
            #expect(try await client.listedIDs(settlingOn: [warm.id]) == [warm.id])
            #expect(try await system.recordCount(system.topics.status) == 3)
            if let refused = ids.last, refused != warm.id {
                #expect(try await client.request(.get, "/jobs/\(refused)").status == .notFound)
            }
        }
    }

    @Test("a queued snapshot that times out on its way but is written later is withdrawn too; a repeat of the refused submit creates the job")
    func lateQueuedSnapshotIsWithdrawn() async throws {
        // The command never lands (its topic has no leader). The snapshot is written
        // at once, but its acknowledgement comes after the command timeout: to the
        // gateway it failed too, and it used to stay, queued forever, in every view,
        // and a repeat under its Idempotency-Key got 200 for a job that never runs.
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(worker: false, commandTimeout: .seconds(1)) { client in
            let warm = try await client.submit(#"{"type":"noop"}"#)
            system.setLeader(-1, of: [system.topics.commands])
            system.cluster.setRoundTripTime(3000)
            let keyed: HTTPFields = [.idempotencyKey: "late-snapshot"]
            let refused = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: keyed)
            #expect(refused.status == .serviceUnavailable)
            system.cluster.setRoundTripTime(0)
            system.setLeader(1, of: [system.topics.commands])

            // The snapshot landed, and so did its tombstone: the refused job is in no view.
            let events = try await system.statusEvents(timeout: .seconds(15)) { $0.count >= 2 }
            let refusedID = try #require(events.map(\.id).first { $0 != warm.id }, "the late snapshot did land")
            #expect(try await client.listedIDs(settlingOn: [warm.id]) == [warm.id])
            #expect(try await client.request(.get, "/jobs/\(refusedID)").status == .notFound)

            let repeated = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: keyed)
            #expect(repeated.status == .accepted, "the refused job does not exist: the repeat creates it")
            #expect(try repeated.snapshot().id != refusedID)
        }
    }

    @Test("a refused job's queued snapshot is withdrawn once the broker takes it, even when the first try fails too")
    func withdrawalIsRetried() async throws {
        let system = try TestCluster(partitions: 1)
        // Long enough for the queued snapshot to show on a loaded machine before the command times out.
        let commandTimeout = Duration.seconds(5)
        try await system.withGateway(worker: false, commandTimeout: commandTimeout) { client in
            func listed() async throws -> [JobID] { try await client.list().jobs.map(\.id) }
            let warm = try await client.submit(#"{"type":"noop"}"#)
            system.setLeader(-1, of: [system.topics.commands])
            // On a connection of its own: the test client's one connection would
            // hold the listings below back until the submit is answered.
            var post = HTTPClientRequest(url: "http://127.0.0.1:\(try #require(client.port))/jobs")
            post.method = .POST
            post.headers.add(name: "content-type", value: "application/json")
            post.body = .bytes(ByteBuffer(string: #"{"type":"noop"}"#))
            let request = post
            let submit = Task { try await HTTPClient.shared.execute(request, timeout: .seconds(30)).status }

            // Its queued snapshot lands and shows; then the status topic goes too,
            // before the command times out, so the first tombstone fails.
            var shown: [JobID] = []
            let showDeadline = ContinuousClock.now + commandTimeout - .seconds(1)
            while shown.count < 2, ContinuousClock.now < showDeadline {
                shown = try await listed()
                try await Task.sleep(for: .milliseconds(10))
            }
            system.setLeader(-1, of: [system.topics.status])
            try #require(shown.count == 2, "the refused job's queued snapshot never showed: \(shown)")
            let refused = try #require(shown.first { $0 != warm.id })
            #expect(try await submit.value == .serviceUnavailable)

            // Well past the tombstone's own timeout (librdkafka checks timeouts about
            // once a second), then the status topic is back.
            try await Task.sleep(for: commandTimeout * 2 + .milliseconds(1500))
            system.setLeader(1, of: [system.topics.status])
            var remaining = shown
            for _ in 0..<300 where remaining != [warm.id] {
                try await Task.sleep(for: .milliseconds(50))
                remaining = try await listed()
            }
            #expect(remaining == [warm.id])
            #expect(try await client.request(.get, "/jobs/\(refused)").status == .notFound)
        }
    }

    @Test("an accepted job whose queued snapshot the broker didn't take gets it sent again: a fresh gateway knows the job and its Idempotency-Key")
    func unacknowledgedQueuedSnapshotIsSentAgain() async throws {
        // Only the status topic has no leader: the command lands, the snapshot times out.
        // It used to be only logged: until a worker took the job, no other gateway (nor
        // this one restarted) knew it, and a repeat under its key created a second job.
        let system = try TestCluster(partitions: 1)
        let keyed: HTTPFields = [.idempotencyKey: "announced-later"]
        let id = try await system.withGatewayReturning(worker: false, commandTimeout: .seconds(1)) { client in
            _ = try await client.submit(#"{"type":"noop"}"#)
            system.setLeader(-1, of: [system.topics.status])
            let reply = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: keyed)
            #expect(reply.status == .accepted)
            let id = try reply.snapshot().id
            // Long enough for a later try to fail too; then the status topic is back.
            try await Task.sleep(for: .seconds(2))
            system.setLeader(1, of: [system.topics.status])
            let events = try await system.statusEvents(timeout: .seconds(15)) { $0.contains { $0.id == id } }
            #expect(events.filter { $0.id == id }.allSatisfy { $0.status == .queued && $0.idempotencyKey == "announced-later" })
            #expect(events.contains { $0.id == id }, "the queued snapshot never landed")
            return id
        }
        try await system.withGateway(worker: false) { client in
            #expect(try await client.job(id).status == .queued)
            let repeated = try await client.request(.post, "/jobs", json: #"{"type":"noop"}"#, headers: keyed)
            #expect(repeated.status == .ok)
            #expect(try repeated.snapshot().id == id)
        }
    }
}

extension GatewayClient {
    /// The ids `GET /jobs` lists, polled until they are `expected` or 10 s have passed.
    func listedIDs(settlingOn expected: [JobID]) async throws -> [JobID] {
        var listed: [JobID] = []
        for _ in 0..<200 {
            listed = try await list().jobs.map(\.id)
            if listed == expected { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return listed
    }
}
