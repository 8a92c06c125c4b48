import Foundation
import Synchronization
import Testing

/// One of the package's built executables, run as a separate process by a test.
/// Its standard error (the log) goes to a file the test can search. A child that
/// is still running when the test lets go of it is killed.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let pid: pid_t
    let logURL: URL
    /// The exit status once reaped; `waitpid` may reap only once.
    private let exit = Mutex<Int32?>(nil)

    /// Spawned with `posix_spawn` rather than Foundation's `Process`, whose `run()`
    /// crashed (a bad memcpy) when many suites spawned processes at once while
    /// librdkafka opened and closed sockets in the same process.
    ///
    /// - Parameter environment: variables set for the child on top of the test process's own.
    init(_ executable: String, _ arguments: [String], name: String, environment: [String: String] = [:]) throws {
        self.name = name
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("jobs-test-\(name)-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: logURL.path, contents: nil) else {
            throw SpawnError(description: "cannot create the log file \(logURL.path)")
        }
        let path = try Self.executable(executable).path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logURL.path, O_WRONLY | O_APPEND, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of the test process's. The embedded broker accepts connections
        // without close-on-exec: a child holding the broker's end of them would keep
        // them open, unanswered, after a crash of the test process, and a worker left
        // behind would wait out every request's timeout on them.
        if let closeFrom = closeFromAction { _ = closeFrom(&actions, 3) }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let variables = ProcessInfo.processInfo.environment.merging(environment) { _, given in given }
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, nil, argv, envp)
        guard result == 0 else {
            throw SpawnError(description: "cannot start \(path): \(String(cString: strerror(result)))")
        }
        pid = child
    }

    struct SpawnError: Error, CustomStringConvertible { let description: String }

    /// The exit status, reaping the process if it has exited; `nil` while it runs.
    var terminationStatus: Int32? {
        exit.withLock { status in
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
            }
            return status
        }
    }

    var isRunning: Bool { terminationStatus == nil }

    /// The code the process exited with, once it has; `nil` while it runs or if a signal ended it.
    var exitCode: Int32? {
        guard let status = terminationStatus, status & 0x7f == 0 else { return nil }
        return (status >> 8) & 0xff
    }

    /// Waits (bounded) for the process to exit by itself; `false` if it still runs.
    func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return !isRunning
    }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text`; returns the log.
    @discardableResult
    func waitForLog(_ text: String, count: Int = 1, timeout: Duration = .seconds(60)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = log
            if current.components(separatedBy: text).count - 1 >= count { return current }
            try #require(isRunning, "\(name) exited (\(terminationStatus ?? -1)) before logging \(text):\n\(current.suffix(3000))")
            try #require(ContinuousClock.now < deadline, "\(name) did not log \(text) within \(timeout):\n\(current.suffix(3000))")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(30)) async {
        guard isRunning else { return }
        kill(pid, signal)
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if isRunning {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            if waitpid(pid, &raw, 0) == pid { exit.withLock { $0 = raw } }
        }
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            _ = waitpid(pid, &raw, 0)
        }
        try? FileManager.default.removeItem(at: logURL)
    }

    /// The built executable: beside the test bundle that `swift test` runs.
    private static func executable(_ name: String) throws -> URL {
        if name.hasPrefix("/") { return URL(fileURLWithPath: name) }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let debug = packageRoot.appendingPathComponent(".build/debug/\(name)")
        try #require(FileManager.default.isExecutableFile(atPath: debug.path), "build the package first: no \(name) executable at \(debug.path)")
        return debug
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34), which Swift's Glibc
/// module leaves out (it is a GNU extension): looked up at run time.
private let closeFromAction: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()
