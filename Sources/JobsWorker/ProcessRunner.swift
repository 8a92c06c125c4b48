import Foundation
import Logging
import Subprocess

/// What to run: an absolute executable, its argv (without argv[0]), the whole
/// environment it gets, and how long it may take to stop after SIGTERM.
struct ProcessLaunch: Sendable {
    var executable: String
    var arguments: [String]
    var environment: [String: String]
    var workingDirectory: String?
    var killGracePeriod: Duration
    var maxLineBytes: Int = 4096
}

/// How a process ended.
enum ProcessTermination: Sendable, Hashable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signalled(let signal): "was killed by signal \(signal)\(Self.signalNames[signal].map { " (\($0))" } ?? "")"
        }
    }

    private static let signalNames: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGABRT: "SIGABRT", SIGKILL: "SIGKILL",
        SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGTERM: "SIGTERM", SIGBUS: "SIGBUS",
    ]
}

/// Which stream a line came from.
enum OutputStreamName: String, Sendable {
    case stdout, stderr
}

/// The process could not be started at all.
struct ProcessLaunchError: Error, CustomStringConvertible {
    let executable: String
    let underlying: any Error
    var description: String { "could not start \(executable): \(underlying)" }
}

/// Runs one command with swift-subprocess, never through a shell, in a process
/// group of its own, and hands every line of its output to `onLine`.
///
/// - The child leads a new process group (`setpgid(0, 0)` as it is spawned), so
///   a signal to the group reaches everything it started that stayed in it.
/// - When the calling task is cancelled, swift-subprocess runs the teardown:
///   SIGTERM to the group, then SIGKILL to the group once `killGracePeriod`
///   passes with the command still alive. Output is read until the command
///   has exited all the same: its pipes stay open while it cleans up.
/// - A ``ProcessGroupGuard`` in the group kills whatever is left in it when the
///   command has ended (background processes it forgot, a child that ignored
///   SIGTERM) and, should the worker die, kills the whole group then.
///
/// Returns once the command has exited and its group is gone. Standard input
/// is `/dev/null`.
///
/// - Important: `onLine` is called from two tasks at once (stdout, stderr); it
///   must be thread-safe and must not block.
func runProcess(
    _ launch: ProcessLaunch, logger: Logger,
    onStart: @Sendable (pid_t) -> Void = { _ in },
    onLine: @escaping @Sendable (OutputStreamName, String) -> Void
) async throws -> ProcessTermination {
    var options = PlatformOptions()
    options.processGroupID = 0
    options.teardownSequence = [.gracefulShutDown(toProcessGroup: true, allowedDurationToNextStep: launch.killGracePeriod)]
    let groupGuard = ProcessGroupGuard(logger: logger)
    let maxLineBytes = launch.maxLineBytes
    var environment: [Environment.Key: String] = [:]
    for (name, value) in launch.environment {
        if let key = Environment.Key(rawValue: name) { environment[key] = value }
    }
    let result: ExecutionResult<Void, SequenceOutput, SequenceOutput>
    do {
        result = try await Subprocess.run(
            .path(.init(launch.executable)),
            arguments: Arguments(launch.arguments),
            environment: .custom(environment),
            workingDirectory: launch.workingDirectory.map { .init($0) },
            platformOptions: options,
            input: .none, output: .sequence, error: .sequence
        ) { execution in
            let pid = execution.processIdentifier.value
            await groupGuard.start(inGroup: pid)
            onStart(pid)
            let stdout = execution.standardOutput
            let stderr = execution.standardError
            // Unstructured tasks, which the job's cancellation doesn't reach: on a cancel,
            // timeout or hand-back the command gets SIGTERM and `killGracePeriod` to exit,
            // and it usually writes as it cleans up (a trap's message; a shell's
            // "Terminated" for its killed child). Readers stopped by the cancel would
            // close the pipes under it, and that first write would kill it with SIGPIPE.
            // They end at end of file, or once swift-subprocess sees the command exit
            // while a leftover process still holds a pipe.
            let readers = [
                Task { await readLines(stdout, .stdout, maxLineBytes: maxLineBytes, onLine) },
                Task { await readLines(stderr, .stderr, maxLineBytes: maxLineBytes, onLine) },
            ]
            for reader in readers { await reader.value }
        }
    } catch {
        await groupGuard.release()
        if error is CancellationError { throw error }
        throw ProcessLaunchError(executable: launch.executable, underlying: error)
    }
    await groupGuard.release()
    switch result.terminationStatus {
    case .exited(let code): return .exited(code)
    case .signaled(let signal): return .signalled(signal)
    }
}

/// Reads one stream to its end (or until it can't be read: the command is gone
/// and a leftover process holds the pipe).
private func readLines(
    _ output: SubprocessOutputSequence, _ stream: OutputStreamName, maxLineBytes: Int,
    _ onLine: @Sendable (OutputStreamName, String) -> Void
) async {
    var splitter = LineSplitter(maxLineBytes: maxLineBytes)
    do {
        for try await buffer in output {
            buffer.withUnsafeBytes { bytes in
                for line in splitter.feed(bytes) { onLine(stream, line) }
            }
        }
    } catch {
        // The stream ended early; what was read still counts.
    }
    if let last = splitter.finish() { onLine(stream, last) }
}
