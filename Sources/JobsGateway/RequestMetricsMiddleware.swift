import Dispatch
import Hummingbird
import Prometheus
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

    init(registry: PrometheusCollectorRegistry) {
        cache = RequestMetricsCache(registry: registry)
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
/// made once: creating one asks the registry, which locks and hashes.
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
        let duration: DurationHistogram

        init(_ endpoint: Endpoint, registry: PrometheusCollectorRegistry) {
            let labels = [
                ("http_route", endpoint.route),
                ("http_request_method", endpoint.method.rawValue),
                ("http_response_status_code", String(endpoint.status.code)),
            ]
            requests = registry.makeCounter(descriptor: .httpRequests, labels: labels)
            duration = registry.makeDurationHistogram(descriptor: .httpRequestDuration, labels: labels,
                                                      buckets: RequestMetricsCache.durationBuckets)
            errors = endpoint.status.code >= 400 ? registry.makeCounter(descriptor: .httpRequestErrors, labels: [
                ("http_route", endpoint.route),
                ("http_request_method", endpoint.method.rawValue),
                ("error_type", String(endpoint.status.code)),
            ]) : nil
        }
    }

    /// swift-prometheus' defaults for a `Timer`, as Hummingbird's `MetricsMiddleware` records them.
    static let durationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    private let registry: PrometheusCollectorRegistry
    private let active = Mutex<[HTTPRequest.Method: Gauge]>([:])
    private let endpoints = Mutex<[Endpoint: EndpointMetrics]>([:])

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func activeRequests(method: HTTPRequest.Method) -> Gauge {
        active.withLock { gauges in
            if let gauge = gauges[method] { return gauge }
            let gauge = registry.makeGauge(descriptor: .httpActiveRequests, labels: [("http_request_method", method.rawValue)])
            gauges[method] = gauge
            return gauge
        }
    }

    func endpoint(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status) -> EndpointMetrics {
        let key = Endpoint(route: route, method: method, status: status)
        return endpoints.withLock { cache in
            if let metrics = cache[key] { return metrics }
            let metrics = EndpointMetrics(key, registry: registry)
            cache[key] = metrics
            return metrics
        }
    }
}
