import Foundation
import HTTPTypes
import Hummingbird
import JobsCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Server-Sent Events: one job's changes until it ends, or every job's changes.
///
/// Event ids are view positions (``ChangePosition``). A client that reconnects
/// with `Last-Event-ID` is sent the current state of whatever changed while it
/// was away, then live changes: snapshots are whole states, so the latest of
/// each job is all it missed.
struct EventStreamRoutes: Sendable {
    let view: JobView
    let limiter: StreamLimiter
    let configuration: GatewayConfiguration
    let logger: Logger

    /// `GET /jobs/{id}/events`: the current snapshot, each change, closed after the terminal one.
    @Sendable func jobEvents(request: Request, context: GatewayRequestContext) async throws -> Response {
        let id = JobID(rawValue: try context.jobIDParameter())
        guard await view.snapshot(id, catchUpTimeout: configuration.catchUpTimeout) != nil else {
            throw ProblemDetails.jobNotFound(id.rawValue)
        }
        let resumeFrom = request.headers[.lastEventID].flatMap(ChangePosition.init)
        if let ended = view.currentChange(of: id), ended.snapshot.status.isTerminal, Self.has(resumeFrom, seen: ended) {
            // The client has the job's end: 204 is how SSE tells an EventSource to stop reconnecting.
            return Response(status: .noContent)
        }
        let lease = try limiter.acquire(for: context.clientIdentity)
        let subscription = view.subscribe { $0.snapshot.id == id }
        // Subscribed before reading the state, so no change falls between the two.
        guard let current = view.currentChange(of: id) else {
            lease.release()
            throw ProblemDetails.jobNotFound(id.rawValue)
        }
        logger.debug("job event stream opened", metadata: ["job.id": "\(id)", "client": "\(context.clientIdentity)"])
        let alreadySeen = Self.has(resumeFrom, seen: current)
        return eventStream(request, subscription: subscription, lease: lease) { write in
            if !alreadySeen { try await write(.job(current)) }
            if current.snapshot.status.isTerminal { return }
            try await Self.forward(subscription, after: current.position.sequence, write: write) { $0.status.isTerminal }
        }
    }

    /// Whether a client that last saw `position` has seen `change` (or later ones).
    private static func has(_ position: ChangePosition?, seen change: JobChange) -> Bool {
        guard let position else { return false }
        return position.epoch == change.position.epoch && position.sequence >= change.position.sequence
    }

    /// `GET /events`: changes of every job the filter accepts, until the client leaves.
    @Sendable func allEvents(request: Request, context: GatewayRequestContext) async throws -> Response {
        let query = try QueryParameters(request.uri.queryParameters, allowed: Endpoint.streamEvents.queryParameters)
        let filter = JobFilter(statuses: try query.statuses(), types: Set(query.all("type")))
        let resumeFrom = request.headers[.lastEventID].map { ChangePosition($0) }
        let lease = try limiter.acquire(for: context.clientIdentity)
        // A job whose status leaves the filter is sent once more, so a client showing it learns it left.
        let subscription = view.subscribe { change in
            filter.matches(change.snapshot) || change.previous.map(filter.matches) == true
        }
        let opened = view.currentPosition
        logger.debug("event stream opened", metadata: ["client": "\(context.clientIdentity)", "resume": "\(resumeFrom.map { $0.map(\.description) ?? "unknown" } ?? "no")"])
        // On resume, jobs that changed meanwhile are sent whatever their status now, for the same reason.
        var anyStatus = filter
        anyStatus.statuses = []
        // A header that names no position of this view still means "I was here before": reset.
        let missed: (changes: [JobChange]?, through: UInt64)? = resumeFrom.map { position in
            position.map { view.changes(since: $0, matching: anyStatus, limit: configuration.maxResumeJobs) } ?? (nil, 0)
        }
        return eventStream(request, subscription: subscription, lease: lease) { write in
            var through: UInt64 = 0
            if let missed {
                if let changes = missed.changes {
                    for change in changes { try await write(.job(change)) }
                } else {
                    try await write(.reset)
                    try await write(.position(opened))
                }
                through = missed.through
            } else {
                // A client that sees no change before it reconnects still has a position to resume from.
                try await write(.position(opened))
            }
            try await Self.forward(subscription, after: through, write: write) { _ in false }
        }
    }

    /// Writes the feed's keep-alives and its changes later than `through` (earlier
    /// ones were already sent), until the feed ends or a change `isLast`.
    private static func forward(
        _ subscription: JobChangeFeed.Subscription, after through: UInt64,
        write: (ServerSentEvent) async throws -> Void, until isLast: (JobSnapshot) -> Bool
    ) async throws {
        var through = through
        for await item in subscription.items {
            switch item {
            case .keepAlive:
                try await write(.keepAlive)
            case .change(let change):
                guard change.position.sequence > through else { continue }
                through = change.position.sequence
                try await write(.job(change))
                if isLast(change.snapshot) { return }
            }
        }
    }

    /// A `text/event-stream` response that runs `body` with a frame writer, sends
    /// a keep-alive comment every `streamKeepAliveInterval` (so proxies keep an
    /// idle stream open), and ends when the client leaves, the stream's
    /// feed ends (the client fell too far behind), or the gateway shuts down.
    private func eventStream(
        _ request: Request, subscription: JobChangeFeed.Subscription, lease: StreamLimiter.Lease,
        _ body: @escaping @Sendable (_ write: (ServerSentEvent) async throws -> Void) async throws -> Void
    ) -> Response {
        let keepAliveInterval = configuration.streamKeepAliveInterval
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store", .init("X-Accel-Buffering")!: "no"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer {
                subscription.continuation.finish()
                lease.release()
            }
            let keepAlive = Task {
                while !Task.isCancelled {
                    try await Task.sleep(for: keepAliveInterval)
                    subscription.keepAlive()
                }
            }
            defer { keepAlive.cancel() }
            try await writer.write(ServerSentEvent.retry(milliseconds: 1000).frame)
            // Ending the feed ends the stream: when the client leaves (not only at the
            // next write, which may be a keep-alive away) and at a graceful shutdown.
            try await request.body.consumeWithInboundCloseHandler { _ in
                try await withGracefulShutdownHandler {
                    try await body { event in try await writer.write(event.frame) }
                } onGracefulShutdown: {
                    subscription.continuation.finish()
                }
                try await writer.finish(nil)
            } onInboundClosed: {
                subscription.continuation.finish()
            }
        })
    }
}

/// One frame of an event stream.
enum ServerSentEvent {
    case job(JobChange)
    /// The resume point is unknown or too far back: list again, then follow.
    case reset
    case keepAlive
    case retry(milliseconds: Int)
    /// Sets the client's last event id without an event (no `data`, so nothing is dispatched).
    case position(ChangePosition)

    var frame: ByteBuffer {
        switch self {
        case .job(let change):
            // JSON never holds a raw newline, so the snapshot is one `data:` line.
            let data = (try? WireFormat.encodeSnapshot(change.snapshot)) ?? Array("{}".utf8)
            var buffer = ByteBuffer(string: "id: \(change.position)\nevent: job\ndata: ")
            buffer.writeBytes(data)
            buffer.writeString("\n\n")
            return buffer
        case .reset:
            return ByteBuffer(string: "event: reset\ndata: {}\n\n")
        case .keepAlive:
            return ByteBuffer(string: ": keep-alive\n\n")
        case .retry(let milliseconds):
            return ByteBuffer(string: "retry: \(milliseconds)\n\n")
        case .position(let position):
            return ByteBuffer(string: "id: \(position)\n\n")
        }
    }
}

/// Counts open event streams per client, so one client can't hold every
/// connection the gateway has.
final class StreamLimiter: Sendable {
    private let open = Mutex<[String: Int]>([:])
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func acquire(for client: String) throws(ProblemDetails) -> Lease {
        let granted = open.withLock { open in
            guard open[client, default: 0] < limit else { return false }
            open[client, default: 0] += 1
            return true
        }
        guard granted else { throw ProblemDetails.tooManyStreams(limit: limit) }
        return Lease(limiter: self, client: client)
    }

    fileprivate func release(_ client: String) {
        open.withLock { open in
            open[client, default: 1] -= 1
            if open[client] == 0 { open.removeValue(forKey: client) }
        }
    }

    /// One open stream; released exactly once.
    final class Lease: Sendable {
        private let limiter: StreamLimiter
        private let client: String
        private let released = Mutex(false)

        fileprivate init(limiter: StreamLimiter, client: String) {
            self.limiter = limiter
            self.client = client
        }

        func release() {
            guard released.withLock({ released in defer { released = true }; return !released }) else { return }
            limiter.release(client)
        }

        deinit { release() }
    }
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
