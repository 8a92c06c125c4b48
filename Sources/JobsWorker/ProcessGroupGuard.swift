import Foundation
import Logging
import Subprocess
import Synchronization

/// A tiny process that joins a command's process group and kills the whole
/// group when this worker lets go of it: when the job is over, or when the
/// worker dies in any way, SIGKILL included.
///
/// Why not `PR_SET_PDEATHSIG`: swift-subprocess 1.0.2 offers no hook that runs
/// in the child before `exec` on Linux, and the parent-death signal would fire
/// when the *thread* that spawned the child exits (Swift's pool threads come and
/// go), and it only reaches the direct child, not the processes it starts.
///
/// How it works: the guard is `/bin/sh` running a fixed script (no job input
/// ever reaches it) that ignores SIGTERM, SIGINT and SIGHUP, reads its standard
/// input until end of file, then sends SIGKILL to its own process group —
/// which is the command's. The worker holds the only write end of that pipe
/// (swift-subprocess opens pipes close-on-exec and closes every other
/// descriptor in its children, so no other child keeps it open). The kernel
/// closes it when the worker exits, however it exits, and ``release()`` closes
/// it when the job ends. Because the guard stays in the group until then, the
/// group id can't be reused by an unrelated process while the worker may still
/// signal it.
final class ProcessGroupGuard: Sendable {
    static let shell = "/bin/sh"
    /// Ignore the teardown's SIGTERM (the guard must outlive the command), wait
    /// for end of file, then kill the group, the guard included.
    static let script = "trap '' TERM INT HUP; while read -r _; do :; done; kill -s KILL 0"

    private let released: AsyncStream<Void>
    private let releasing: AsyncStream<Void>.Continuation
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    init(logger: Logger) {
        (released, releasing) = AsyncStream.makeStream(of: Void.self)
        self.logger = logger
    }

    /// Starts the guard in process group `group` and returns once it runs (or
    /// failed to start: then the job runs unguarded, and a warning is logged).
    /// Call it while the group's leader is not yet reaped, so the group exists.
    func start(inGroup group: pid_t) async {
        let started = StartSignal()
        let released = self.released
        let logger = self.logger
        // An unstructured task: the job's cancellation must not tear the guard
        // down before the group it watches is gone.
        let runner = Task {
            var options = PlatformOptions()
            options.processGroupID = group
            do {
                _ = try await Subprocess.run(
                    .path(.init(Self.shell)), arguments: ["-c", Self.script],
                    environment: .custom(["PATH": "/usr/bin:/bin"]), workingDirectory: "/",
                    platformOptions: options, input: .inputWriter, output: .discarded, error: .discarded
                ) { execution in
                    started.fire()
                    for await _ in released {}
                    try? await execution.standardInputWriter.finish()
                }
            } catch {
                logger.warning("could not start the process group guard: the command's processes may outlive a crashed worker",
                               metadata: ["error": "\(error)", "process.group": "\(group)"])
            }
            started.fire()
        }
        task.withLock { $0 = runner }
        await started.wait()
    }

    /// Lets go of the group: the guard kills whatever is still in it, then
    /// exits. Returns once it has.
    func release() async {
        releasing.finish()
        await task.withLock { $0 }?.value
    }
}

/// A one-shot signal that may fire more than once and be awaited once.
private final class StartSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func fire() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.fired else { return nil }
            state.fired = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let fired = state.withLock { state -> Bool in
                if !state.fired { state.waiter = continuation }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }
}
