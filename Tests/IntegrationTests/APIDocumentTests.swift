import Foundation
import HTTPTypes
import JobsCore
import JobsGateway
import Testing
import Yams

@Suite("The OpenAPI document matches the server", .serialized, .timeLimit(.minutes(3)))
struct APIDocumentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let methods = ["get", "post", "put", "patch", "delete", "head", "options"]

    @Test("its operations are exactly the routes, with the same methods, paths, access rules and query parameters")
    func operationsAreTheRoutes() throws {
        let document = try APIDocument().base
        var documented: [String: (method: String, path: String, access: Endpoint.Access, query: Set<String>)] = [:]
        for (path, item) in try #require(document["paths"]?.objectValue) {
            for (method, operation) in try #require(item.objectValue) where Self.methods.contains(method) {
                let id = try #require(operation["operationId"]?.stringValue, "\(method) \(path) has no operationId")
                let access: Endpoint.Access
                if let scope = operation["x-required-scope"]?.stringValue {
                    access = .scope(try #require(Scope(rawValue: scope)))
                } else if operation["security"] == .array([]) {
                    access = .open
                } else {
                    access = .anyKey
                }
                let parameters = (operation["parameters"]?.arrayValue ?? []).map { parameter in
                    // `#/components/parameters/<name>` stands for that one.
                    guard let name = parameter["$ref"]?.stringValue?.split(separator: "/").last else { return parameter }
                    return document["components"]?["parameters"]?[String(name)] ?? parameter
                }
                let query = parameters.filter { $0["in"] == "query" }.compactMap { $0["name"]?.stringValue }
                // Every route refuses a query parameter it doesn't list.
                #expect(operation["responses"]?["400"] != nil, "\(id) does not document its 400")
                #expect(documented[id] == nil, "operationId \(id) is used twice")
                documented[id] = (method, path, access, Set(query))
            }
        }
        #expect(Set(documented.keys) == Set(Endpoint.allCases.map(\.rawValue)))
        for endpoint in Endpoint.allCases {
            let entry = try #require(documented[endpoint.rawValue], "\(endpoint) is not in the document")
            #expect(entry.method == endpoint.method.rawValue.lowercased(), "\(endpoint)")
            #expect(entry.path == endpoint.path, "\(endpoint)")
            #expect(entry.access == endpoint.access, "\(endpoint)")
            #expect(entry.query == endpoint.queryParameters, "\(endpoint)")
        }
    }

    @Test("its problem types are exactly those the gateway answers with")
    func problemTypes() throws {
        let source = try String(contentsOf: Self.root.appendingPathComponent("Sources/JobsGateway/ProblemDetails.swift"), encoding: .utf8)
        let answered = Set(source.matches(of: /typeBase \+ "([a-z-]+)"/).map { "/problems/" + $0.1 }).union(["about:blank"])
        let document = try APIDocument().base
        let listed = document["components"]?["schemas"]?["Problem"]?["properties"]?["type"]?["enum"]?.arrayValue?.compactMap(\.stringValue)
        #expect(Set(try #require(listed)) == answered)
    }

    @Test("its JobSnapshot has the properties and required fields of schemas/job-snapshot.schema.json")
    func snapshotSchemaAgrees() throws {
        let file = try Data(contentsOf: Self.root.appendingPathComponent("schemas/job-snapshot.schema.json"))
        let canonical = try JSONDecoder().decode(JSONValue.self, from: file)
        let documented = try #require(try APIDocument().base["components"]?["schemas"]?["JobSnapshot"])
        #expect(Set(documented["properties"]?.objectValue?.keys ?? [:].keys) == Set(canonical["properties"]?.objectValue?.keys ?? [:].keys))
        #expect(Set(documented["required"]?.arrayValue ?? []) == Set(canonical["required"]?.arrayValue ?? []))
    }

    @Test("served, it describes each job type's params, and its JSON and YAML forms agree")
    func servedDocument() async throws {
        let echo = JobTypeDescriptor(name: "echo", summary: "Echoes.", params: ParamsSchema([
            .init("text", .string(maxLength: 10), required: true), .init("mode", .string(allowed: ["a", "b"])),
        ]))
        try await TestCluster().withGateway(worker: false, configure: { $0.jobTypes.append(echo); $0.maxPageSize = 120 }) { client in
            let json = try await client.request(.get, "/openapi.json")
            #expect(json.status == .ok)
            #expect(json.headers[.contentType] == "application/json")
            let document = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: json.body))
            #expect(document["openapi"] == "3.1.0")
            let alternatives = try #require(document["components"]?["schemas"]?["SubmitJobRequest"]?["oneOf"]?.arrayValue)
            #expect(alternatives.compactMap { $0["properties"]?["type"]?["const"]?.stringValue } == ["echo", "noop", "sleep"])
            // As the type announces it, but with null allowed where a param may be left out
            // (in an enum's list too, or a null would fail it whatever the type says).
            let echoParams = alternatives[0]["properties"]?["params"]
            #expect(echoParams?["properties"]?["text"] == echo.params.jsonSchema["properties"]?["text"])
            #expect(echoParams?["properties"]?["mode"]?["type"] == ["string", "null"])
            #expect(echoParams?["properties"]?["mode"]?["enum"] == ["a", "b", .null])
            let sleepSteps = alternatives[2]["properties"]?["params"]?["properties"]?["steps"]?["type"]
            #expect(sleepSteps == ["integer", "null"])
            // Left out, params are `{}`, which a type with a required param refuses.
            #expect(alternatives[0]["required"] == ["type", "params"])
            #expect(alternatives[1]["required"] == ["type"])
            #expect(alternatives[2]["required"] == ["type"])
            #expect(document["security"] == .array([]), "authentication is off in this gateway, and the document says so")
            let limit = document["paths"]?["/jobs"]?["get"]?["parameters"]?.arrayValue?.first { $0["name"] == "limit" }
            #expect(limit?["schema"]?["maximum"] == 120, "the page size bound is this gateway's")

            let yaml = try await client.request(.get, "/openapi.yaml")
            #expect(yaml.headers[.contentType]?.hasPrefix("application/yaml") == true)
            #expect(try YAMLDecoder().decode(JSONValue.self, from: yaml.text) == document)
            #expect(try Self.responseCodesNotStrings(inYAML: yaml.text) == [])
        }
    }

    @Test("as YAML, every response code is a string key, as OpenAPI 3.1 requires, not an integer")
    func yamlResponseCodesAreStrings() throws {
        let document = try APIDocument().document(jobTypes: [], authentication: .disabled, maxPageSize: 200)
        let yaml = try APIDocument.yaml(document)
        #expect(yaml.contains(#""200":"#))
        #expect(try Self.responseCodesNotStrings(inYAML: yaml) == [])
        #expect(try YAMLDecoder().decode(JSONValue.self, from: yaml) == document)
    }

    /// The response codes, as `METHOD path code`, that a YAML parser reads as
    /// something other than a string (a plain `200:` is an integer key).
    static func responseCodesNotStrings(inYAML yaml: String) throws -> [String] {
        let root = try #require(try Yams.compose(yaml: yaml))
        var wrong: [String] = []
        var count = 0
        for (path, item) in try #require(root["paths"]?.mapping) {
            for (method, operation) in try #require(item.mapping) where methods.contains(method.string ?? "") {
                for (code, _) in try #require(operation["responses"]?.mapping, "\(method) \(path)") {
                    count += 1
                    if code.tag != Tag(.str) { wrong.append("\(method.string ?? "") \(path.string ?? "") \(code.string ?? "")") }
                }
            }
        }
        #expect(count > 0, "the document lists responses")
        return wrong
    }

    @Test("the dashboard is served at /, from the package's resources")
    func dashboard() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let page = try await client.request(.get, "/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.text.contains("dashboard.js"))
            #expect(try await client.request(.get, "/dashboard.js").status == .ok)
            #expect(try await client.request(.get, "/dashboard.css").status == .ok)
            #expect(try await client.request(.get, "/dashboard.js").headers[.contentType] == "text/javascript; charset=utf-8")
            let missing = try await client.request(.get, "/no-such-file.html")
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")

            // Whole files only: a range past the end once got a 206 with a negative Content-Length.
            let whole = try await client.request(.get, "/dashboard.js")
            let ranged = try await client.request(.get, "/dashboard.js", headers: [.range: "bytes=999999-"])
            #expect(ranged.status == .ok && ranged.body == whole.body)
            #expect(ranged.headers[.contentLength] == String(whole.body.readableBytes) && ranged.headers[.contentRange] == nil)
            #expect(whole.headers[.acceptRanges] == nil && ranged.headers[.acceptRanges] == nil, "no ranges, so none announced")
            // Only the files' own paths; another method there is a 405.
            #expect(try await client.request(.get, "/index.html/").status == .notFound)
            for (method, path) in [(HTTPRequest.Method.post, "/"), (.delete, "/dashboard.js")] {
                let refused = try await client.request(method, path)
                #expect(refused.status == .methodNotAllowed && refused.headers[.allow] == "GET, HEAD", "\(method) \(path): \(refused.status)")
            }
        }
    }

    @Test("a known path with a method it doesn't route is 405 with Allow; an unknown path is 404")
    func wrongMethod() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let delete = try await client.request(.delete, "/jobs")
            #expect(delete.status == .methodNotAllowed)
            #expect(delete.headers[.allow] == "POST, GET, HEAD")
            #expect(delete.headers[.contentType] == "application/problem+json")
            let put = try await client.request(.put, "/jobs/some-id/cancel")
            #expect(put.status == .methodNotAllowed)
            #expect(put.headers[.allow] == "POST")
            let unknown = try await client.request(.get, "/jobs/some-id/unknown")
            #expect(unknown.status == .notFound)
            // Empty segments don't count, for the router nor for Allow: /jobs/ is /jobs.
            for path in ["/jobs/", "//jobs", "/jobs//some-id/cancel/"] {
                let reply = try await client.request(.put, path)
                #expect(reply.status == .methodNotAllowed, "\(path)")
                #expect(reply.headers[.allow] == (path.hasSuffix("cancel/") ? "POST" : "POST, GET, HEAD"), "\(path)")
            }
        }
    }

    @Test("HEAD answers what GET would, without the body; the event streams don't take it")
    func headRequests() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type": "noop"}"#)
            let get = try await client.request(.get, "/jobs/\(job.id)")
            let head = try await client.request(.head, "/jobs/\(job.id)")
            #expect(head.status == .ok)
            #expect(head.headers[.contentType] == get.headers[.contentType])
            #expect(head.headers[.contentLength] == get.headers[.contentLength])
            #expect(try await client.request(.head, "/health").status == .ok)

            let missing = try await client.request(.head, "/jobs/no-such-job")
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")

            // A stream's answer holds one of the client's stream slots until it ends.
            let stream = try await client.request(.head, "/events")
            #expect(stream.status == .methodNotAllowed)
            #expect(stream.headers[.allow] == "GET")

            // The connection still reads the next answer right: no body followed a HEAD answer
            // (NIO's encoder leaves it out).
            let after = try await client.request(.get, "/jobs/no-such-job")
            #expect(after.status == .notFound)
            #expect(try after.problem().status == 404)
        }
    }
}
