import Foundation
import JobsCore
import JobsGateway
import Testing

@Suite("Server-Sent Events: one job, every job, resume", .serialized, .timeLimit(.minutes(3)))
struct EventStreamTests {
    @Test("a job's stream starts with its current state, follows every change in order, and ends after the terminal one")
    func jobStreamFollowsToTheEnd() async throws {
        try await TestCluster().withGateway { client in
            let port = try #require(client.port)
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":5,"stepMs":60}}"#)
            let reading = try await readEventStream(port: port, "/jobs/\(job.id)/events")
            #expect(reading.status == 200)
            #expect(reading.ended, "the stream should end after the terminal snapshot")
            let snapshots = try reading.jobEvents.map { try $0.snapshot() }
            try #require(!snapshots.isEmpty)
            #expect(!snapshots[0].status.isTerminal || snapshots.count == 1)
            #expect(snapshots.last?.status == .succeeded)
            #expect(snapshots.dropLast().allSatisfy { !$0.status.isTerminal })
            #expect(snapshots.allSatisfy { $0.id == job.id })
            let orders = snapshots.map(SnapshotOrder.init)
            #expect(zip(orders, orders.dropFirst()).allSatisfy { $0 < $1 }, "changes arrive in the fold's order")
            let sequences = reading.jobEvents.compactMap { $0.id.flatMap(ChangePosition.init)?.sequence }
            #expect(sequences.count == snapshots.count)
            #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $0 < $1 }, "event ids increase")
            #expect(snapshots.contains { $0.progress != nil }, "progress reports are streamed")
        }
    }

    @Test("Last-Event-ID of an ended job's last change gets 204, which stops an EventSource; an unknown one gets the current state")
    func jobStreamResumes() async throws {
        try await TestCluster().withGateway { client in
            let port = try #require(client.port)
            let job = try await client.submit(#"{"type":"noop"}"#)
            try await client.waitFor(job.id) { $0.status == .succeeded }
            let first = try await readEventStream(port: port, "/jobs/\(job.id)/events")
            #expect(first.ended)
            try #require(first.jobEvents.count == 1, "an ended job's stream is its final state, then the end")
            let lastID = try #require(first.jobEvents[0].id)

            let resumed = try await readEventStream(port: port, "/jobs/\(job.id)/events", headers: [("Last-Event-ID", lastID)])
            #expect(resumed.status == 204, "the client already has the final state: no stream, no reconnect")
            #expect(resumed.events.isEmpty)

            let foreign = try await readEventStream(port: port, "/jobs/\(job.id)/events", headers: [("Last-Event-ID", "elsewhere-99")])
            #expect(try foreign.jobEvents.map { try $0.snapshot().status } == [.succeeded])
        }
    }

    @Test("an unknown job's stream is a 404 problem, not an empty stream")
    func unknownJobStream() async throws {
        try await TestCluster().withGateway(worker: false, configure: { $0.catchUpTimeout = .milliseconds(200) }) { client in
            let reading = try await readEventStream(port: try #require(client.port), "/jobs/nope/events")
            #expect(reading.status == 404)
            #expect(reading.body.contains("/problems/job-not-found") || reading.events.isEmpty)
        }
    }

    @Test("/events streams changes of the jobs its filter accepts, and only those")
    func allEventsFiltered() async throws {
        try await TestCluster().withGateway { client in
            let port = try #require(client.port)
            async let reading = readEventStream(port: port, "/events?type=sleep&status=succeeded") { events in
                events.contains { $0.event == "job" }
            }
            try await Task.sleep(for: .milliseconds(300))
            let noop = try await client.submit(#"{"type":"noop"}"#)
            try await client.waitFor(noop.id) { $0.status == .succeeded }
            let sleep = try await client.submit(#"{"type":"sleep","params":{"steps":1,"stepMs":10}}"#)
            let snapshots = try await reading.jobEvents.map { try $0.snapshot() }
            #expect(snapshots.map(\.id) == [sleep.id])
            #expect(snapshots.map(\.status) == [.succeeded])
        }
    }

    @Test("/events resumed with Last-Event-ID first sends the current state of every job that changed meanwhile; an id from elsewhere gets reset")
    func allEventsResume() async throws {
        try await TestCluster().withGateway { client in
            let port = try #require(client.port)
            let marker = try await client.submit(#"{"type":"noop"}"#)
            try await client.waitFor(marker.id) { $0.status == .succeeded }
            // A position from another gateway (or an earlier run of this one) can't be resumed.
            let first = try await readEventStream(port: port, "/events", headers: [("Last-Event-ID", "x-0")]) { events in
                events.contains { $0.event == "reset" }
            }
            #expect(first.events.first?.event == "reset")
            async let live = readEventStream(port: port, "/events?status=succeeded") { events in
                events.contains { $0.event == "job" }
            }
            try await Task.sleep(for: .milliseconds(300))
            let trigger = try await client.submit(#"{"type":"noop"}"#)
            let lastSeen = try #require(try await live.jobEvents.first { try $0.snapshot().id == trigger.id }?.id)

            var missed: [JobID] = []
            for _ in 0..<3 {
                let job = try await client.submit(#"{"type":"noop"}"#)
                try await client.waitFor(job.id) { $0.status == .succeeded }
                missed.append(job.id)
            }
            let expected = Set(missed)
            let resumed = try await readEventStream(port: port, "/events", headers: [("Last-Event-ID", lastSeen)]) { events in
                Set(events.compactMap { try? $0.snapshot().id }).isSuperset(of: expected)
            }
            let snapshots = try resumed.jobEvents.map { try $0.snapshot() }
            #expect(Set(snapshots.map(\.id)) == Set(missed), "exactly the jobs that changed after the last event seen")
            #expect(snapshots.allSatisfy { $0.status == .succeeded }, "each as it is now, not every step it took")
        }
    }

    @Test("a status-filtered stream is sent the change that moves a job out of its filter, and every stream opens with a position")
    func leavingTheFilter() async throws {
        try await TestCluster().withGateway { client in
            let port = try #require(client.port)
            async let reading = readEventStream(port: port, "/events?status=running") { events in
                events.contains { (try? $0.snapshot().status) == .succeeded }
            }
            try await Task.sleep(for: .milliseconds(300))
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":2,"stepMs":50}}"#)
            let events = try await reading.events
            let opening = try #require(events.first)
            #expect(opening.event == nil && opening.data.isEmpty, "the stream opens with an id-only frame")
            #expect(opening.id.flatMap(ChangePosition.init) != nil)
            let statuses = try events.filter { $0.event == "job" }.map { try $0.snapshot() }.filter { $0.id == job.id }.map(\.status)
            #expect(statuses.first == .running)
            #expect(statuses.last == .succeeded, "the change that left the filter is sent")
            #expect(!statuses.contains(.queued), "changes outside the filter before and after aren't")
        }
    }

    @Test("a client may hold a bounded number of streams; the next one is 429, and a closed one frees its place")
    func streamsPerClientAreLimited() async throws {
        try await TestCluster().withGateway(worker: false, configure: { $0.maxStreamsPerClient = 2 }) { client in
            let port = try #require(client.port)
            // Streams held by curl processes: stopping one closes its socket for certain.
            func holder(_ name: String) throws -> ChildProcess {
                try ChildProcess("/usr/bin/curl", ["-sN", "http://127.0.0.1:\(port)/events"], name: name)
            }
            let holders = try (0..<2).map { try holder("stream-holder-\($0)") }
            // Each stream opens with a `retry:` frame: both are granted.
            for held in holders { try await held.waitForLog("retry:", timeout: .seconds(20)) }
            let refused = try await client.request(.get, "/events")
            #expect(refused.status == .tooManyRequests)
            #expect(try refused.problem().type == "/problems/too-many-streams")
            #expect(refused.headers[.retryAfter] != nil)
            // SIGKILL: a child spawned by the test process inherits its ignored SIGTERM.
            for held in holders { await held.stop(SIGKILL) }
            // The server notices the clients left without waiting for a keep-alive
            // write (15 s away): a new stream is granted within seconds.
            let again = try holder("stream-holder-again")
            try await again.waitForLog("retry:", timeout: .seconds(5))
            await again.stop(SIGKILL)
        }
    }

    @Test("an open stream doesn't hold up the gateway's graceful shutdown")
    func shutdownEndsStreams() async throws {
        let started = ContinuousClock.now
        let reading = try await TestCluster().withGatewayReturning(worker: false) { client in
            let port = try #require(client.port)
            let reader = Task { try await readEventStream(port: port, "/events", timeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(500))
            return reader
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(30), "shutdown took \(elapsed)")
        #expect(try await reading.value.ended, "the stream was ended by the server")
    }
}
