import Foundation
import JobsCore
@testable import JobsWorker
import Logging
import Synchronization
import Testing

/// Command jobs end to end: real scripts run by a worker, submitted through a
/// gateway, against an embedded broker.
@Suite("Command jobs run real processes", .timeLimit(.minutes(3)))
struct CommandJobTests {
    @Test("a script's PROGRESS lines set progress, its output lines stream, and the job succeeds with the output tails")
    func progressAndOutput() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-progress","params":{"label":"alpha"}}"#)
            // The script waits at each step until the test has seen its progress.
            try await client.waitFor(job.id) { $0.progress?.current == 1 && $0.progress?.total == 3 }
            try fixture.touch("step1")
            try await client.waitFor(job.id) { $0.progress == JobProgress(current: 2, total: 3, message: "plain line after two") }
            try fixture.touch("step2")
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded, "\(String(describing: done.error))")
            let result = try CommandJobFixture.decode(CommandJobResult.self, from: done.result)
            #expect(result.exitCode == 0)
            #expect(result.stdout == ["starting alpha", "plain line after two", "result for alpha"], "PROGRESS lines are not kept")
            #expect(result.stderr == ["warming up"])
            #expect(result.stdoutLines == 6 && result.stderrLines == 1)

            let events = try await system.statusEvents(timeout: .seconds(10)) { events in
                events.contains { $0.id == job.id && $0.status.isTerminal }
            }.filter { $0.id == job.id }
            let reported = events.filter { $0.status == .running }.compactMap(\.progress)
            #expect(reported.last == JobProgress(current: 3, total: 3, message: "done"), "the last line is published before the verdict: \(reported)")
        }
    }

    @Test("a non-zero exit fails the job with code exit_<n> and the stderr tail in the message")
    func nonZeroExit() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-fail"}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .failed)
            #expect(done.error?.code == "exit_3")
            let message = try #require(done.error?.message)
            #expect(message.hasPrefix("fail.sh exited with status 3"), "\(message)")
            #expect(message.hasSuffix("checking /data\ndisk full: /data"), "\(message)")
        }
    }

    @Test("a cancel stops the script and the grandchild it left in the background, which ignores SIGTERM")
    func cancelKillsTheProcessGroup() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-tree","params":{"tag":"cancel"}}"#)
            let (script, grandchild) = try await fixture.waitForPIDs(tag: "cancel")
            try await client.waitFor(job.id) { $0.status == .running }
            #expect(CommandJobFixture.isAlive(script) && CommandJobFixture.isAlive(grandchild))

            let reply = try await client.request(.post, "/jobs/\(job.id)/cancel")
            #expect(reply.status == .accepted)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .cancelled)
            // The verdict is published only after the group is gone; allow for the kernel's teardown.
            try await CommandJobFixture.expectGone([script, grandchild])
        }
    }

    @Test("after a cancel a command's TERM trap runs to its end in the grace period, its output still read")
    func cancelLeavesTheGracePeriodToTheCommand() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-graceful","params":{"tag":"cancel"}}"#)
            try await fixture.waitForFile("cancel.ready")
            try await client.waitFor(job.id) { $0.status == .running }

            let reply = try await client.request(.post, "/jobs/\(job.id)/cancel")
            #expect(reply.status == .accepted)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .cancelled)
            // The trap writes to stderr and stdout before it sleeps and leaves this file: a
            // command whose pipes were closed would have died of SIGPIPE at the first write.
            #expect(FileManager.default.fileExists(atPath: fixture.directory.appendingPathComponent("cancel.cleaned").path),
                    "the TERM trap did not run to its end")
        }
    }

    @Test("a cancelled command's output is read until it exits: what its TERM trap writes reaches the lines")
    func cancelledCommandOutputIsRead() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let dir = fixture.directory.path
        let launch = ProcessLaunch(executable: "\(dir)/graceful.sh", arguments: ["\(dir)/run.ready", "\(dir)/run.cleaned"],
                                   environment: ["PATH": "/usr/bin:/bin"], killGracePeriod: .seconds(5))
        let lines = LineLog()
        let run = Task { try await runProcess(launch, logger: .quiet) { stream, line in lines.append("\(stream): \(line)") } }
        try await fixture.waitForFile("run.ready")
        run.cancel()
        let status = try await run.value
        #expect(status == .exited(143), "the trap's own exit status, not SIGPIPE or SIGKILL")
        #expect(lines.all.contains("stderr: cleaning up") && lines.all.contains("stdout: cleaned up"), "\(lines.all)")
        #expect(FileManager.default.fileExists(atPath: "\(dir)/run.cleaned"))
    }

    @Test("a cancelled command that ignores SIGTERM and keeps writing is killed with SIGKILL when its grace period ends")
    func cancelledCommandIgnoringTermIsKilled() async throws {
        let launch = ProcessLaunch(
            executable: "/bin/sh", arguments: ["-c", "trap '' TERM; echo started; while :; do echo tick; echo tock >&2; sleep 0.05; done"],
            environment: ["PATH": "/usr/bin:/bin"], killGracePeriod: .milliseconds(500))
        let started = LineLog()
        let run = Task { try await runProcess(launch, logger: .quiet) { _, line in started.append(line) } }
        while !started.all.contains("started") { try await Task.sleep(for: .milliseconds(20)) }
        let cancelled = ContinuousClock.now
        run.cancel()
        let status = try await run.value
        let took = ContinuousClock.now - cancelled
        #expect(status == .signalled(SIGKILL))
        #expect(took >= .milliseconds(400) && took < .seconds(5), "\(took)")
    }

    @Test("a command over its timeout fails with code timeout, its whole group killed")
    func timeoutKillsTheProcessGroup() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-tree-timeout","params":{"tag":"timeout"}}"#)
            let (script, grandchild) = try await fixture.waitForPIDs(tag: "timeout")
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .failed)
            #expect(done.error?.code == "timeout")
            try await CommandJobFixture.expectGone([script, grandchild])
        }
    }

    @Test("a param full of shell syntax stays one literal argument: nothing is run, nothing is split")
    func argvInjectionStaysLiteral() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let dir = fixture.directory.path
        let hostile = #"x; touch \#(dir)/pwned1 $(touch \#(dir)/pwned2) `touch \#(dir)/pwned3` | tee \#(dir)/pwned4 && "q" 'single' * {absent} ~ $HOME"#
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let body: JSONValue = ["type": "cmd-argv", "params": ["name": .string(hostile)]]
            let job = try await client.submit(String(decoding: try JSONEncoder().encode(body), as: UTF8.self))
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .succeeded, "\(String(describing: done.error))")
            let result = try CommandJobFixture.decode(CommandJobResult.self, from: done.result)
            #expect(result.stdout == ["ARG<--name=\(hostile)>", "ARG<\(hostile)>", "ARG<{literal}>"],
                    "each template entry is exactly one argument; the absent optional param's entry is left out")
            for index in 1...4 {
                #expect(!FileManager.default.fileExists(atPath: "\(dir)/pwned\(index)"))
            }
        }
    }

    @Test("a param the gateway accepts but no argv can hold (a NUL) fails the job with invalid_params at once, not retried")
    func unusableParamFailsWithoutRetry() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-argv","params":{"name":"a\u0000b"},"maxAttempts":3}"#)
            let done = try await client.waitFor(job.id) { $0.status.isTerminal }
            #expect(done.status == .failed)
            #expect(done.error?.code == "invalid_params")
            #expect(done.error?.message == "/params/name: must not contain a NUL character")
            #expect(done.attempt == 1, "refused params are not retried")
        }
    }

    @Test("a param that fails its pattern is refused by the gateway with 400 and the field, and nothing is published")
    func patternRefusedAtGateway() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        try await system.withGateway(worker: false, registry: fixture.registry()) { client in
            let reply = try await client.request(.post, "/jobs", json: #"{"type":"cmd-tree","params":{"tag":"../x; rm -rf ~"}}"#)
            #expect(reply.status == .badRequest)
            let problem = try reply.problem()
            #expect(problem.type == "/problems/invalid-params")
            #expect(problem.errors == [.init(pointer: "/params/tag", detail: "must match the pattern ^[a-z0-9-]+$")])

            let types = try await client.request(.get, "/job-types")
            #expect(types.text.contains(#""pattern":"^[a-z0-9-]+$""#) || types.text.contains(#""pattern" : "^[a-z0-9-]+$""#),
                    "the pattern is published in the type's JSON Schema: \(types.text)")
        }
        #expect(try await system.recordCount(system.topics.commands) == 0)
    }

    @Test("when the worker process is killed with SIGKILL, the command's whole process group dies with it")
    func workerDeathKillsTheProcessGroup() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        let worker = try ChildProcess("worker", [
            "--brokers", system.cluster.bootstrapServers, "--worker-id", "command-worker",
            "--command-jobs", fixture.configPath,
        ], name: "command-worker")
        let log = try await worker.waitForLog("ready for assigned partitions")
        #expect(log.contains("serving command job type"))
        try await system.withGateway(worker: false, registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-tree","params":{"tag":"crash"}}"#)
            let (script, grandchild) = try await fixture.waitForPIDs(tag: "crash")
            try await client.waitFor(job.id) { $0.status == .running }
            await worker.stop(SIGKILL)
            try await CommandJobFixture.expectGone([script, grandchild])
        }
    }

    @Test("on SIGTERM a worker hands a running command job back and kills its process group")
    func workerShutdownKillsTheProcessGroup() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster()
        let worker = try ChildProcess("worker", [
            "--brokers", system.cluster.bootstrapServers, "--worker-id", "draining-worker", "--drain-timeout", "1",
            "--command-jobs", fixture.configPath,
        ], name: "draining-worker")
        try await worker.waitForLog("ready for assigned partitions")
        try await system.withGateway(worker: false, registry: fixture.registry()) { client in
            let job = try await client.submit(#"{"type":"cmd-tree","params":{"tag":"drain"}}"#)
            let (script, grandchild) = try await fixture.waitForPIDs(tag: "drain")
            try await client.waitFor(job.id) { $0.status == .running }
            await worker.stop(SIGTERM)
            #expect(worker.log.contains("worker stopped"), "\(worker.log.suffix(2000))")
            try await CommandJobFixture.expectGone([script, grandchild])
            let handedBack = try await client.waitFor(job.id) { $0.status == .queued }
            #expect(handedBack.attempt == 2)
        }
    }

    @Test("a command that takes longer to stop than the default grace is waited out before its partition moves: its next attempt never overlaps it")
    func handBackWaitsForTheKillGracePeriod() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let system = try TestCluster(partitions: 2)
        let registry = try fixture.registry()
        let first = RunningWorker(system, id: "w1", registry: registry)
        try await system.withGateway(worker: false, registry: registry) { client in
            // A job on each partition: whichever one moves to w2 has a job running.
            var jobs: [(tag: String, id: JobID)] = []
            for (index, key) in keysCoveringPartitions(2).enumerated() {
                let tag = "job-\(index)"
                let job = try await client.submit(#"{"type":"cmd-slow-stop","params":{"tag":"\#(tag)"},"orderingKey":"\#(key)"}"#)
                jobs.append((tag, job.id))
            }
            for job in jobs { try await client.waitFor(job.id) { $0.status == .running } }
            let second = RunningWorker(system, id: "w2", registry: registry)
            // The moved job is stopped after the 3 s revoke timeout and ends 16 s later;
            // its next attempt starts on the partition's new owner, and ends at once.
            var moved: (tag: String, id: JobID)?
            let deadline = ContinuousClock.now + .seconds(60)
            while moved == nil {
                for job in jobs where try await client.request(.get, "/jobs/\(job.id)").snapshot().attempt > 1 { moved = job }
                try #require(ContinuousClock.now < deadline, "no job was handed back")
                try await Task.sleep(for: .milliseconds(100))
            }
            let handedBack = try #require(moved)
            let done = try await client.waitFor(handedBack.id, timeout: .seconds(30)) { $0.status.isTerminal }
            #expect(done.status == .succeeded && done.attempt == 2, "\(done)")
            try fixture.touch("release")
            for job in jobs { try await client.waitFor(job.id, timeout: .seconds(60)) { $0.status.isTerminal } }
            // Attempt 1 has ended by now if its worker waited for it; if not, it ends
            // within its 16 s, before the workers stop, so the log tells how they overlapped.
            let logFile = fixture.directory.appendingPathComponent("\(handedBack.tag).log")
            let ended = ContinuousClock.now + .seconds(30)
            while try !String(contentsOf: logFile, encoding: .utf8).contains("end 1 "), ContinuousClock.now < ended {
                try await Task.sleep(for: .milliseconds(100))
            }
            async let firstStopped: Void = first.stop()
            async let secondStopped: Void = second.stop()
            _ = try await (firstStopped, secondStopped)

            let log = try String(contentsOf: logFile, encoding: .utf8)
            let events = log.split(separator: "\n").map { $0.split(separator: " ") }
            let firstEnded = try #require(events.first { $0.first == "end" && $0.dropFirst().first == "1" }?.last.flatMap { UInt64($0) },
                                          "attempt 1 was not stopped: \(log)")
            let secondStarted = try #require(events.first { $0.first == "start" && $0.dropFirst().first == "2" }?.last.flatMap { UInt64($0) },
                                             "no attempt 2: \(log)")
            #expect(firstEnded < secondStarted, "attempt 2 started \(Double(firstEnded - min(firstEnded, secondStarted)) / 1e9) s before attempt 1 ended: \(log)")
        }
    }

    @Test("a second SIGTERM ends a worker's drain at once: its running job is handed back, not waited for")
    func secondSignalEndsTheDrain() async throws {
        let system = try TestCluster()
        let worker = try ChildProcess("worker", [
            "--brokers", system.cluster.bootstrapServers, "--worker-id", "impatient-worker", "--drain-timeout", "120",
        ], name: "impatient-worker")
        try await worker.waitForLog("ready for assigned partitions")
        try await system.withGateway(worker: false) { client in
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":600,"stepMs":100}}"#)
            try await client.waitFor(job.id) { $0.status == .running }
            kill(worker.pid, SIGTERM)
            try await worker.waitForLog("draining")
            kill(worker.pid, SIGTERM)
            #expect(await worker.waitForExit(timeout: .seconds(30)), "still draining, with 120 s to go")
            #expect(worker.exitCode == 0)
            #expect(worker.log.contains("second signal"), "\(worker.log.suffix(2000))")
            let handedBack = try await client.waitFor(job.id) { $0.status == .queued }
            #expect(handedBack.attempt == 2)
        }
    }

    @Test("processes a command leaves behind are killed when it exits; commands that exit at once are fine")
    func leftoversAreKilledOnExit() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let pidFile = fixture.directory.appendingPathComponent("leftover.pid").path
        let launch = ProcessLaunch(
            executable: "/bin/sh",
            arguments: ["-c", #"sleep 600 > /dev/null 2>&1 & echo $! > "$1.tmp" && mv "$1.tmp" "$1"; echo bye"#, "sh", pidFile],
            environment: ["PATH": "/usr/bin:/bin"], killGracePeriod: .seconds(1))
        let lines = LineLog()
        let status = try await runProcess(launch, logger: .quiet) { stream, line in lines.append("\(stream): \(line)") }
        #expect(status == .exited(0))
        #expect(lines.all == ["stdout: bye"])
        let leftover = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        try await CommandJobFixture.expectGone([leftover])

        let statuses = try await withThrowingTaskGroup(of: ProcessTermination.self) { group in
            for code in 0..<20 {
                group.addTask {
                    try await runProcess(ProcessLaunch(executable: "/bin/sh", arguments: ["-c", "exit \(code)"], environment: [:],
                                                       killGracePeriod: .seconds(1)), logger: .quiet) { _, _ in }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(statuses) == Set((0..<20).map { ProcessTermination.exited(Int32($0)) }))

        // An executable that vanished after the file was loaded.
        await #expect(throws: ProcessLaunchError.self) {
            try await runProcess(ProcessLaunch(executable: "/no/such/executable", arguments: [], environment: [:],
                                               killGracePeriod: .seconds(1)), logger: .quiet) { _, _ in }
        }
    }

    @Test("the worker executable refuses a bad command jobs file at start-up, naming the file and the entry")
    func workerRefusesBadFile() async throws {
        let fixture = try CommandJobFixture()
        defer { fixture.remove() }
        let bad = fixture.directory.appendingPathComponent("bad.yaml").path
        try "jobs:\n  - name: broken\n    executable: /bin/echo\n    arguments: [\"{nope}\"]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let worker = try ChildProcess("worker", ["--brokers", "127.0.0.1:1", "--command-jobs", bad], name: "bad-config-worker")
        let deadline = ContinuousClock.now + .seconds(30)
        while worker.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!worker.isRunning)
        #expect(worker.log.contains(#"command jobs file \#(bad): jobs[0] "broken": arguments[0] "{nope}": {nope} is not a declared param"#),
                "\(worker.log)")
    }
}

/// A temporary directory with the scripts the command jobs run and the YAML
/// file that declares them.
struct CommandJobFixture {
    let directory: URL
    var configPath: String { directory.appendingPathComponent("command-jobs.yaml").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("command-jobs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let dir = directory.path
        // $1: a label; $2: the directory where the test drops step files.
        try script("progress.sh", """
            wait_for() { while [ ! -e "$1" ]; do sleep 0.02; done; }
            echo "starting $1"
            echo "warming up" >&2
            echo "PROGRESS 1/3 first step"
            wait_for "$2/step1"
            echo "PROGRESS 2/3 second step"
            echo "plain line after two"
            wait_for "$2/step2"
            echo "result for $1"
            echo "PROGRESS 3/3 done"
            """)
        try script("fail.sh", """
            echo "some output"
            echo "checking /data" >&2
            echo "disk full: /data" >&2
            exit 3
            """)
        // $1: where the script writes its pid; $2: where its background child,
        // which ignores SIGTERM and keeps the stdout pipe open, writes its own.
        try script("tree.sh", """
            sh -c 'trap "" TERM; echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; while :; do sleep 1; done' grandchild "$2" &
            echo $$ > "$1.tmp" && mv "$1.tmp" "$1"
            echo "PROGRESS 0/1 waiting"
            while :; do sleep 1; done
            """)
        // $1: written once the TERM trap is set; $2: written by the trap when it has
        // cleaned up, after it wrote to both streams and took a second.
        try script("graceful.sh", """
            trap 'echo "cleaning up" >&2; sleep 1; echo "cleaned up"; echo done > "$2"; exit 143' TERM
            echo ready > "$1"
            echo "PROGRESS 0/1 waiting"
            while :; do sleep 0.2; done
            """)
        // $1: the log its attempts append to. A first attempt runs until `release`
        // exists; stopped, it takes 16 s to clean up (longer than the 5 s a stopped
        // Swift handler gets, and the embedded broker's ~5 s to move a partition).
        // A later attempt ends at once.
        try script("slow-stop.sh", """
            echo "start $JOBS_ATTEMPT $(date +%s%N)" >> "$1"
            [ "$JOBS_ATTEMPT" -ge 2 ] && exit 0
            trap 'sleep 16; echo "end $JOBS_ATTEMPT $(date +%s%N)" >> "$1"; exit 143' TERM
            while [ ! -f "\(dir)/release" ]; do sleep 0.2; done
            """)
        try script("argv.sh", """
            for a in "$@"; do printf 'ARG<%s>\\n' "$a"; done
            """)
        try """
            jobs:
              - name: cmd-progress
                executable: \(dir)/progress.sh
                arguments: ["{label}", "\(dir)"]
                params:
                  label: { type: string, pattern: '^[a-z0-9-]+$', required: true }
              - name: cmd-fail
                executable: \(dir)/fail.sh
              - name: cmd-tree
                executable: \(dir)/tree.sh
                arguments: ["\(dir)/{tag}.pid", "\(dir)/{tag}.child.pid"]
                params:
                  tag: { type: string, pattern: '^[a-z0-9-]+$', required: true }
                killGracePeriod: 2s
              - name: cmd-tree-timeout
                executable: \(dir)/tree.sh
                arguments: ["\(dir)/{tag}.pid", "\(dir)/{tag}.child.pid"]
                params:
                  tag: { type: string, pattern: '^[a-z0-9-]+$', required: true }
                timeout: 1s
                killGracePeriod: 2s
              - name: cmd-graceful
                executable: \(dir)/graceful.sh
                arguments: ["\(dir)/{tag}.ready", "\(dir)/{tag}.cleaned"]
                params:
                  tag: { type: string, pattern: '^[a-z0-9-]+$', required: true }
                killGracePeriod: 5s
              - name: cmd-slow-stop
                executable: \(dir)/slow-stop.sh
                arguments: ["\(dir)/{tag}.log"]
                params:
                  tag: { type: string, pattern: '^[a-z0-9-]+$', required: true }
                killGracePeriod: 20s
              - name: cmd-argv
                executable: \(dir)/argv.sh
                arguments: ["--name={name}", "{name}", "{{literal}}", "{absent}"]
                params:
                  name: { type: string, maxLength: 500, required: true }
                  absent: { type: string }
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    private func script(_ name: String, _ body: String) throws {
        let path = directory.appendingPathComponent(name).path
        try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
    }

    /// The built-in types plus the command jobs of the file.
    func registry() throws -> JobRegistry {
        var registry = JobRegistry.builtin
        try registry.register(commandJobs: CommandJobsConfiguration.load(contentsOf: configPath))
        return registry
    }

    func touch(_ name: String) throws {
        try Data().write(to: directory.appendingPathComponent(name))
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Waits for a script to create the file `name` in the directory.
    func waitForFile(_ name: String, timeout: Duration = .seconds(20)) async throws {
        let path = directory.appendingPathComponent(name).path
        let deadline = ContinuousClock.now + timeout
        while !FileManager.default.fileExists(atPath: path) {
            try #require(ContinuousClock.now < deadline, "\(name) was not written within \(timeout)")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Waits for the pids `tree.sh` and its background child write.
    func waitForPIDs(tag: String, timeout: Duration = .seconds(20)) async throws -> (script: pid_t, grandchild: pid_t) {
        func read(_ name: String) -> pid_t? {
            let path = directory.appendingPathComponent(name).path
            return (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            if let script = read("\(tag).pid"), let grandchild = read("\(tag).child.pid") { return (script, grandchild) }
            try #require(ContinuousClock.now < deadline, "tree.sh did not write its pids within \(timeout)")
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Running, as opposed to gone or a zombie nobody reaped yet (a container's
    /// init may never reap an orphan).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[close...].dropFirst(2).first
        return state != "Z" && state != "X"
    }

    static func expectGone(_ pids: [pid_t], timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while pids.contains(where: isAlive), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(pids.filter(isAlive).isEmpty, "still running: \(pids.filter(isAlive))")
    }

    static func decode<T: Decodable>(_ type: T.Type, from result: JSONValue?) throws -> T {
        try JSONDecoder().decode(type, from: JSONEncoder().encode(try #require(result)))
    }
}

/// Lines collected from concurrent callbacks.
final class LineLog: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
