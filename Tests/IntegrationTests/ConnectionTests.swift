import Foundation
import JobsGateway
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Connections: idle, half-sent, persistent or not", .timeLimit(.minutes(2)))
struct ConnectionTests {
    @Test("a request left half-sent is cut after the idle timeout, while an event stream being written stays open")
    func idleTimeout() async throws {
        let system = try TestCluster()
        try await system.withGateway(worker: false, configure: { $0.idleTimeout = .seconds(1) }) { client in
            let port = try #require(client.port)
            // Before the idle timeout, a connection that never finished its request held its socket for ever.
            let closedAfter = await Self.timeUntilClosed(port: port, sending: "GET /health HTTP/1.1\r\nHost: x\r\n", wait: .seconds(15))
            let after = try #require(closedAfter, "the server kept a half-sent request's connection open for 15 s")
            #expect(after >= .milliseconds(900) && after < .seconds(10), "closed after \(after)")

            let stream = try await readEventStream(port: port, "/events", timeout: .seconds(3), leaveAtTimeout: true)
            #expect(stream.status == 200)
            #expect(!stream.ended, "an event stream was cut by the idle timeout")
        }
    }

    @Test("an HTTP/1.0 client that asks to keep its connection is told so and can reuse it, as ApacheBench's -k needs")
    func http10KeepAlive() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let port = try #require(client.port)
            let request = "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            let talk = await Self.conversation(port: port, [request, request])
            #expect(talk.answers.count == 2)
            for answer in talk.answers {
                #expect(answer.first == "HTTP/1.0 200 OK")
                #expect(answer.contains("connection: keep-alive"), "\(answer)")
            }
            #expect(!talk.closed)

            // An event stream has no length, and HTTP/1.0 no chunks: the close ends it.
            let stream = await Self.conversation(port: port, ["GET /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"])
            let head = try #require(stream.answers.first)
            #expect(head.first == "HTTP/1.0 200 OK")
            #expect(head.contains("connection: close"), "\(head)")
            #expect(!head.contains { $0.hasPrefix("transfer-encoding") }, "\(head)")
        }
    }

    @Test("a request that doesn't keep its connection, by HTTP/1.0's default or Connection: close in any case, has it closed after the answer")
    func connectionClose() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let port = try #require(client.port)
            for request in ["GET /health HTTP/1.0\r\n\r\n", "GET /health HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n"] {
                let talk = await Self.conversation(port: port, [request])
                let answer = try #require(talk.answers.first, "\(request)")
                #expect(answer.first?.hasSuffix(" 200 OK") == true, "\(answer)")
                #expect(answer.contains("connection: close"), "\(answer)")
                #expect(talk.closed, "\(request)")
            }
            // HTTP/1.1 keeps it by default, and says nothing of it.
            let request = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            let talk = await Self.conversation(port: port, [request, request])
            #expect(talk.answers.map(\.first) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"])
            #expect(talk.answers.allSatisfy { !$0.contains { $0.hasPrefix("connection:") } }, "\(talk.answers)")
            #expect(!talk.closed)
        }
    }

    @Test("bytes that are not HTTP get a problem answer, 431 for a header section too large, and the connection closes")
    func unreadableRequests() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let port = try #require(client.port)
            let cases: [(request: String, status: String, detail: String)] = [
                ("FOO /jobs HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request", "could not be read as HTTP/1.1 (invalid HTTP method)"),
                ("GET /jo bs HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request", "could not be read as HTTP/1.1"),
                ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n",
                 "HTTP/1.1 431 Request Header Fields Too Large", "header section is larger than the gateway reads"),
            ]
            for (request, status, detail) in cases {
                let talk = await Self.conversation(port: port, [request])
                let answer = try #require(talk.answers.first, "\(request.prefix(30))")
                #expect(answer.first == status)
                #expect(answer.contains("content-type: application/problem+json"), "\(answer)")
                struct Problem: Decodable { var status: Int; var detail: String }
                let problem = try JSONDecoder().decode(Problem.self, from: Data(answer.body.utf8))
                #expect(status.contains(" \(problem.status) "))
                #expect(problem.detail.contains(detail), "\(problem.detail)")
                #expect(talk.closed)
            }
            // After a good request on the same connection too.
            let talk = await Self.conversation(port: port, ["GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "BAD / HTTP/1.1\r\n\r\n"])
            #expect(talk.answers.map(\.first) == ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"])
            #expect(talk.closed)
        }
    }

    @Test("a client that sends Expect: 100-continue is asked for its body at once")
    func expectContinue() async throws {
        try await TestCluster().withGateway(worker: false) { client in
            let port = try #require(client.port)
            let body = #"{"type":"noop"}"#
            let head = "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n"
            let (interim, final) = await Self.sendHoldingBody(port: port, head: head, body: body)
            // Without the 100, the client waits (curl: 1 s) and sends its body anyway.
            #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n", "the answer before the body: \(interim)")
            #expect(final.hasPrefix("HTTP/1.1 202 Accepted\r\n"), "\(final.prefix(200))")
        }
    }

    /// Runs `body` on a thread of its own (its socket calls block) with a socket
    /// connected to 127.0.0.1:`port` whose reads give up after `receiveTimeout`
    /// seconds; `failed` when no connection was made.
    static func withSocket<T: Sendable>(port: Int, receiveTimeout: Int, failed: T,
                                        _ body: @escaping @Sendable (Int32) -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { return continuation.resume(returning: failed) }
                defer { close(fd) }
                guard RawHTTP.connect(fd, toLocalPort: port) == 0 else { return continuation.resume(returning: failed) }
                var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                continuation.resume(returning: body(fd))
            }
        }
    }

    /// Sends `head`, reads what the server says within 2 s (with the body held
    /// back), then sends `body` and reads the answer up to 2 s of silence.
    static func sendHoldingBody(port: Int, head: String, body: String) async -> (beforeBody: String, afterBody: String) {
        await withSocket(port: port, receiveTimeout: 2, failed: ("", "")) { fd in
            func receive() -> String {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = recv(fd, &chunk, chunk.count, 0)
                return count > 0 ? String(decoding: chunk[..<count], as: UTF8.self) : ""
            }
            _ = send(fd, Array(head.utf8), head.utf8.count, 0)
            let before = receive()
            _ = send(fd, Array(body.utf8), body.utf8.count, 0)
            var after = ""
            while true {
                let more = receive()
                if more.isEmpty { break }
                after += more
                if after.contains("\r\n\r\n{") && after.hasSuffix("}") { break }
            }
            return (before, after)
        }
    }

    /// An answer's status line, then its header lines with names in lower case; its body.
    struct Answer: CustomStringConvertible {
        var head: [String]
        var body: String
        var first: String? { head.first }
        func contains(_ line: String) -> Bool { head.contains(line) }
        func contains(where predicate: (String) -> Bool) -> Bool { head.contains(where: predicate) }
        var description: String { (head + [body]).joined(separator: " | ") }
    }

    /// Sends `requests` one after another on one connection, reading each answer's
    /// head and its `Content-Length` body; then whether the server closed the
    /// connection within 2 s.
    static func conversation(port: Int, _ requests: [String]) async -> (answers: [Answer], closed: Bool) {
        await withSocket(port: port, receiveTimeout: 2, failed: ([], false)) { fd in
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            /// More bytes from the server; false when it closed the connection or said nothing for 2 s.
            func receive() -> Bool {
                let count = recv(fd, &chunk, chunk.count, 0)
                guard count > 0 else { return false }
                received += chunk[..<count]
                return true
            }
            var answers: [Answer] = []
            let separator = Array("\r\n\r\n".utf8)
            for request in requests {
                let bytes = Array(request.utf8)
                guard send(fd, bytes, bytes.count, 0) == bytes.count else { return (answers, true) }
                var headEnd: Int?
                while headEnd == nil {
                    headEnd = received.firstRange(of: separator)?.lowerBound
                    if headEnd == nil, !receive() { return (answers, true) }
                }
                let bodyStart = headEnd! + separator.count
                let lines = String(decoding: received[..<headEnd!], as: UTF8.self).components(separatedBy: "\r\n")
                let head = [lines[0]] + lines.dropFirst().map { line in
                    let name = line.prefix { $0 != ":" }
                    return name.lowercased() + line.dropFirst(name.count)
                }
                let length = head.lazy.compactMap { $0.hasPrefix("content-length: ") ? Int($0.dropFirst(16)) : nil }.first ?? 0
                while received.count < bodyStart + length {
                    if !receive() { return (answers, true) }
                }
                answers.append(Answer(head: head, body: String(decoding: received[bodyStart..<bodyStart + length], as: UTF8.self)))
                received.removeFirst(bodyStart + length)
            }
            let count = recv(fd, &chunk, chunk.count, 0)
            return (answers, count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        }
    }

    /// How long after sending `text` on a new connection the server closed it;
    /// nil if it didn't within `wait`.
    static func timeUntilClosed(port: Int, sending text: String, wait: Duration) async -> Duration? {
        await withSocket(port: port, receiveTimeout: 1, failed: nil) { fd in
            let bytes = Array(text.utf8)
            guard send(fd, bytes, bytes.count, 0) == bytes.count else { return nil }
            let sent = ContinuousClock.now
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now - sent < wait {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count == 0 { return ContinuousClock.now - sent }  // closed by the server
                if count < 0, errno != EAGAIN, errno != EWOULDBLOCK { return ContinuousClock.now - sent }  // reset
            }
            return nil
        }
    }
}
