import Foundation
import Hummingbird
import JobsCore
import Logging
import NIOCore
import NIOHTTP1

/// An RFC 9457 problem: every error the gateway answers has this body, with a
/// stable `type` a client can branch on (the list is in docs/api.md).
public struct ProblemDetails: Error, Sendable, Codable, HTTPResponseError {
    public var type: String
    public var title: String
    /// The HTTP status code, repeated in the body as RFC 9457 asks.
    public var statusCode: Int
    public var detail: String
    /// Which fields were refused, as JSON pointers into the request body.
    public var errors: [ParamsSchema.Violation]?
    /// For an unknown job type: the types that exist.
    public var knownTypes: [String]?
    /// Which query parameters were refused.
    public var parameters: [QueryViolation]?
    /// Sent as a header, not in the body.
    public var retryAfterSeconds: Int?
    /// A `WWW-Authenticate` challenge, sent as a header.
    public var challenge: String?
    /// The methods a path allows, sent as `Allow` with a 405.
    public var allow: String?

    enum CodingKeys: String, CodingKey {
        case type, title, statusCode = "status", detail, errors, knownTypes, parameters
    }

    /// A refused query parameter.
    public struct QueryViolation: Sendable, Codable, Hashable {
        public var parameter: String
        public var detail: String
    }

    public init(type: String, title: String, status: HTTPResponse.Status, detail: String,
                errors: [ParamsSchema.Violation]? = nil, knownTypes: [String]? = nil, retryAfterSeconds: Int? = nil) {
        self.type = type
        self.title = title
        self.statusCode = status.code
        self.detail = detail
        self.errors = errors
        self.knownTypes = knownTypes
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if let retryAfterSeconds { headers[.retryAfter] = "\(retryAfterSeconds)" }
        if let challenge { headers[.wwwAuthenticate] = challenge }
        if let allow { headers[.allow] = allow }
        let body = try JSONEncoder().encode(self)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension ProblemDetails {
    static let typeBase = "/problems/"

    static func malformedJSON(_ detail: String) -> ProblemDetails {
        ProblemDetails(type: typeBase + "malformed-json", title: "Malformed JSON", status: .badRequest, detail: detail)
    }

    static func invalidRequest(_ violations: [ParamsSchema.Violation]) -> ProblemDetails {
        let shown = reported(violations)
        return ProblemDetails(type: typeBase + "invalid-request", title: "Invalid request", status: .badRequest,
                              detail: summary(of: violations, shown: shown), errors: shown)
    }

    /// At most this many refused fields are listed: a 64 KiB body of thousands of
    /// unknown fields would otherwise get an answer ten times its size.
    static let maxReportedViolations = 20

    private static func reported(_ violations: [ParamsSchema.Violation]) -> [ParamsSchema.Violation] {
        Array(violations.prefix(maxReportedViolations))
    }

    private static func summary(of violations: [ParamsSchema.Violation], shown: [ParamsSchema.Violation]) -> String {
        let listed = shown.map(\.description).joined(separator: "; ")
        return violations.count > shown.count ? listed + "; and \(violations.count - shown.count) more" : listed
    }

    static func unknownJobType(_ name: String, known: [String]) -> ProblemDetails {
        ProblemDetails(type: typeBase + "unknown-job-type", title: "Unknown job type", status: .badRequest,
                       detail: "no job type is named \(name); known types: \(known.joined(separator: ", "))",
                       errors: [.init(pointer: "/type", detail: "is not a known job type")], knownTypes: known)
    }

    static func invalidParams(type: String, _ violations: [ParamsSchema.Violation]) -> ProblemDetails {
        let shown = reported(violations)
        return ProblemDetails(type: typeBase + "invalid-params", title: "Invalid params", status: .badRequest,
                              detail: "params refused by job type \(type): " + summary(of: violations, shown: shown),
                              errors: shown)
    }

    static func unsupportedMediaType(_ given: String) -> ProblemDetails {
        ProblemDetails(type: typeBase + "unsupported-media-type", title: "Unsupported media type",
                       status: .unsupportedMediaType, detail: "send the body as application/json, not \(given)")
    }

    static func bodyTooLarge(limit: Int) -> ProblemDetails {
        ProblemDetails(type: typeBase + "body-too-large", title: "Body too large", status: .contentTooLarge,
                       detail: "the request body is over the limit of \(limit) bytes")
    }

    /// The client stopped sending before the body was whole: its request, not the gateway, is at fault.
    static func incompleteBody(contentLength: String?) -> ProblemDetails {
        ProblemDetails(type: typeBase + "incomplete-body", title: "Incomplete body", status: .badRequest,
                       detail: contentLength.map { "the request body ended before its Content-Length of \($0) bytes" }
                           ?? "the request body ended before its last chunk")
    }

    static func jobNotFound(_ id: String) -> ProblemDetails {
        ProblemDetails(type: typeBase + "job-not-found", title: "Job not found", status: .notFound,
                       detail: "no job has the id \(id)")
    }

    static func jobFinished(_ snapshot: JobSnapshot) -> ProblemDetails {
        ProblemDetails(type: typeBase + "job-finished", title: "Job already finished", status: .conflict,
                       detail: "job \(snapshot.id) already ended \(snapshot.status.rawValue); it can't be cancelled")
    }

    static func idempotencyKeyReused(_ key: String, job: JobID) -> ProblemDetails {
        ProblemDetails(type: typeBase + "idempotency-key-reused", title: "Idempotency key reused", status: .conflict,
                       detail: "the Idempotency-Key \(key) was used for job \(job) with a different request")
    }

    static func idempotencyKeyInUse(_ key: String) -> ProblemDetails {
        ProblemDetails(type: typeBase + "idempotency-key-in-use", title: "Idempotency key in use", status: .conflict,
                       detail: "a request with the Idempotency-Key \(key) is still being handled; retry it")
    }

    static func brokerUnavailable(_ detail: String) -> ProblemDetails {
        ProblemDetails(type: typeBase + "broker-unavailable", title: "Broker unavailable", status: .serviceUnavailable,
                       detail: detail, retryAfterSeconds: 1)
    }

    static func notReady() -> ProblemDetails {
        ProblemDetails(type: typeBase + "not-ready", title: "Not ready", status: .serviceUnavailable,
                       detail: "the job view has not caught up with the status topic yet", retryAfterSeconds: 1)
    }

    static func invalidQuery(parameter: String, _ detail: String) -> ProblemDetails {
        var problem = ProblemDetails(type: typeBase + "invalid-query", title: "Invalid query", status: .badRequest,
                                     detail: "\(parameter): \(detail)")
        problem.parameters = [QueryViolation(parameter: parameter, detail: detail)]
        return problem
    }

    static func paramsTooLarge(limit: Int) -> ProblemDetails {
        ProblemDetails(type: typeBase + "params-too-large", title: "Params too large", status: .contentTooLarge,
                       detail: "the job's params are over the limit of \(limit) bytes (encoded as JSON)",
                       errors: [.init(pointer: "/params", detail: "is over \(limit) bytes")])
    }

    static func tooManyStreams(limit: Int) -> ProblemDetails {
        ProblemDetails(type: typeBase + "too-many-streams", title: "Too many event streams", status: .tooManyRequests,
                       detail: "this client already has \(limit) event streams open; close one first", retryAfterSeconds: 5)
    }

    static func unauthorized(_ detail: String) -> ProblemDetails {
        var problem = ProblemDetails(type: typeBase + "unauthorized", title: "Unauthorized", status: .unauthorized, detail: detail)
        problem.challenge = #"Bearer realm="jobs""#
        return problem
    }

    static func forbidden(needs scope: Scope, caller: Caller) -> ProblemDetails {
        ProblemDetails(type: typeBase + "forbidden", title: "Forbidden", status: .forbidden,
                       detail: "the API key \(caller.keyName ?? "") lacks the \(scope.rawValue) scope this needs")
    }

    /// For plain HTTP errors (no such route, wrong method) `about:blank` is the
    /// RFC's type: the status says it all.
    static func http(_ status: HTTPResponse.Status, detail: String) -> ProblemDetails {
        ProblemDetails(type: "about:blank", title: status.reasonPhrase, status: status, detail: detail)
    }
}

/// Turns every error (ours, the router's, an unexpected one) into a problem
/// body, so no client ever sees an empty or HTML error. It answers with the
/// response rather than rethrowing, so the middleware outside it (CORS,
/// metrics) treats an error answer like any other.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let bodyLimit: Int
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A path with a bad %-escape (`/jobs/%zz`) names nothing: 400, not a 404
        // for whatever a route would make of its raw text.
        let path = request.uri.path
        if path.percentDecoded == nil {
            return try ProblemDetails.http(.badRequest, detail: "the request's path can't be read: \(path)")
                .response(from: request, context: context)
        }
        do {
            return try await next(request, context)
        } catch {
            return try problem(for: error, request: request).response(from: request, context: context)
        }
    }

    private func problem(for error: any Error, request: Request) -> ProblemDetails {
        switch error {
        case let problem as ProblemDetails:
            return problem
        case is NIOTooManyBytesError:
            return ProblemDetails.bodyTooLarge(limit: bodyLimit)
        case let error as HTTPParserError:
            // Reading the body met the end of the connection, or bytes that are not
            // HTTP: the client's doing, so a 400 and a debug line, not an error.
            logger.debug("request not read whole", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            if error == .invalidEOFState { return ProblemDetails.incompleteBody(contentLength: request.headers[.contentLength]) }
            return ProblemDetails.http(.badRequest, detail: "the request could not be read: \(error)")
        case let error as any HTTPResponseError:
            // The router says 404 for a known path with another method; that is a 405.
            let allowed = DashboardPaths.all.contains(request.uri.path)
                ? DashboardPaths.methods : Endpoint.methods(allowedOn: request.uri.path)
            if error.status == .notFound, !allowed.isEmpty {
                var problem = ProblemDetails.http(.methodNotAllowed, detail: "\(request.method) is not allowed on \(request.uri.path); "
                                                  + "allowed: \(allowed.map(\.rawValue).joined(separator: ", "))")
                problem.allow = allowed.map(\.rawValue).joined(separator: ", ")
                return problem
            }
            let detail: String = switch error.status {
            case .notFound: "no route matches \(request.method) \(request.uri.path)"
            case .methodNotAllowed: "\(request.method) is not allowed on \(request.uri.path)"
            // The router's own, for a path it can't take apart (a bad %-escape, a
            // dot segment): its message names no part the client would recognise.
            case .badRequest: "the request's path can't be read: \(request.uri.path)"
            default: error.status.reasonPhrase
            }
            return ProblemDetails.http(error.status, detail: detail)
        default:
            logger.error("unexpected error", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return ProblemDetails(type: ProblemDetails.typeBase + "internal-error", title: "Internal error",
                                  status: .internalServerError, detail: "the gateway failed to handle this request")
        }
    }
}
