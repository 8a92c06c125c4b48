import Foundation
import HTTPTypes
import Hummingbird
import JobsCore
import Logging
import NIOCore

/// The whole HTTP surface: every ``Endpoint`` routed to its handler behind its
/// access check, the OpenAPI document, and the dashboard's files.
struct GatewayAPI: Sendable {
    typealias Handler = @Sendable (Request, GatewayRequestContext) async throws -> Response

    let jobs: JobRoutes
    let events: EventStreamRoutes
    let document: APIDocument
    let metrics: GatewayMetrics
    let authentication: Authentication

    func register(on router: Router<GatewayRequestContext>) {
        for endpoint in Endpoint.allCases {
            let handler = guarded(endpoint.access, checkingQuery(endpoint, handler(for: endpoint)))
            router.on(RouterPath(endpoint.path), method: endpoint.method, use: handler)
            if endpoint.answersHead {
                router.on(RouterPath(endpoint.path), method: .head) { request, context in
                    try await handler(request, context).createHeadResponse()
                }
            }
        }
    }

    private func handler(for endpoint: Endpoint) -> Handler {
        switch endpoint {
        case .submitJob: jobs.submit
        case .listJobs: jobs.list
        case .getJob: jobs.read
        case .cancelJob: jobs.cancel
        case .streamJobEvents: events.jobEvents
        case .streamEvents: events.allEvents
        case .listJobTypes: jobs.listJobTypes
        case .listWorkers: jobs.listWorkers
        case .whoami: whoami
        case .metrics: exposition
        case .health: jobs.health
        case .ready: jobs.readiness
        case .openAPIJSON: openAPIJSON
        case .openAPIYAML: openAPIYAML
        }
    }

    /// Refuses a query parameter the endpoint does not take. Endpoints that take
    /// some check them in full where they read them; this check is for the rest.
    private func checkingQuery(_ endpoint: Endpoint, _ handler: @escaping Handler) -> Handler {
        guard endpoint.queryParameters.isEmpty else { return handler }
        return { request, context in
            if let query = request.uri.query, !query.isEmpty {
                _ = try QueryParameters(request.uri.queryParameters, allowed: [])
            }
            return try await handler(request, context)
        }
    }

    /// Runs `handler` only for a caller `access` admits: 401 without a valid
    /// key, 403 with one that lacks the scope.
    private func guarded(_ access: Endpoint.Access, _ handler: @escaping Handler) -> Handler {
        if access == .open { return handler }
        let authentication = authentication
        return { request, context in
            guard let caller = authentication.caller(authorization: request.headers[.authorization]) else {
                throw ProblemDetails.unauthorized(request.headers[.authorization] == nil
                    ? "send an API key as Authorization: Bearer <key>"
                    : "the API key is not valid")
            }
            if case .scope(let scope) = access, !caller.allows(scope) {
                throw ProblemDetails.forbidden(needs: scope, caller: caller)
            }
            var context = context
            context.caller = caller
            return try await handler(request, context)
        }
    }

    @Sendable func whoami(request: Request, context: GatewayRequestContext) async throws -> Response {
        let caller = context.caller ?? .anonymous
        let authentication = if case .disabled = self.authentication { "disabled" } else { "api-key" }
        return try jsonResponse(.ok, Whoami(authentication: authentication, name: caller.keyName,
                                            scopes: caller.scopes.sorted().map(\.rawValue)))
    }

    @Sendable func exposition(request: Request, context: GatewayRequestContext) async throws -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
    }

    @Sendable func openAPIJSON(request: Request, context: GatewayRequestContext) async throws -> Response {
        let body = try APIDocument.json(document.document(jobTypes: Array(jobs.jobTypes.values), authentication: authentication,
                                                              maxPageSize: jobs.configuration.maxPageSize))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    @Sendable func openAPIYAML(request: Request, context: GatewayRequestContext) async throws -> Response {
        let body = try APIDocument.yaml(document.document(jobTypes: Array(jobs.jobTypes.values), authentication: authentication,
                                                              maxPageSize: jobs.configuration.maxPageSize))
        return Response(status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

struct Whoami: Encodable {
    let authentication: String
    let name: String?
    let scopes: [String]
}

/// CORS for the configured origins only: a request from any other origin gets
/// no CORS headers, so browsers keep other sites' pages from calling the API.
struct AllowedOriginsMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: Set<String>
    let cors = CORSMiddleware<Context>(
        allowOrigin: .originBased,
        allowHeaders: [.accept, .authorization, .contentType, .idempotencyKey, .ifNoneMatch, .lastEventID],
        allowMethods: [.get, .post, .options],
        exposedHeaders: corsExposedHeaders,
        maxAge: .seconds(600)
    )

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], origins.contains(origin) else {
            // The answer depends on Origin all the same: a shared cache must not
            // give this one (without CORS headers) to an allowed origin's page.
            var response: Response
            do {
                response = try await next(request, context)
            } catch let error as any HTTPResponseError {
                response = try error.response(from: request, context: context)
            }
            response.headers[values: .vary].append("Origin")
            return response
        }
        var response = try await cors.handle(request, context: context, next: next)
        // Hummingbird's middleware names them on preflight answers only; browsers
        // need them on the real response to let a page read these headers.
        if request.method != .options { response.headers[.accessControlExposeHeaders] = corsExposedHeaders.joined(separator: ", ") }
        return response
    }
}

/// Response headers a cross-origin page may read.
private let corsExposedHeaders = ["ETag", "Location", "Retry-After", "WWW-Authenticate"]

/// The dashboard's folder: the packaged copy, or the configured one.
func dashboardDirectory(_ configured: String?) -> String? {
    configured ?? Bundle.module.url(forResource: "dashboard", withExtension: nil)?.path
}
