import Foundation
import JobsGateway
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Idle and half-sent connections", .timeLimit(.minutes(2)))
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

    /// How long after sending `text` on a new connection the server closed it;
    /// nil if it didn't within `wait`. Blocking socket calls, on a thread of their own.
    static func timeUntilClosed(port: Int, sending text: String, wait: Duration) async -> Duration? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: blockingTimeUntilClosed(port: port, sending: text, wait: wait))
            }
        }
    }

    private static func blockingTimeUntilClosed(port: Int, sending text: String, wait: Duration) -> Duration? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard RawHTTP.connect(fd, toLocalPort: port) == 0 else { return nil }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
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
