import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A one-request HTTP/1.1 client over a plain socket, on a thread of its own,
/// that tells apart every way a request can end when its server stops: refused,
/// closed before any byte of an answer, a complete answer, or a truncated one.
/// (A full client would hide the difference behind one error.)
enum RawHTTP {
    enum Outcome: Sendable, CustomStringConvertible {
        /// Nothing listened: the connection was refused.
        case refused
        /// Connected, but the connection ended before the first byte of an answer.
        case closedWithoutAnswer(String)
        /// A whole response: the body is exactly as long as announced.
        case complete(status: Int, headers: [String: String], body: [UInt8])
        /// Part of a response, then the connection ended.
        case truncated(String)

        var description: String {
            switch self {
            case .refused: "refused"
            case .closedWithoutAnswer(let why): "closed without answer (\(why))"
            case .complete(let status, _, let body): "complete \(status) (\(body.count) bytes)"
            case .truncated(let why): "truncated (\(why))"
            }
        }
    }

    /// `connect` of `fd` to 127.0.0.1:`port`: 0, or -1 with `errno` set.
    static func connect(_ fd: Int32, toLocalPort port: Int) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// What the test can see of a request while it is under way.
    final class Progress: Sendable {
        private let state = Mutex<(localPort: Int?, written: Bool)>((nil, false))
        var localPort: Int? { state.withLock { $0.localPort } }
        var written: Bool { state.withLock { $0.written } }
        fileprivate func connected(port: Int) { state.withLock { $0.localPort = port } }
        fileprivate func wrote() { state.withLock { $0.written = true } }
    }

    /// Sends `POST path` with a JSON body to 127.0.0.1:`port` with `Connection: close`
    /// and reads until the server closes.
    static func post(port: Int, path: String, json: String, progress: Progress = Progress()) async -> Outcome {
        let body = Array(json.utf8)
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
            + "Authorization: Bearer \(TestKeys.adminToken)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let request = Array(head.utf8) + body
        return await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: exchange(port: port, request: request, progress: progress))
            }
            thread.start()
        }
    }

    /// Sends `request` as it is, then, if `halfClose`, shuts down the sending side
    /// (as a client that gave up mid-body does), and reads until the server closes.
    static func raw(port: Int, request: String, halfClose: Bool) async -> Outcome {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: exchange(port: port, request: Array(request.utf8), progress: Progress(),
                                                        halfClose: halfClose))
            }
            thread.start()
        }
    }

    private static func exchange(port: Int, request: [UInt8], progress: Progress, halfClose: Bool = false) -> Outcome {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .closedWithoutAnswer("socket: errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        if connect(fd, toLocalPort: port) != 0 {
            let error = errno
            return error == ECONNREFUSED ? .refused : .closedWithoutAnswer("connect: errno \(error)")
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        progress.connected(port: Int(UInt16(bigEndian: local.sin_port)))

        var sent = 0
        while sent < request.count {
            let count = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return .closedWithoutAnswer("send: errno \(errno)") }
            sent += count
        }
        progress.wrote()
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }

        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        var readError: Int32?
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                received += buffer[0..<count]
            } else if count == 0 {
                break
            } else if errno != EINTR {
                readError = errno
                break
            }
        }
        let ending = readError.map { "errno \($0)" } ?? "EOF"
        if received.isEmpty { return .closedWithoutAnswer(ending) }
        return parse(received, ending: ending)
    }

    private static func parse(_ bytes: [UInt8], ending: String) -> Outcome {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let headEnd = bytes.firstRange(of: separator) else {
            return .truncated("\(bytes.count) bytes without a complete head, then \(ending)")
        }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return .truncated("bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = Array(bytes[headEnd.upperBound...])
        if let length = headers["content-length"].flatMap(Int.init) {
            guard body.count == length else { return .truncated("body of \(body.count) of \(length) bytes, then \(ending)") }
            return .complete(status: status, headers: headers, body: body)
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            guard let decoded = dechunk(body) else { return .truncated("chunked body without its last chunk, then \(ending)") }
            return .complete(status: status, headers: headers, body: decoded)
        }
        // Delimited by the close: complete only if the connection ended cleanly.
        return ending == "EOF" ? .complete(status: status, headers: headers, body: body) : .truncated("body ended by \(ending)")
    }

    /// The body of a chunked message, or nil when its last chunk is missing.
    private static func dechunk(_ bytes: [UInt8]) -> [UInt8]? {
        var output: [UInt8] = []
        var index = 0
        let crlf: [UInt8] = [13, 10]
        while true {
            guard let lineEnd = bytes[index...].firstRange(of: crlf) else { return nil }
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            index = lineEnd.upperBound
            if size == 0 { return output }
            guard index + size + 2 <= bytes.count else { return nil }
            output += bytes[index..<(index + size)]
            index += size + 2
        }
    }

    /// Whether the server side of the connection from local port `clientPort`
    /// to `serverPort` has read everything sent to it: its receive queue in
    /// /proc/net/tcp is empty. (Then the server holds the request, not the kernel.)
    static func serverHasRead(serverPort: Int, clientPort: Int) -> Bool {
        guard let table = readWholeFile("/proc/net/tcp") else { return false }
        let local = String(format: "0100007F:%04X", serverPort)
        let remote = String(format: "0100007F:%04X", clientPort)
        for line in table.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 4, fields[1] == local, fields[2] == remote else { continue }
            let queues = fields[4].split(separator: ":")
            return queues.count == 2 && Int(queues[1], radix: 16) == 0
        }
        return false
    }

    /// A /proc file, read to its end (they report a size of 0, so readers that
    /// trust the size stop after the first page).
    private static func readWholeFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count > 0 { bytes += buffer[0..<count] } else if count == 0 { break } else if errno != EINTR { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
