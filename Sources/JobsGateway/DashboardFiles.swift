import HTTPTypes
import Hummingbird
import Logging

/// The dashboard's files, served by Hummingbird's `FileMiddleware` at exactly
/// their four paths, with the types and caching docs/api.md gives.
///
/// Only those paths: `FileMiddleware` serves a file at any spelling, and
/// `/index.html/` came back without a `Content-Type` or `Cache-Control`. And
/// always whole: for a `Range` starting past the end it answered `206` with a
/// negative `Content-Length`. RFC 9110 lets a server ignore `Range` (and then
/// not send `Accept-Ranges: bytes`), and these files are a few dozen KiB.
struct DashboardFiles<Context: RequestContext>: RouterMiddleware {
    private let files: FileMiddleware<Context, LocalFileSystem>

    init(directory: String, logger: Logger) {
        let utf8 = ("charset", "utf-8")
        files = FileMiddleware(directory, cacheControl: .init([(MediaType(type: .any), [.noCache])]),
                               searchForIndexHtml: true, logger: logger)
            .withAdditionalMediaTypes(forFileExtensions: [
                "html": MediaType(type: .text, subType: "html", parameter: utf8),
                "js": MediaType(type: .text, subType: "javascript", parameter: utf8),
                "css": MediaType(type: .text, subType: "css", parameter: utf8),
            ])
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard DashboardPaths.methods.contains(request.method), DashboardPaths.all.contains(request.uri.path) else {
            return try await next(request, context)
        }
        var whole = request
        if request.headers[.range] != nil {
            var head = request.head
            head.headerFields[.range] = nil
            whole = Request(head: head, body: request.body)
        }
        var response = try await files.handle(whole, context: context, next: next)
        // FileMiddleware says it takes ranges; here it doesn't.
        response.headers[.acceptRanges] = nil
        return response
    }
}

/// The only paths the dashboard's files are served at, and their methods:
/// another method there is a 405, not a 404.
enum DashboardPaths {
    static let all: Set<String> = ["/", "/index.html", "/dashboard.js", "/dashboard.css"]
    static let methods: [HTTPRequest.Method] = [.get, .head]
}
