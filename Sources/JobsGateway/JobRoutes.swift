import Foundation
import Hummingbird
import JobsCore
import KafkaClient
import Logging

/// The HTTP API: submit, read and cancel jobs; health and readiness.
struct JobRoutes<Context: RequestContext>: Sendable {
    let view: JobView
    let commands: JobCommands
    let jobTypes: [String: JobTypeDescriptor]
    let configuration: GatewayConfiguration
    let logger: Logger

    func register(on router: Router<Context>) {
        router.post("/jobs", use: submit)
        router.get("/jobs/{id}", use: read)
        router.post("/jobs/{id}/cancel", use: cancel)
        router.get("/health") { _, _ in jsonResponse(.ok, ["status": "up"]) }
        router.get("/ready", use: readiness)
    }

    /// `POST /jobs`: validate, publish the start command, answer 202 once Kafka acknowledged it.
    @Sendable func submit(request: Request, context: Context) async throws -> Response {
        if let contentType = request.headers[.contentType], !contentType.lowercased().contains("json") {
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

        let job = JobSnapshot.queued(type: submission.type, params: submission.params)
        do {
            try await commands.start(job)
        } catch {
            logger.warning("start command not acknowledged", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
            throw ProblemDetails.brokerUnavailable("the job could not be queued in time (\(error.code)); it was not accepted")
        }
        view.apply(job)
        do {
            // Makes the job visible to every replica (and to outside consumers) while it waits.
            try await commands.publishStatus(job)
        } catch {
            // The command is safely queued: the job exists and runs; its first worker snapshot will show it.
            logger.warning("queued snapshot not acknowledged", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
        }
        logger.debug("job accepted", metadata: ["job.id": "\(job.id)", "job.type": "\(job.type)"])
        return try snapshotResponse(job, status: .accepted, location: true)
    }

    /// `GET /jobs/{id}`.
    @Sendable func read(request: Request, context: Context) async throws -> Response {
        try snapshotResponse(try await find(context), status: .ok)
    }

    /// `POST /jobs/{id}/cancel`: publish the cancel to every worker; 409 once the job has ended.
    @Sendable func cancel(request: Request, context: Context) async throws -> Response {
        let current = try await find(context)
        guard !current.status.isTerminal else { throw ProblemDetails.jobFinished(current) }
        do {
            try await commands.cancel(current.id)
        } catch {
            throw ProblemDetails.brokerUnavailable("the cancel could not be delivered in time (\(error.code))")
        }
        var requested = current
        requested.cancelRequested = true
        requested.updatedAt = Date()
        view.apply(requested)
        do {
            try await commands.publishStatus(requested)
        } catch {
            logger.warning("cancel-requested snapshot not acknowledged", metadata: ["job.id": "\(current.id)", "error": "\(error)"])
        }
        return try snapshotResponse(view[current.id] ?? requested, status: .accepted)
    }

    @Sendable func readiness(request: Request, context: Context) async throws -> Response {
        guard view.isReady else { throw ProblemDetails.notReady() }
        return jsonResponse(.ok, ["status": "ready", "jobs": "\(view.count)"])
    }

    private func find(_ context: Context) async throws -> JobSnapshot {
        let id = try context.parameters.require("id")
        guard let snapshot = await view.snapshot(JobID(rawValue: id), catchUpTimeout: configuration.catchUpTimeout) else {
            throw ProblemDetails.jobNotFound(id)
        }
        return snapshot
    }

    private func snapshotResponse(_ snapshot: JobSnapshot, status: HTTPResponse.Status, location: Bool = false) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if location { headers[.location] = "/jobs/\(snapshot.id)" }
        let body = try WireFormat.encode(snapshot)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

func jsonResponse(_ status: HTTPResponse.Status, _ fields: [String: String]) -> Response {
    let body = (try? JSONEncoder().encode(fields)) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}
