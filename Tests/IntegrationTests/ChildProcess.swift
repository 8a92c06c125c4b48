import Foundation
import Testing

/// One of the package's built executables, run as a separate process by a test.
/// Its standard error (the log) goes to a file the test can search. A child that
/// is still running when the test lets go of it is killed.
final class ChildProcess: @unchecked Sendable {
    let name: String
    private let process = Process()
    let logURL: URL

    init(_ executable: String, _ arguments: [String], name: String) throws {
        self.name = name
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-test-\(name)-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = try Self.executable(executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: logURL.path)
        process.standardError = FileHandle(forWritingAtPath: logURL.path)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text`; returns the log.
    @discardableResult
    func waitForLog(_ text: String, count: Int = 1, timeout: Duration = .seconds(60)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = log
            if current.components(separatedBy: text).count - 1 >= count { return current }
            try #require(process.isRunning, "\(name) exited (\(process.terminationStatus)) before logging \(text):\n\(current.suffix(3000))")
            try #require(ContinuousClock.now < deadline, "\(name) did not log \(text) within \(timeout):\n\(current.suffix(3000))")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(30)) async {
        guard process.isRunning else { return }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }

    /// The built executable: beside the test bundle that `swift test` runs.
    private static func executable(_ name: String) throws -> URL {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let debug = packageRoot.appendingPathComponent(".build/debug/\(name)")
        try #require(FileManager.default.isExecutableFile(atPath: debug.path), "build the package first: no \(name) executable at \(debug.path)")
        return debug
    }
}
