import AsyncHTTPClient
import Foundation
import JobsCore
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// One Server-Sent Event as a client sees it.
struct ReceivedEvent: Sendable {
    var id: String?
    var event: String?
    var data: String

    func snapshot() throws -> JobSnapshot {
        try WireFormat.decode(JobSnapshot.self, from: Array(data.utf8))
    }
}

/// What reading an event stream gave.
struct EventStreamReading: Sendable {
    var status: Int
    var events: [ReceivedEvent]
    /// The server ended the stream (rather than the reader stopping).
    var ended: Bool
    var body: String

    var jobEvents: [ReceivedEvent] { events.filter { $0.event == "job" } }
}

/// Reads `path` of a live gateway as an event stream, with AsyncHTTPClient so the
/// body arrives as it is sent, until `enough` says so, the server ends it, or
/// `timeout` passes: a test failure, unless `leaveAtTimeout` (a client that
/// simply goes away then).
func readEventStream(
    port: Int, _ path: String, headers: [(String, String)] = [], timeout: Duration = .seconds(20),
    leaveAtTimeout: Bool = false, until enough: @escaping @Sendable ([ReceivedEvent]) -> Bool = { _ in false }
) async throws -> EventStreamReading {
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    // Hummingbird closes a connection once an event stream on it ends; a pooled
    // connection could be reused just as that happens.
    request.headers.add(name: "connection", value: "close")
    let prepared = request
    let progress = ReadingSoFar()
    // Raced by hand rather than in a task group: a group waits for its reading
    // task, and a body iteration blocked on a silent stream may not end promptly
    // when cancelled. The reader is cancelled and left behind at the timeout.
    let outcome: Result<EventStreamReading, any Error>? = await withCheckedContinuation { continuation in
        let reader = Task {
            do {
                let response = try await HTTPClient.shared.execute(prepared, timeout: .seconds(60))
                progress.value.withLock { $0.status = Int(response.status.code) }
                var text = ""
                for try await buffer in response.body {
                    text += String(buffer: buffer)
                    var events: [ReceivedEvent] = []
                    while let range = text.range(of: "\n\n") {
                        let frame = String(text[..<range.lowerBound])
                        text = String(text[range.upperBound...])
                        if let event = parseFrame(frame) { events.append(event) }
                    }
                    let reading = progress.value.withLock { reading in
                        reading.events += events
                        reading.body = text
                        return reading
                    }
                    if enough(reading.events) {
                        if progress.claim() { continuation.resume(returning: .success(reading)) }
                        return
                    }
                }
                let reading = progress.value.withLock { reading in
                    reading.ended = true
                    return reading
                }
                if progress.claim() { continuation.resume(returning: .success(reading)) }
            } catch {
                if progress.claim() { continuation.resume(returning: .failure(error)) }
            }
        }
        Task {
            try? await Task.sleep(for: timeout)
            if progress.claim() {
                reader.cancel()
                continuation.resume(returning: nil)
            }
        }
    }
    if let outcome { return try outcome.get() }
    if leaveAtTimeout { return progress.value.withLock { $0 } }
    Issue.record("the event stream \(path) gave no answer within \(timeout)")
    throw CancellationError()
}

/// A frame's fields; nil for a frame of comments or `retry:` only. A frame of
/// only an `id:` (a position without an event) is kept, with no `event`.
private func parseFrame(_ frame: String) -> ReceivedEvent? {
    var event = ReceivedEvent(data: "")
    var hasData = false
    for line in frame.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix(":") { continue }
        let (field, value) = line.firstIndex(of: ":").map {
            (String(line[..<$0]), String(line[line.index(after: $0)...]).drop { $0 == " " })
        } ?? (String(line), "")
        switch field {
        case "id": event.id = String(value)
        case "event": event.event = String(value)
        case "data":
            event.data += (hasData ? "\n" : "") + value
            hasData = true
        default: continue
        }
    }
    return hasData || event.event != nil || event.id != nil ? event : nil
}

/// What a reader has seen so far, for a reader that leaves before the end, and
/// who answers first: the reader or the timeout.
private final class ReadingSoFar: Sendable {
    let value = Mutex(EventStreamReading(status: 0, events: [], ended: false, body: ""))
    private let answered = Mutex(false)

    /// True for the first caller only.
    func claim() -> Bool {
        answered.withLock { answered in defer { answered = true }; return !answered }
    }
}
