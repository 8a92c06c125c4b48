import HTTPTypes

/// Every route of the API, with who may call it: the one table that routing,
/// authorization and the OpenAPI document are checked against (each case is
/// the document's `operationId`).
public enum Endpoint: String, CaseIterable, Sendable {
    case submitJob, listJobs, getJob, cancelJob, streamJobEvents, streamEvents
    case listJobTypes, listWorkers, whoami, metrics
    case health, ready, openAPIJSON, openAPIYAML

    /// Who may call an endpoint.
    public enum Access: Sendable, Equatable {
        /// Anyone: probes, and the API's own description.
        case open
        /// Any valid key.
        case anyKey
        /// A key with this scope (or `admin`).
        case scope(Scope)
    }

    public var method: HTTPRequest.Method {
        switch self {
        case .submitJob, .cancelJob: .post
        default: .get
        }
    }

    public var path: String {
        switch self {
        case .submitJob, .listJobs: "/jobs"
        case .getJob: "/jobs/{id}"
        case .cancelJob: "/jobs/{id}/cancel"
        case .streamJobEvents: "/jobs/{id}/events"
        case .streamEvents: "/events"
        case .listJobTypes: "/job-types"
        case .listWorkers: "/workers"
        case .whoami: "/whoami"
        case .metrics: "/metrics"
        case .health: "/health"
        case .ready: "/ready"
        case .openAPIJSON: "/openapi.json"
        case .openAPIYAML: "/openapi.yaml"
        }
    }

    public var access: Access {
        switch self {
        case .submitJob: .scope(.submit)
        case .cancelJob: .scope(.cancel)
        case .listJobs, .getJob, .streamJobEvents, .streamEvents, .listJobTypes, .listWorkers: .scope(.read)
        case .metrics: .scope(.admin)
        case .whoami: .anyKey
        case .health, .ready, .openAPIJSON, .openAPIYAML: .open
        }
    }

    /// The query parameters an endpoint takes; any other is refused with
    /// `400 invalid-query`, on every route alike, so that a misspelt one is
    /// never silently ignored.
    public var queryParameters: Set<String> {
        switch self {
        case .listJobs: ["status", "type", "createdSince", "createdUntil", "limit", "cursor"]
        case .streamEvents: ["status", "type"]
        default: []
        }
    }

    /// Whether `HEAD` is answered too, as the `GET` without its body (RFC 9110
    /// §9.3.2). Not for the event streams: their answer is a stream that holds
    /// a slot of the client's until it ends, and a `HEAD` would never end it.
    public var answersHead: Bool {
        method == .get && self != .streamJobEvents && self != .streamEvents
    }

    /// The methods routed on `path` (a request path, not a pattern); empty when
    /// no route has that path, so a wrong method is told apart from a wrong path.
    public static func methods(allowedOn path: String) -> [HTTPRequest.Method] {
        // Empty segments don't count, as for the router: `/jobs/` is `/jobs`.
        let segments = path.split(separator: "/")
        return allCases.filter { endpoint in
            let pattern = endpoint.path.split(separator: "/")
            return pattern.count == segments.count
                && zip(pattern, segments).allSatisfy { $0 == $1 || $0.hasPrefix("{") }
        }.flatMap { $0.answersHead ? [$0.method, .head] : [$0.method] }
    }
}
