import Foundation
import Hummingbird
import JobsCore

/// A request's query string, checked: an unknown or malformed parameter is a
/// 400 naming it, never silently ignored (`?state=running` must not list everything).
struct QueryParameters {
    private let parameters: Parameters

    init(_ raw: Parameters, allowed: Set<String>) throws(ProblemDetails) {
        // Hummingbird decodes the values' percent-encoding but not the names':
        // `?st%61tus=running` is `status`, as for any other server.
        let parameters = Parameters(raw.map { (key: $0.key.percentDecoded.map { $0[...] } ?? $0.key, value: $0.value) })
        for (name, _) in parameters where !allowed.contains(String(name)) {
            // An empty list of known ones reads like a gateway fault: say there are none.
            throw ProblemDetails.invalidQuery(parameter: String(name), allowed.isEmpty
                ? "this route takes no query parameters"
                : "is not a query parameter here; known: \(allowed.sorted().joined(separator: ", "))")
        }
        self.parameters = parameters
    }

    func all(_ name: String) -> [String] { parameters.getAll(name) }

    func single(_ name: String) throws(ProblemDetails) -> String? {
        let values = parameters.getAll(name)
        guard values.count <= 1 else { throw ProblemDetails.invalidQuery(parameter: name, "may be given once") }
        return values.first
    }

    /// `status`, repeatable; each one a job status.
    func statuses() throws(ProblemDetails) -> Set<JobStatus> {
        var statuses: Set<JobStatus> = []
        for value in all("status") {
            guard let status = JobStatus(rawValue: value) else {
                throw ProblemDetails.invalidQuery(parameter: "status", "'\(value)' is not a status; statuses: "
                    + JobStatus.allCases.map(\.rawValue).joined(separator: ", "))
            }
            statuses.insert(status)
        }
        return statuses
    }

    func timestamp(_ name: String) throws(ProblemDetails) -> Date? {
        guard let text = try single(name) else { return nil }
        guard let date = WireFormat.parseTimestamp(text) else {
            throw ProblemDetails.invalidQuery(parameter: name, "must be an ISO 8601 time such as 2026-11-23T16:40:00Z")
        }
        return date
    }

    /// Digits only (`+5`, ` 5` or `5.0` are a 400, not 5).
    func integer(_ name: String, in range: ClosedRange<Int>) throws(ProblemDetails) -> Int? {
        guard let text = try single(name) else { return nil }
        guard let value = Int(decimalDigits: text), range.contains(value) else {
            throw ProblemDetails.invalidQuery(parameter: name, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}

/// `GET /jobs`'s query: filters, page size and cursor.
struct JobListQuery {
    var filter: JobFilter
    var limit: Int
    var cursor: JobListPosition?

    static let defaultLimit = 50

    init(_ parameters: Parameters, maxLimit: Int) throws(ProblemDetails) {
        let query = try QueryParameters(parameters, allowed: Endpoint.listJobs.queryParameters)
        filter = JobFilter(statuses: try query.statuses(), types: Set(query.all("type")),
                           createdSince: try query.timestamp("createdSince"), createdUntil: try query.timestamp("createdUntil"))
        limit = try query.integer("limit", in: 1...maxLimit) ?? min(Self.defaultLimit, maxLimit)
        if let text = try query.single("cursor") {
            guard let cursor = JobListPosition(cursor: text) else {
                throw ProblemDetails.invalidQuery(parameter: "cursor", "is not a cursor this API gave out; use nextCursor from a page")
            }
            self.cursor = cursor
        }
    }
}

/// `GET /jobs`'s answer.
struct JobListResponse: Encodable {
    let jobs: [JobSnapshot]
    /// Pass as `cursor` for the next page; absent on the last one.
    let nextCursor: String?

    /// The JSON `encode(to:)` writes, with each job written by the snapshot codec.
    func encoded() throws -> [UInt8] {
        var bytes = Array(#"{"jobs":["#.utf8)
        for (index, job) in jobs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += try WireFormat.encodeSnapshot(job)
        }
        bytes.append(UInt8(ascii: "]"))
        if let nextCursor {
            bytes += Array(#","nextCursor":"#.utf8) + (try WireFormat.encode(nextCursor))
        }
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
