import Dispatch
import Hummingbird
import Metrics
import Synchronization

/// HTTP request metrics under the names and dimensions of Hummingbird's
/// `MetricsMiddleware` (docs/operations.md), at a fraction of its cost.
///
/// Hummingbird's wraps every response body in a closure that runs once the body
/// is written, so that it can time the write too; that takes the server off its
/// path for a body that is one buffer, and on `GET /jobs/{id}` it cost about a
/// third of the gateway's throughput (README, Benchmark). A body of known
/// length is written in one go right after the handler returns, so here it is
/// timed up to the handler's return; only a stream (an event stream, whose
/// length is unknown) is still timed, and counted as active, to its last byte.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let cache: RequestMetricsCache

    init(factory: any MetricsFactory) {
        cache = RequestMetricsCache(factory: factory)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        let active = cache.activeRequests(method: request.method)
        active.increment()
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Rare: ``ProblemMiddleware``, inside this one, answers every error with a response.
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let metrics = cache.endpoint(route: context.endpointPath ?? "NotFound", method: request.method, status: status)
            metrics.requests.increment()
            metrics.errors?.increment()
            active.decrement()
            throw error
        }
        let metrics = cache.endpoint(route: context.endpointPath ?? "Unknown", method: request.method, status: response.status)
        metrics.requests.increment()
        // Errors arrive here as problem responses, not as thrown errors: count them by their status.
        metrics.errors?.increment()
        if response.body.contentLength == nil {
            let body = response.body
            response.body = ResponseBody { writer in
                defer {
                    metrics.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                    active.decrement()
                }
                try await body.write(writer)
            }
        } else {
            metrics.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
            active.decrement()
        }
        return response
    }
}

/// The metric handles of each method and of each route, method and status,
/// made once: creating one asks the metrics factory, which locks and hashes.
private final class RequestMetricsCache: Sendable {
    struct Endpoint: Hashable {
        let route: String
        let method: HTTPRequest.Method
        let status: HTTPResponse.Status
    }

    struct EndpointMetrics: Sendable {
        let requests: Counter
        /// Only for an error status (4xx, 5xx), so a success makes no `hb_request_errors` series.
        let errors: Counter?
        let duration: Timer

        init(_ endpoint: Endpoint, factory: any MetricsFactory) {
            let dimensions = [
                ("http.route", endpoint.route),
                ("http.request.method", endpoint.method.rawValue),
                ("http.response.status_code", String(endpoint.status.code)),
            ]
            requests = Counter(label: "hb.requests", dimensions: dimensions, factory: factory)
            duration = Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds,
                             factory: factory)
            errors = endpoint.status.code >= 400 ? Counter(label: "hb.request.errors", dimensions: [
                ("http.route", endpoint.route),
                ("http.request.method", endpoint.method.rawValue),
                ("error.type", String(endpoint.status.code)),
            ], factory: factory) : nil
        }
    }

    private let factory: any MetricsFactory
    private let active = Mutex<[HTTPRequest.Method: Meter]>([:])
    private let endpoints = Mutex<[Endpoint: EndpointMetrics]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func activeRequests(method: HTTPRequest.Method) -> Meter {
        active.withLock { meters in
            if let meter = meters[method] { return meter }
            let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)],
                              factory: factory)
            meters[method] = meter
            return meter
        }
    }

    func endpoint(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status) -> EndpointMetrics {
        let key = Endpoint(route: route, method: method, status: status)
        return endpoints.withLock { cache in
            if let metrics = cache[key] { return metrics }
            let metrics = EndpointMetrics(key, factory: factory)
            cache[key] = metrics
            return metrics
        }
    }
}
