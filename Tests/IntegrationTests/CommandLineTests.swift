import Foundation
import KafkaClient
import Testing

/// A start of `gateway` or `worker` that must be refused: its arguments and
/// variables, and the error line it must print.
struct Refusal: Sendable, CustomTestStringConvertible {
    let executable: String
    let arguments: [String]
    /// The variables under test; ``environment`` adds what the process needs besides.
    let variables: [String: String]
    let error: String

    /// A gateway that would otherwise start: it has a key, a broker and no topics to create.
    static func gateway(_ arguments: [String] = [], env: [String: String] = [:], _ error: String) -> Refusal {
        Refusal(executable: "gateway", arguments: arguments, variables: env, error: error)
    }

    /// A worker that would otherwise start, against a broker that isn't there.
    static func worker(_ arguments: [String] = [], env: [String: String] = [:], _ error: String) -> Refusal {
        Refusal(executable: "worker", arguments: arguments, variables: env, error: error)
    }

    var environment: [String: String] {
        let needed = executable == "gateway"
            ? ["JOBS_BROKERS": "127.0.0.1:1", "JOBS_API_KEYS": TestKeys.admin, "JOBS_CREATE_TOPICS": "false"]
            : ["JOBS_BROKERS": "127.0.0.1:1"]
        return needed.merging(variables) { _, given in given }
    }

    var testDescription: String {
        ([executable] + variables.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + arguments).joined(separator: " ")
    }
}

// Serialized: the cases start a process each, and thirty debug binaries loading
// at once slowed every timing-sensitive test running beside them.
@Suite("The gateway's and worker's options and JOBS_ variables", .serialized, .timeLimit(.minutes(5)))
struct CommandLineTests {
    /// Runs `refusal` and expects a usage error: exit 64 and its error line.
    private func expectRefused(_ refusal: Refusal) async throws {
        let child = try ChildProcess(refusal.executable, refusal.arguments, name: refusal.executable,
                                     environment: refusal.environment)
        let exited = await child.waitForExit(timeout: .seconds(10))
        await child.stop(SIGKILL)
        #expect(exited, "\(refusal.executable) started instead of refusing:\n\(child.log.suffix(2000))")
        #expect(child.exitCode == 64, "exit code \(String(describing: child.exitCode)):\n\(child.log.suffix(2000))")
        #expect(child.log.contains("Error: \(refusal.error)\n"), "expected 'Error: \(refusal.error)' in:\n\(child.log.suffix(2000))")
    }

    @Test("a JOBS_ variable with a value that isn't valid stops the process with a usage error naming it, not the default", arguments: [
        Refusal.gateway(env: ["JOBS_PORT": "abc"], "JOBS_PORT: 'abc' is not a valid integer"),
        Refusal.gateway(env: ["JOBS_PORT": ""], "JOBS_PORT: '' is not a valid integer"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_CREATE_TOPICS": "yes"], "JOBS_CREATE_TOPICS: 'yes' is not true or false"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_COMMAND_TIMEOUT_MS": "5s"], "JOBS_COMMAND_TIMEOUT_MS: '5s' is not a valid integer"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_JOB_RETENTION_HOURS": "1w"], "JOBS_JOB_RETENTION_HOURS: '1w' is not a valid number"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_MAX_PAGE_SIZE": "lots"], "JOBS_MAX_PAGE_SIZE: 'lots' is not a valid integer"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_LOG_LEVEL": "verbose"],
                        "JOBS_LOG_LEVEL: 'verbose' is not one of trace, debug, info, notice, warning, error, critical"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_ALLOWED_ORIGINS": "https://app.example.com,app.example.com"],
                        "JOBS_ALLOWED_ORIGINS: 'app.example.com' is not an origin: scheme://host[:port], no path or trailing /"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_API_KEYS": "reader:read:short"],
                        "JOBS_API_KEYS: API key reader: a token must be at least 16 characters"),
        Refusal.worker(env: ["JOBS_CONCURRENCY": "abc"], "JOBS_CONCURRENCY: 'abc' is not a valid integer"),
        Refusal.worker(env: ["JOBS_DRAIN_TIMEOUT": "30s"], "JOBS_DRAIN_TIMEOUT: '30s' is not a valid integer"),
        Refusal.worker(env: ["JOBS_LOG_LEVEL": "INFO"],
                       "JOBS_LOG_LEVEL: 'INFO' is not one of trace, debug, info, notice, warning, error, critical"),
        // Empty text that means nothing: once a crash (group), a worker id "" in snapshots, a gateway never ready.
        Refusal.worker(env: ["JOBS_GROUP": ""], "JOBS_GROUP must not be empty"),
        Refusal.worker(["--group", ""], "--group must not be empty"),
        Refusal.worker(env: ["JOBS_WORKER_ID": " "], "JOBS_WORKER_ID must not be empty"),
        Refusal.worker(env: ["JOBS_BROKERS": ""], "JOBS_BROKERS must not be empty"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_BROKERS": ""], "JOBS_BROKERS must not be empty"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_GROUP": ""], "JOBS_GROUP must not be empty"),
        Refusal.worker(["--topic-prefix", "bad prefix"], "--topic-prefix: 'bad prefix' is not a topic prefix: at most 240 of A-Z a-z 0-9 . _ -"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_TOPIC_PREFIX": "jobs/v2"],
                        "JOBS_TOPIC_PREFIX: 'jobs/v2' is not a topic prefix: at most 240 of A-Z a-z 0-9 . _ -"),
    ])
    func badVariableIsRefused(refusal: Refusal) async throws {
        try await expectRefused(refusal)
    }

    @Test("a number out of its range is refused, from an option or a variable, rather than clamped or wrapped", arguments: [
        Refusal.gateway(["--port", "99999"], "--port must be between 0 and 65535, not 99999"),
        Refusal.gateway(["--port", "-1"], "--port must be between 0 and 65535, not -1"),
        Refusal.gateway(env: ["JOBS_PORT": "65536"], "JOBS_PORT must be between 0 and 65535, not 65536"),
        Refusal.gateway(["--port", "0", "--partitions", "0"], "--partitions must be between 1 and 2147483647, not 0"),
        Refusal.gateway(["--port", "0", "--replication-factor", "0"], "--replication-factor must be between 1 and 32767, not 0"),
        Refusal.gateway(["--port", "0", "--command-timeout-ms", "0"], "--command-timeout-ms must be between 1 and 2147483647, not 0"),
        Refusal.gateway(["--port", "0", "--worker-silence-ms", "-5"], "--worker-silence-ms must be at least 1, not -5"),
        Refusal.gateway(["--port", "0", "--max-body-bytes", "0"], "--max-body-bytes must be at least 1, not 0"),
        Refusal.gateway(["--port", "0", "--max-page-size", "0"], "--max-page-size must be at least 1, not 0"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_MAX_PARAMS_BYTES": "0"], "JOBS_MAX_PARAMS_BYTES must be at least 1, not 0"),
        Refusal.gateway(["--port", "0", "--job-retention-hours", "0"], "--job-retention-hours must be more than 0 and at most 876000, not 0"),
        Refusal.gateway(["--port", "0", "--job-retention-hours", "nan"], "--job-retention-hours must be more than 0 and at most 876000, not nan"),
        Refusal.gateway(["--port", "0", "--embedded", "--worker-concurrency", "0"], "--worker-concurrency must be between 1 and 100000, not 0"),
        Refusal.worker(["--concurrency", "0"], "--concurrency must be between 1 and 100000, not 0"),
        Refusal.worker(env: ["JOBS_CONCURRENCY": "-3"], "JOBS_CONCURRENCY must be between 1 and 100000, not -3"),
        // Once an overflow trap: the worker reads ahead twice its concurrency.
        Refusal.worker(["--concurrency", "4611686018427387904"], "--concurrency must be between 1 and 100000, not 4611686018427387904"),
        Refusal.worker(["--drain-timeout=-1"], "--drain-timeout must be at least 0, not -1"),
        Refusal.worker(["--drain-timeout", "-1"], "--drain-timeout must be at least 0, not -1"),
    ])
    func outOfRangeIsRefused(refusal: Refusal) async throws {
        try await expectRefused(refusal)
    }

    @Test("an option that isn't an origin, a log level, a folder or key=value, or that only --embedded takes, is refused, not ignored", arguments: [
        Refusal.gateway(["--port", "0", "--allow-origin", "https://app.example.com/"],
                        "--allow-origin: 'https://app.example.com/' is not an origin: scheme://host[:port], no path or trailing /"),
        Refusal.gateway(["--port", "0", "--log-level", "verbose"],
                        "--log-level: 'verbose' is not one of trace, debug, info, notice, warning, error, critical"),
        Refusal.gateway(["--port", "0"], env: ["JOBS_DASHBOARD_DIR": "/no/such/dir"],
                        "JOBS_DASHBOARD_DIR: '/no/such/dir' is not an existing directory"),
        Refusal.gateway(["--port", "0", "--worker-concurrency", "4"], "--worker-concurrency applies only with --embedded (to its in-process worker)"),
        Refusal.gateway(["--port", "0", "--command-jobs", "/etc/jobs.yaml"], "--command-jobs applies only with --embedded (to its in-process worker)"),
        Refusal.gateway(["--port", "0", "--kafka", "=1"], "--kafka: '=1' is not key=value"),
        Refusal.worker(["--kafka", "linger.ms"], "--kafka: 'linger.ms' is not key=value"),
    ])
    func badWordIsRefused(refusal: Refusal) async throws {
        try await expectRefused(refusal)
    }

    @Test("a port already in use stops the gateway with the address and the reason in words, exit 1")
    func portInUse() async throws {
        let (socket, port) = try listeningSocket()
        defer { close(socket) }
        let system = try TestCluster()
        let gateway = try ChildProcess("gateway", ["--brokers", system.cluster.bootstrapServers, "--port", "\(port)",
                                                   "--create-topics", "false", "--api-key", TestKeys.admin], name: "gateway")
        let exited = await gateway.waitForExit(timeout: .seconds(60))
        await gateway.stop(SIGKILL)
        #expect(exited, "the gateway kept running:\n\(gateway.log.suffix(2000))")
        #expect(gateway.exitCode == 1)
        #expect(gateway.log.contains("Error: cannot listen on 127.0.0.1:\(port): address already in use\n"), "\(gateway.log.suffix(2000))")
    }

    @Test("a gateway creating topics starts at once on a cluster that has them, even one that never answers CreateTopics")
    func existingTopicsAreNotCreated() async throws {
        let system = try TestCluster()  // the mock cluster: its topics exist, and it never answers CreateTopics
        let gateway = try ChildProcess("gateway", ["--brokers", system.cluster.bootstrapServers, "--port", "0",
                                                   "--api-key", TestKeys.admin], name: "gateway")
        // CreateTopics would take its full 15 s timeout, then stop the gateway.
        let log = try await gateway.waitForLog("listening on", timeout: .seconds(10))
        await gateway.stop()
        #expect(log.contains("topics ready"))
    }

    @Test("a gateway whose topics are missing on a cluster that never answers CreateTopics says to start with --create-topics false")
    func unansweredCreateTopicsSuggestsTheOption() async throws {
        let system = try TestCluster()
        let gateway = try ChildProcess("gateway", ["--brokers", system.cluster.bootstrapServers, "--port", "0", "--topic-prefix", "other",
                                                   "--api-key", TestKeys.admin], name: "gateway")
        let exited = await gateway.waitForExit(timeout: .seconds(60))
        await gateway.stop(SIGKILL)
        #expect(exited, "the gateway kept running:\n\(gateway.log.suffix(2000))")
        #expect(gateway.exitCode == 1)
        #expect(gateway.log.contains("--create-topics false (JOBS_CREATE_TOPICS=false)"), "\(gateway.log.suffix(2000))")
    }

    /// A TCP socket listening on 127.0.0.1, on a port the system chose.
    private func listeningSocket() throws -> (Int32, Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(descriptor, generic, length) == 0 && listen(descriptor, 1) == 0
                    && getsockname(descriptor, generic, &length) == 0
            }
        }
        try #require(bound, "cannot listen: \(String(cString: strerror(errno)))")
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }
}
