import Foundation
import HTTPTypes
import Hummingbird
import JobsCore
import KafkaClient
import Logging
import Synchronization

/// The job routes: submit, list, read and cancel; job types and workers; health
/// and readiness. Which path and scope each has is in ``Endpoint``.
struct JobRoutes: Sendable {
    typealias Context = GatewayRequestContext

    let view: JobView
    let workers: WorkerDirectory
    let commands: JobCommands
    let followUps: SubmitFollowUps
    let metrics: GatewayMetrics
    let keysInFlight = KeysInFlight()
    /// Types from configuration; the ones workers announce are added to them.
    let configuredTypes: [String: JobTypeDescriptor]
    let configuration: GatewayConfiguration
    let logger: Logger

    /// `POST /jobs`: validate, publish the start command, answer 202 once Kafka acknowledged it.
    @Sendable func submit(request: Request, context: Context) async throws -> Response {
        // By bytes: Foundation's `contains` bridges to NSString, on every submit.
        if let contentType = request.headers[.contentType], contentType.lowercased().utf8.firstRange(of: "json".utf8) == nil {
            throw ProblemDetails.unsupportedMediaType(contentType)
        }
        let body = try await request.body.collect(upTo: configuration.maxBodyBytes)
        let submission: SubmitRequest
        switch SubmitRequest.parse(body.readableBytesView, types: jobTypes) {
        case .success(let parsed): submission = parsed
        case .failure(.malformedJSON(let detail)): throw ProblemDetails.malformedJSON(detail)
        case .failure(.invalidFields(let violations)): throw ProblemDetails.invalidRequest(violations)
        case .failure(.unknownType(let name, let known)): throw ProblemDetails.unknownJobType(name, known: known)
        case .failure(.invalidParams(let type, let violations)): throw ProblemDetails.invalidParams(type: type, violations)
        }
        // Encoded here, params are at most twice their size in the body (the
        // encoder escapes `/`): only a body that large can hold params over the limit.
        if body.readableBytes * 2 > configuration.maxParamsBytes,
           try WireFormat.encode(submission.params).count > configuration.maxParamsBytes {
            throw ProblemDetails.paramsTooLarge(limit: configuration.maxParamsBytes)
        }

        let caller = context.caller ?? .anonymous
        let idempotencyKey = try Self.idempotencyKey(request.headers[values: .idempotencyKey])
            .map { IdempotencyScope(key: $0, submitter: caller.keyName) }
        if let idempotencyKey {
            // One request per key at a time on this gateway; a second one meanwhile is told so.
            guard keysInFlight.claim(idempotencyKey) else { throw ProblemDetails.idempotencyKeyInUse(idempotencyKey.key) }
        }
        defer { idempotencyKey.map(keysInFlight.release) }
        if let idempotencyKey, let existing = await job(for: idempotencyKey), !followUps.isRefused(existing) {
            guard existing.type == submission.type, existing.params == submission.params,
                  submission.orderingKey == existing.orderingKey,
                  submission.maxAttempts == nil || submission.maxAttempts == existing.maxAttempts,
                  submission.timeoutMs == nil || submission.timeoutMs == existing.timeoutMs
            else { throw ProblemDetails.idempotencyKeyReused(idempotencyKey.key, job: existing.id) }
            // A caller that may not read jobs gets the answer its first request got,
            // not the job's later states (its result among them).
            let shown = caller.allows(.read) ? existing : Self.asAccepted(existing, submission)
            return try snapshotResponse(shown, status: .ok, location: true)
        }

        let job = JobSnapshot.queued(type: submission.type, params: submission.params, maxAttempts: submission.maxAttempts,
                                     timeoutMs: submission.timeoutMs, idempotencyKey: idempotencyKey?.key,
                                     submittedBy: caller.keyName, orderingKey: submission.orderingKey)
        let sent = await commands.submit(job)
        if let error = sent.start {
            logger.warning("start command not acknowledged", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
            // The job was not accepted, but its queued snapshot may land (even one
            // that timed out may be written once the broker is back): withdraw it.
            followUps.withdraw(job.id)
            throw ProblemDetails.brokerUnavailable("the job could not be queued in time (\(error.code)); it was not accepted")
        }
        view.apply(job)
        metrics.submitted(type: job.type)
        if let error = sent.queued {
            // The command is safely queued: the job exists and runs. Until its snapshot
            // lands, only this gateway knows it (and its Idempotency-Key).
            logger.warning("queued snapshot not acknowledged; sending it again", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
            followUps.announce(job)
        }
        logger.debug("job accepted", metadata: ["job.id": "\(job.id)", "job.type": "\(job.type)"])
        return try snapshotResponse(job, status: .accepted, location: true)
    }

    /// `GET /jobs`: newest first, filtered, a page at a time.
    @Sendable func list(request: Request, context: Context) async throws -> Response {
        let query = try JobListQuery(request.uri.queryParameters, maxLimit: configuration.maxPageSize)
        let page = view.page(query.filter, limit: query.limit, after: query.cursor)
        let body = try JobListResponse(jobs: page.jobs, nextCursor: page.next?.cursor).encoded()
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// `GET /jobs/{id}`, with an `ETag`: a poller that sends it back in
    /// `If-None-Match` gets `304`, without the body, while the job is unchanged.
    @Sendable func read(request: Request, context: Context) async throws -> Response {
        let body = try WireFormat.encodeSnapshot(try await find(context))
        let tag = EntityTag(of: body)
        // `no-cache`: a cache may keep the body, but asks (with the tag) before each use.
        let headers: HTTPFields = [.eTag: tag.description, .cacheControl: "private, no-cache"]
        if tag.isMatched(byIfNoneMatch: request.headers[values: .ifNoneMatch]) {
            return Response(status: .notModified, headers: headers)
        }
        var response = Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        response.headers[.contentType] = "application/json"
        return response
    }

    /// `POST /jobs/{id}/cancel`: publish the cancel to every worker and the
    /// request on the status topic; 409 once the job has ended.
    ///
    /// The gateway never ends a job itself: only the worker holding its command
    /// knows whether it has started, so a `cancelled` written here for a job the
    /// view still showed `queued` could be followed by that worker's verdict, a
    /// terminal state replaced. The worker ends a job that has not started as
    /// `cancelled` when it takes its command, without running it.
    @Sendable func cancel(request: Request, context: Context) async throws -> Response {
        let current = try await find(context)
        guard !current.status.isTerminal else { throw ProblemDetails.jobFinished(current) }
        do throws(KafkaError) {
            try await commands.cancel(current.id)
        } catch {
            throw ProblemDetails.brokerUnavailable("the cancel could not be delivered in time (\(error.code))")
        }
        let requested = current.requestingCancel()
        view.apply(requested)
        do {
            try await commands.publishStatus(requested, urgent: true)
        } catch {
            logger.warning("cancel-requested snapshot not acknowledged", metadata: ["job.id": "\(current.id)", "error": "\(error)"])
        }
        let latest = view[current.id] ?? requested
        // It ended meanwhile: cancelled (by this cancel, or an earlier one) is
        // what was asked for; a verdict that came first stands, as a 409 says.
        if latest.status.isTerminal, latest.status != .cancelled { throw ProblemDetails.jobFinished(latest) }
        return try snapshotResponse(latest, status: .accepted)
    }

    @Sendable func health(request: Request, context: Context) async throws -> Response {
        try jsonResponse(.ok, ["status": "up"])
    }

    @Sendable func readiness(request: Request, context: Context) async throws -> Response {
        guard view.isReady else { throw ProblemDetails.notReady() }
        return try jsonResponse(.ok, Readiness(status: "ready", jobs: view.count))
    }

    /// What workers announce wins over configuration: they run the jobs.
    var jobTypes: [String: JobTypeDescriptor] {
        configuredTypes.merging(workers.announcedTypes) { _, announced in announced }
    }

    /// `GET /job-types`: every accepted type, its params schema, and the live workers serving it.
    @Sendable func listJobTypes(request: Request, context: Context) async throws -> Response {
        let serving = workers.liveWorkersByType()
        let body = jobTypes.values.sorted { $0.name < $1.name }.map { type in
            JobTypeView(name: type.name, summary: type.summary, paramsSchema: type.params.jsonSchema,
                        workers: serving[type.name] ?? [])
        }
        return try jsonResponse(.ok, ["jobTypes": body])
    }

    /// `GET /workers`: every worker heard from, its job types, capacity, running jobs and last heartbeat.
    @Sendable func listWorkers(request: Request, context: Context) async throws -> Response {
        let body = workers.list().map { entry in
            WorkerView(workerID: entry.heartbeat.workerID, alive: entry.alive, stopped: entry.heartbeat.stopped,
                       jobTypes: entry.heartbeat.jobTypes.map(\.name), concurrency: entry.heartbeat.concurrency,
                       runningJobs: entry.heartbeat.runningJobs, startedAt: entry.heartbeat.startedAt,
                       lastHeartbeatAt: entry.heartbeat.sentAt)
        }
        return try jsonResponse(.ok, ["workers": body])
    }

    /// An idempotency key survives restarts through the status topic; on a miss,
    /// catch up (bounded) first, as for reads.
    private func job(for key: IdempotencyScope) async -> JobSnapshot? {
        if let known = view.job(forIdempotencyKey: key.key, submittedBy: key.submitter) { return known }
        await view.catchUp(timeout: configuration.catchUpTimeout)
        return view.job(forIdempotencyKey: key.key, submittedBy: key.submitter)
    }

    /// The job as its submit was answered: `queued`, as requested.
    private static func asAccepted(_ job: JobSnapshot, _ submission: SubmitRequest) -> JobSnapshot {
        JobSnapshot.queued(id: job.id, type: job.type, params: job.params, maxAttempts: submission.maxAttempts,
                           timeoutMs: submission.timeoutMs, idempotencyKey: job.idempotencyKey,
                           submittedBy: job.submittedBy, orderingKey: job.orderingKey, at: job.createdAt)
    }

    /// The one `Idempotency-Key`, if sent. Sent twice it is refused, not joined
    /// into one key ("a, b") that neither copy of the request meant.
    private static func idempotencyKey(_ values: [String]) throws -> String? {
        guard values.count <= 1 else {
            throw ProblemDetails.invalidRequest([.init(pointer: "", detail: "the Idempotency-Key header must be sent once")])
        }
        guard let key = values.first else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            throw ProblemDetails.invalidRequest([.init(pointer: "", detail: "the Idempotency-Key header must be 1 to 255 printable ASCII characters")])
        }
        return key
    }

    private func find(_ context: Context) async throws -> JobSnapshot {
        let id = try context.jobIDParameter()
        guard let snapshot = await view.snapshot(JobID(rawValue: id), catchUpTimeout: configuration.catchUpTimeout) else {
            throw ProblemDetails.jobNotFound(id)
        }
        return snapshot
    }

    private func snapshotResponse(_ snapshot: JobSnapshot, status: HTTPResponse.Status, location: Bool = false) throws -> Response {
        var response = Response(status: status, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: try WireFormat.encodeSnapshot(snapshot))))
        if location { response.headers[.location] = "/jobs/\(snapshot.id)" }
        return response
    }
}

/// A JSON body in the wire format every topic and route shares.
func jsonResponse(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
    Response(status: status, headers: [.contentType: "application/json"],
             body: .init(byteBuffer: ByteBuffer(bytes: try WireFormat.encode(value))))
}

/// `GET /ready` once the view has caught up.
struct Readiness: Encodable {
    let status: String
    let jobs: Int
}

/// A worker as `GET /workers` shows it.
struct WorkerView: Encodable {
    let workerID: String
    /// Heard from within the silence timeout and not stopped.
    let alive: Bool
    let stopped: Bool
    let jobTypes: [String]
    let concurrency: Int
    let runningJobs: [JobID]
    let startedAt: Date
    let lastHeartbeatAt: Date
}

/// Idempotency keys with a request in progress on this gateway.
final class KeysInFlight: Sendable {
    private let keys = Mutex<Set<IdempotencyScope>>([])
    func claim(_ key: IdempotencyScope) -> Bool { keys.withLock { $0.insert(key).inserted } }
    func release(_ key: IdempotencyScope) { _ = keys.withLock { $0.remove(key) } }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}

/// A job type as `GET /job-types` shows it.
struct JobTypeView: Encodable {
    let name: String
    let summary: String
    let paramsSchema: JSONValue
    /// Live workers that announce it.
    let workers: [String]
}
