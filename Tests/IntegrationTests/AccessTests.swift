import Foundation
import HTTPTypes
import JobsCore
@testable import JobsGateway
import Testing

@Suite("API keys, scopes, CORS and limits", .serialized, .timeLimit(.minutes(3)))
struct AccessTests {
    static let readerToken = "reader-token-0123456789"
    static let submitterToken = "submitter-token-0123456789"
    static let adminToken = "admin-token-0123456789abc"
    static let keys = [
        APIKey(name: "reader", scopes: [.read], token: readerToken),
        APIKey(name: "submitter", scopes: [.submit], token: submitterToken),
        // Given as a digest: the gateway never sees the token itself.
        try! APIKey(parsing: "admin:admin:sha256:" + sha256Hex(adminToken)),
    ]

    func withKeys(_ body: @escaping @Sendable (GatewayClient) async throws -> Void) async throws {
        try await TestCluster().withGateway(configure: { $0.authentication = .apiKeys(Self.keys) }, body)
    }

    func status(_ client: GatewayClient, _ method: HTTPRequest.Method, _ path: String, token: String?, json: String? = nil) async throws -> HTTPResponse.Status {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        return try await client.request(method, path, json: json, headers: headers).status
    }

    @Test("without a valid key every API route is 401 with a Bearer challenge; probes, the document and the dashboard stay open")
    func unauthenticated() async throws {
        try await withKeys { client in
            for endpoint in Endpoint.allCases where endpoint.access != .open {
                let path = endpoint.path.replacingOccurrences(of: "{id}", with: "some-job")
                for authorization in [nil, "Bearer wrong-token-0123456789", "Basic YWRtaW46YWRtaW4=", "Bearer "] {
                    var headers: HTTPFields = [:]
                    if let authorization { headers[.authorization] = authorization }
                    let reply = try await client.request(endpoint.method, path, json: endpoint.method == .post ? "{}" : nil, headers: headers)
                    #expect(reply.status == .unauthorized, "\(endpoint) with \(authorization ?? "no header")")
                    #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                    #expect(try reply.problem().type == "/problems/unauthorized")
                }
            }
            for path in ["/health", "/openapi.json", "/openapi.yaml", "/"] {
                #expect(try await status(client, .get, path, token: nil) == .ok, "\(path)")
            }
            #expect(try await status(client, .get, "/ready", token: nil) != .unauthorized)
        }
    }

    @Test("each scope opens exactly its routes; admin opens all")
    func scopes() async throws {
        try await withKeys { client in
            let submitted = try await client.request(.post, "/jobs", json: #"{"type":"sleep","params":{"steps":200,"stepMs":50}}"#,
                                                     headers: [.authorization: "Bearer \(Self.adminToken)"])
            let job = try submitted.snapshot()
            let reader = Self.readerToken, submitter = Self.submitterToken, admin = Self.adminToken
            #expect(try await status(client, .get, "/jobs", token: reader) == .ok)
            #expect(try await status(client, .get, "/jobs/\(job.id)", token: reader) == .ok)
            #expect(try await status(client, .get, "/workers", token: reader) == .ok)
            #expect(try await status(client, .get, "/job-types", token: reader) == .ok)
            #expect(try await status(client, .post, "/jobs", token: reader, json: #"{"type":"noop"}"#) == .forbidden)
            #expect(try await status(client, .post, "/jobs/\(job.id)/cancel", token: reader) == .forbidden)
            #expect(try await status(client, .get, "/metrics", token: reader) == .forbidden)

            #expect(try await status(client, .post, "/jobs", token: submitter, json: #"{"type":"noop"}"#) == .accepted)
            #expect(try await status(client, .get, "/jobs/\(job.id)", token: submitter) == .forbidden)
            #expect(try await status(client, .post, "/jobs/\(job.id)/cancel", token: submitter) == .forbidden)

            #expect(try await status(client, .get, "/metrics", token: admin) == .ok)
            #expect(try await status(client, .post, "/jobs/\(job.id)/cancel", token: admin) == .accepted)

            let forbidden = try await client.request(.get, "/metrics", headers: [.authorization: "Bearer \(reader)"])
            #expect(try forbidden.problem().type == "/problems/forbidden")
            #expect(try forbidden.problem().detail.contains("admin"))
            let whoami = try await client.request(.get, "/whoami", headers: [.authorization: "bearer \(reader)"])
            #expect(whoami.status == .ok)
            #expect(whoami.text.contains(#""name":"reader""#))
            #expect(whoami.text.contains(#""scopes":["read"]"#))
        }
    }

    @Test("an Idempotency-Key counts per API key; a key without read gets its job back only as accepted")
    func idempotencyKeysBelongToTheirSubmitter() async throws {
        try await withKeys { anonymous in
            var client = anonymous
            client.authorization = "Bearer \(Self.adminToken)"
            let request = #"{"type":"noop"}"#
            func submit(_ token: String) async throws -> HTTPReply {
                try await client.request(.post, "/jobs", json: request,
                                         headers: [.authorization: "Bearer \(token)", .idempotencyKey: "order-1234"])
            }
            let adminsReply = try await submit(Self.adminToken)
            #expect(adminsReply.status == .accepted)
            let adminsJob = try adminsReply.snapshot()
            #expect(adminsJob.submittedBy == "admin")
            let done = try await client.waitFor(adminsJob.id) { $0.status == .succeeded }
            #expect(done.submittedBy == "admin", "workers keep the submitter")

            // Another key with the same Idempotency-Key creates its own job: it never sees the admin's.
            let first = try await submit(Self.submitterToken)
            #expect(first.status == .accepted)
            let submittersJob = try first.snapshot()
            #expect(submittersJob.id != adminsJob.id)
            #expect(submittersJob.submittedBy == "submitter")
            let admins = try await client.request(.post, "/jobs", json: #"{"type":"sleep"}"#,
                                                  headers: [.authorization: "Bearer \(Self.submitterToken)", .idempotencyKey: "order-1234"])
            #expect(admins.status == .conflict)
            #expect(try admins.problem().detail.contains(submittersJob.id.rawValue))
            #expect(try !admins.problem().detail.contains(adminsJob.id.rawValue))

            // Its repeat, once the job has run, is answered as the first request was: it may not read the job.
            _ = try await client.waitFor(submittersJob.id) { $0.status == .succeeded }
            let repeated = try await submit(Self.submitterToken)
            #expect(repeated.status == .ok)
            let shown = try repeated.snapshot()
            #expect(shown == submittersJob)
            #expect(shown.status == .queued)

            // The admin, who may read, gets its job as it is now.
            let adminsRepeat = try await submit(Self.adminToken)
            #expect(adminsRepeat.status == .ok)
            #expect(try adminsRepeat.snapshot().status == .succeeded)
        }
    }

    @Test("the Authorization header names a key by its token: any case of Bearer, blanks around the token")
    func authorizationHeaderForms() {
        let authentication = Authentication.apiKeys(Self.keys)
        let reader = Self.readerToken
        for accepted in ["Bearer \(reader)", "bearer \(reader)", "BEARER \(reader)", "Bearer  \t\(reader) \t", "Bearer \(reader)\t"] {
            #expect(authentication.caller(authorization: accepted)?.keyName == "reader", "\(accepted)")
        }
        #expect(authentication.caller(authorization: "Bearer \(Self.adminToken)")?.keyName == "admin")
        for refused in [nil, "", "Bearer", "Bearer ", "Bearer \t ", "Bearer\t\(reader)", "Bearer\u{0}\(reader)", "Bearerx\(reader)",
                        "Basic \(reader)", "Bearer \(reader)x", "Bearer \(reader.dropLast())", "Bearer \(reader) \(reader)"] {
            #expect(authentication.caller(authorization: refused) == nil, "\(String(describing: refused))")
        }
        #expect(Authentication.disabled.caller(authorization: nil) == .anonymous)
    }

    @Test("a refused submit publishes nothing")
    func refusedSubmitPublishesNothing() async throws {
        let cluster = try TestCluster()
        try await cluster.withGateway(worker: false, configure: { $0.authentication = .apiKeys(Self.keys) }) { client in
            let readerStatus = try await status(client, .post, "/jobs", token: Self.readerToken, json: #"{"type":"noop"}"#)
            #expect(readerStatus == .forbidden)
            #expect(try await status(client, .post, "/jobs", token: Self.readerToken, json: #"{"type":"noop"}"#) == .forbidden)
            #expect(try await status(client, .post, "/jobs", token: nil, json: #"{"type":"noop"}"#) == .unauthorized)
        }
        #expect(try await cluster.recordCount(cluster.topics.commands) == 0)
        #expect(try await cluster.recordCount(cluster.topics.status) == 0)
    }

    @Test("an API key is NAME:SCOPES:SECRET; anything else is refused with the reason", arguments: [
        "reader", "reader:read", "reader::token-0123456789abcdef", ":read:token-0123456789abcdef",
        "reader:read+write:token-0123456789abcdef", "reader:read:short", "reader:read:sha256:abc",
        "reader:read:sha256:" + String(repeating: "zz", count: 32),
    ])
    func keyParsing(text: String) {
        #expect(throws: APIKeyError.self) { try APIKey(parsing: text) }
    }

    @Test("the example in the error for a malformed key is itself a key the gateway accepts")
    func malformedKeyErrorGivesAValidExample() throws {
        let error = try #require(throws: APIKeyError.self) { try APIKey(parsing: "reader") }
        let example = try #require(error.description.components(separatedBy: "e.g. ").last)
        #expect(throws: Never.self, "\(example)") { try APIKey(parsing: example) }
    }

    @Test("a parsed key keeps its name and scopes, and a secret may contain colons")
    func keyParsingAccepts() throws {
        let key = try APIKey(parsing: "ci:read+cancel:abc:def:0123456789abcdef")
        #expect(key.name == "ci")
        #expect(key.scopes == [.read, .cancel])
        #expect(key == APIKey(name: "ci", scopes: [.read, .cancel], token: "abc:def:0123456789abcdef"))
    }

    @Test("CORS is off by default: no Access-Control headers for any origin")
    func corsOffByDefault() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let get = try await client.request(.get, "/jobs", headers: [.origin: "https://app.example"])
            #expect(get.status == .ok)
            #expect(get.headers[.accessControlAllowOrigin] == nil)
            let preflight = try await client.request(.options, "/jobs", headers: [
                .origin: "https://app.example", .accessControlRequestMethod: "POST",
            ])
            #expect(preflight.headers[.accessControlAllowOrigin] == nil)
        }
    }

    @Test("CORS answers the configured origins only, preflight included")
    func corsForConfiguredOrigins() async throws {
        try await TestCluster().withGateway(worker: false, configure: { $0.allowedOrigins = ["https://app.example"] }) { client in
            let get = try await client.request(.get, "/jobs", headers: [.origin: "https://app.example"])
            #expect(get.headers[.accessControlAllowOrigin] == "https://app.example")
            #expect(get.headers[.accessControlExposeHeaders]?.contains("Location") == true)
            let preflight = try await client.request(.options, "/jobs", headers: [
                .origin: "https://app.example", .accessControlRequestMethod: "POST",
                .accessControlRequestHeaders: "authorization, content-type",
            ])
            #expect(preflight.status.kind == .successful)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://app.example")
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("POST") == true)
            #expect(preflight.headers[.accessControlAllowHeaders]?.lowercased().contains("authorization") == true)
            #expect(preflight.headers[.accessControlAllowHeaders]?.lowercased().contains("if-none-match") == true)
            #expect(get.headers[.accessControlExposeHeaders]?.contains("ETag") == true, "a page may read a job's tag")
            // Error answers too, so a page can read Retry-After or WWW-Authenticate.
            let problem = try await client.request(.get, "/jobs?limit=0", headers: [.origin: "https://app.example"])
            #expect(problem.status == .badRequest)
            #expect(problem.headers[.accessControlAllowOrigin] == "https://app.example")
            #expect(problem.headers[.accessControlExposeHeaders]?.contains("Retry-After") == true)
            let other = try await client.request(.get, "/jobs", headers: [.origin: "https://evil.example"])
            #expect(other.headers[.accessControlAllowOrigin] == nil)
            // Every answer depends on Origin, so every answer says so to caches.
            for answer in [get, problem, other, try await client.request(.get, "/jobs"), try await client.request(.get, "/jobs?limit=0")] {
                #expect(answer.headers[values: .vary].contains { $0.lowercased() == "origin" }, "\(answer.status)")
            }
        }
    }

    @Test("a body or params over their limits get 413 problems, and nothing is published")
    func sizeLimits() async throws {
        let cluster = try TestCluster()
        let echo = JobTypeDescriptor(name: "echo", params: ParamsSchema([.init("text", .string())]))
        try await cluster.withGateway(worker: false, configure: {
            $0.maxBodyBytes = 4096
            $0.maxParamsBytes = 200
            $0.jobTypes.append(echo)
        }) { client in
            let padding = String(repeating: "x", count: 300)
            let bigParams = try await client.request(.post, "/jobs", json: #"{"type":"echo","params":{"text":"\#(padding)"}}"#)
            #expect(bigParams.status == .contentTooLarge)
            #expect(try bigParams.problem().type == "/problems/params-too-large")
            #expect(try bigParams.problem().errors?.map(\.pointer) == ["/params"])
            let bigBody = try await client.request(.post, "/jobs", json: #"{"type":"noop","x":"\#(String(repeating: "y", count: 5000))"}"#)
            #expect(bigBody.status == .contentTooLarge)
            #expect(try bigBody.problem().type == "/problems/body-too-large")
            // Just under the params limit is accepted.
            let fitting = String(repeating: "x", count: 150)
            #expect(try await client.request(.post, "/jobs", json: #"{"type":"echo","params":{"text":"\#(fitting)"}}"#).status == .accepted)
        }
        #expect(try await cluster.recordCount(cluster.topics.commands) == 1)
    }
}

private func sha256Hex(_ text: String) -> String {
    // The same digest the gateway computes, through the key type itself: a key
    // made from the token and one made from its digest must be equal.
    APIKey(name: "", scopes: [], token: text).digestHex
}
