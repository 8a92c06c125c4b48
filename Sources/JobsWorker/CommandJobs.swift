import Foundation
import JobsCore
import Logging
import Synchronization

extension JobRegistry {
    /// Registers every job type of a command jobs file next to the ones
    /// already registered.
    ///
    /// - Throws: ``CommandJobsConfigurationError`` when a type's name is
    ///   already taken (by a built-in type or a handler registered before);
    ///   nothing is registered then.
    public mutating func register(commandJobs configuration: CommandJobsConfiguration) throws(CommandJobsConfigurationError) {
        let taken = Set(descriptors.map(\.name))
        for (index, job) in configuration.jobs.enumerated() where taken.contains(job.name) {
            throw CommandJobsConfigurationError(
                file: configuration.source, entry: CommandJobsConfigurationError.entryLabel(index: index, name: job.name),
                problem: "name: the job type \"\(job.name)\" is already served by this worker")
        }
        for job in configuration.jobs { register(commandJob: job) }
    }

    /// Registers one command job type: a job of this type runs the command
    /// and succeeds with a ``CommandJobResult`` when it exits with status 0.
    public mutating func register(commandJob spec: CommandJobSpec) {
        var options = spec.options
        // A stopped command has its kill grace period to exit, then is killed,
        // reaped and its output read to the end: the worker waits that out.
        options.stopGracePeriod = max(options.stopGracePeriod, spec.killGracePeriod + .seconds(2))
        register(spec.name, params: JSONValue.self, schema: spec.params, summary: spec.summary, options: options) { params, context in
            try await CommandJobRun(spec: spec, context: context).run(params)
        }
    }
}

/// The result of a command job that exited with status 0.
public struct CommandJobResult: Sendable, Hashable, Codable {
    public var exitCode: Int32
    /// The last lines of standard output and standard error (see
    /// ``CommandJobSpec/outputTailLines``), `PROGRESS` lines excluded.
    public var stdout: [String]
    public var stderr: [String]
    /// How many lines each stream had in all, `PROGRESS` lines included.
    public var stdoutLines: Int
    public var stderrLines: Int
    public var durationMs: Int
}

/// One run of a command job: argv from the params, the process, its output
/// turned into progress and a result, its exit status into a verdict.
struct CommandJobRun: Sendable {
    let spec: CommandJobSpec
    let context: JobContext

    /// The shortest gap between two progress snapshots made from output: a
    /// snapshot is a message on the status topic.
    static let progressInterval = Duration.milliseconds(200)
    /// How much of stderr a failure's message quotes.
    static let errorTailLines = 20
    static let errorTailBytes = 2048

    func run(_ params: JSONValue) async throws -> CommandJobResult {
        // Params that can't make an argv never will: no attempt is worth another.
        let arguments: [String]
        do { arguments = try spec.argv(for: params) } catch { throw NonRetryableError(error) }
        var environment = spec.environment
        environment["JOBS_JOB_ID"] = context.jobID.rawValue
        environment["JOBS_JOB_TYPE"] = context.type
        environment["JOBS_ATTEMPT"] = String(context.attempt)
        let launch = ProcessLaunch(executable: spec.executable, arguments: arguments, environment: environment,
                                   workingDirectory: spec.workingDirectory, killGracePeriod: spec.killGracePeriod)
        let output = CommandOutputState(tailLines: spec.outputTailLines, tailBytes: spec.outputTailBytes)
        let progress = ProgressCoalescer()
        let logger = context.logger
        let started = ContinuousClock.now

        let termination: ProcessTermination
        do {
            termination = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { [context] in await progress.publish(to: context, every: Self.progressInterval) }
                defer { progress.finish() }
                return try await runProcess(launch, logger: logger, onStart: { pid in
                    logger.info("command started", metadata: ["pid": "\(pid)", "executable": "\(launch.executable)"])
                }, onLine: { stream, line in
                    if let report = ProgressLine(parsing: line) {
                        output.count(stream)
                        progress.set(report)
                    } else {
                        output.append(line, to: stream)
                        progress.setMessage(line)
                    }
                })
            }
        } catch let error as ProcessLaunchError {
            throw JobError(code: "spawn_failed", message: error.description)
        }
        await progress.flush(to: context)
        let elapsed = ContinuousClock.now - started
        logger.info("command ended", metadata: ["status": "\(termination)", "duration": "\(elapsed)"])
        return try verdict(termination, tails: output.snapshot(), elapsed: elapsed)
    }

    /// The result of a command that exited with status 0; otherwise the error
    /// the job fails with, or `CancellationError` when it was stopped.
    private func verdict(_ termination: ProcessTermination, tails: CommandOutputState.Tails, elapsed: Duration) throws -> CommandJobResult {
        if termination == .exited(0) {
            // A command that finished did finish, even if a stop was asked for meanwhile.
            return CommandJobResult(exitCode: 0, stdout: tails.stdout.lines, stderr: tails.stderr.lines,
                                    stdoutLines: tails.stdout.totalLines, stderrLines: tails.stderr.totalLines,
                                    durationMs: Int(elapsed / .milliseconds(1)))
        }
        // Stopped by a cancel, a time limit or a hand-back: the worker says what that means.
        try Task.checkCancellation()
        switch termination {
        case .exited(let code):
            throw JobError(code: "exit_\(code)", message: failureMessage(termination, stderr: tails.stderr.lines))
        case .signalled:
            throw JobError(code: "command_failed", message: failureMessage(termination, stderr: tails.stderr.lines))
        }
    }

    /// `<name> exited with status 3; stderr: <the last lines>`, bounded.
    private func failureMessage(_ termination: ProcessTermination, stderr: [String]) -> String {
        var quoted = OutputTail(maxLines: Self.errorTailLines, maxBytes: Self.errorTailBytes)
        stderr.forEach { quoted.append($0) }
        let name = (spec.executable as NSString).lastPathComponent
        let head = "\(name) \(termination)"
        return quoted.lines.isEmpty ? "\(head) (no output on stderr)" : "\(head); stderr:\n" + quoted.lines.joined(separator: "\n")
    }
}

/// The tails of both streams, written by two reading tasks at once.
final class CommandOutputState: Sendable {
    struct Tails: Sendable {
        var stdout: OutputTail
        var stderr: OutputTail
    }

    private let tails: Mutex<Tails>

    init(tailLines: Int, tailBytes: Int) {
        let empty = OutputTail(maxLines: tailLines, maxBytes: tailBytes)
        tails = Mutex(Tails(stdout: empty, stderr: empty))
    }

    func append(_ line: String, to stream: OutputStreamName) {
        tails.withLock { tails in
            switch stream {
            case .stdout: tails.stdout.append(line)
            case .stderr: tails.stderr.append(line)
            }
        }
    }

    /// Counts a line that isn't kept (a `PROGRESS` line).
    func count(_ stream: OutputStreamName) {
        tails.withLock { tails in
            switch stream {
            case .stdout: tails.stdout.countWithoutKeeping()
            case .stderr: tails.stderr.countWithoutKeeping()
            }
        }
    }

    func snapshot() -> Tails { tails.withLock { $0 } }
}

/// The latest progress of a command, published at a bounded rate: a command
/// may print thousands of lines a second, and each report is a snapshot on
/// the status topic. The last state is always published before the verdict.
final class ProgressCoalescer: Sendable {
    private struct State {
        var progress = JobProgress(current: 0)
        var pending = false
    }

    private let state = Mutex(State())
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

    init() {
        (changes, changed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// A `PROGRESS` line: sets current, total and message.
    func set(_ line: ProgressLine) {
        update { $0 = JobProgress(current: line.current, total: line.total, message: line.message) }
    }

    /// An ordinary output line: becomes the message; the counts stay.
    func setMessage(_ line: String) {
        update { $0.message = line.count > 200 ? String(line.prefix(200)) + "…" : line }
    }

    private func update(_ change: (inout JobProgress) -> Void) {
        state.withLock { state in
            change(&state.progress)
            state.pending = true
        }
        changed.yield()
    }

    /// Publishes changes as they come, at most one per `interval`, until
    /// ``finish()`` or cancellation.
    func publish(to context: JobContext, every interval: Duration) async {
        for await _ in changes {
            await flush(to: context)
            try? await Task.sleep(for: interval)
        }
    }

    func finish() {
        changed.finish()
    }

    /// Publishes the latest progress if it wasn't yet. A cancelled job's
    /// progress is dropped (`progress` throws then): its verdict follows.
    func flush(to context: JobContext) async {
        let progress = state.withLock { state -> JobProgress? in
            defer { state.pending = false }
            return state.pending ? state.progress : nil
        }
        guard let progress else { return }
        try? await context.progress(current: progress.current, total: progress.total, message: progress.message)
    }
}
