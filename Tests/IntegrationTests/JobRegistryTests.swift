import Foundation
import JobsCore
@testable import JobsWorker
import Logging
import Synchronization
import Testing

@Suite("A typed handler's params and result cross JSON")
struct JobRegistryTests {
    struct Resize: Codable, Sendable {
        struct Box: Codable, Sendable { var width: Int; var height: Int }
        var source: String
        var box: Box
        var scales: [Double]
        var quality: Int?
        var tags: [String: Bool]
    }

    struct Resized: Codable, Sendable {
        var outputs: [String]
        var pixels: Int
        var ratio: Double
        var note: String?
        var cropped: Bool
    }

    static let context = JobContext(jobID: JobID(rawValue: "job-1"), type: "t", logger: Logger(label: "test"))

    static func run(_ registry: JobRegistry, _ type: String, _ params: JSONValue) async throws -> JSONValue? {
        try await #require(registry[type]).run(params, context)
    }

    @Test("params reach the handler as its type, and its return value becomes the result, as JSON")
    func typedParamsAndResult() async throws {
        var registry = JobRegistry()
        registry.register("resize", params: Resize.self) { params, _ -> Resized in
            Resized(outputs: params.scales.map { "\(params.source)@\($0)x" },
                    pixels: params.box.width * params.box.height,
                    ratio: Double(params.box.width) / Double(params.box.height),
                    note: params.quality.map { "quality \($0)" },
                    cropped: params.tags["crop"] ?? false)
        }
        let params: JSONValue = [
            "source": "a\"b/ü.png", "box": ["width": 300, "height": 200], "scales": [1, 2.5],
            "quality": 90, "tags": ["crop": true, "sharpen": false],
        ]
        let result = try await Self.run(registry, "resize", params)
        #expect(result == [
            "outputs": ["a\"b/ü.png@1.0x", "a\"b/ü.png@2.5x"], "pixels": 60000, "ratio": 1.5,
            "note": "quality 90", "cropped": true,
        ])
        // A nil optional is left out, as Foundation's encoder does.
        let bare = try await Self.run(registry, "resize", [
            "source": "x", "box": ["width": 1, "height": 4], "scales": [], "tags": [:],
        ])
        #expect(bare == ["outputs": [], "pixels": 4, "ratio": 0.25, "cropped": false])
    }

    @Test("params that don't fit the handler's type fail the job as invalid_params, naming the type, not to be retried")
    func paramsThatDontFit() async throws {
        var registry = JobRegistry()
        registry.register("resize", params: Resize.self) { _, _ in 0 }
        for params: JSONValue in [["source": 1], ["source": "x", "box": ["width": 2.5, "height": 1], "scales": [], "tags": [:]], "text"] {
            await #expect {
                try await Self.run(registry, "resize", params)
            } throws: { error in
                guard let error = (error as? NonRetryableError)?.error else { return false }
                return error.code == "invalid_params" && error.message.hasPrefix("params do not fit resize:")
            }
        }
    }

    @Test("a result that can't be JSON fails the job as invalid_result, not to be retried")
    func resultThatIsNotJSON() async throws {
        struct Ratio: Encodable, Sendable { var value: Double }
        var registry = JobRegistry()
        registry.register("divide", params: [String: Double].self) { params, _ in Ratio(value: params["a", default: 0] / 0 * 0) }
        await #expect {
            try await Self.run(registry, "divide", ["a": 1])
        } throws: { error in
            // Once a plain error: retried as handler_error, the handler's side effects repeated.
            guard let error = (error as? NonRetryableError)?.error else { return false }
            return error.code == "invalid_result" && error.message.hasPrefix("the result cannot be encoded as JSON:")
        }
    }

    @Test("times in params and results are RFC 3339 text, as on the wire")
    func timesAsText() async throws {
        struct Window: Codable, Sendable { var from: Date }
        var registry = JobRegistry()
        registry.register("later", params: Window.self) { params, _ in Window(from: params.from.addingTimeInterval(60)) }
        let result = try await Self.run(registry, "later", ["from": "2026-12-02T10:00:00.250Z"])
        #expect(result == ["from": "2026-12-02T10:01:00.250Z"])
    }

    @Test("registering a type whose params pattern is not a regular expression stops the program at once")
    func invalidPatternIsCaughtAtRegistration() async {
        await #expect(processExitsWith: .failure) {
            var registry = JobRegistry()
            registry.register("broken", params: JSONValue.self,
                              schema: ParamsSchema([.init("name", .string(pattern: "^[a-z+$"))])) { params, _ in params }
        }
    }

    @Test("registering a type under a name no job could be submitted with stops the program at once")
    func invalidNameIsCaughtAtRegistration() async {
        await #expect(processExitsWith: .failure) {
            var registry = JobRegistry()
            registry.register("two words", params: JSONValue.self) { params, _ in params }
        }
        for name in ["", "two words", "-dash", String(repeating: "a", count: 101)] {
            #expect(!JobTypeDescriptor.isValidName(name), "\(name)")
        }
        #expect(JobTypeDescriptor.isValidName("resize.v2:png_small-1"))
    }

    @Test("registering a name again replaces its handler, a built-in type's too")
    func registeringAgainReplaces() async throws {
        var registry = JobRegistry.builtin
        registry.register("noop", params: JSONValue.self) { _, _ in "mine" as JSONValue }
        #expect(try await registry.run("noop", params: [:], context: JobContext(type: "noop")) == "mine")
    }

    @Test("a handler returning NoResult leaves the job without a result")
    func noResult() async throws {
        var registry = JobRegistry()
        registry.register("quiet", params: JSONValue.self) { _, _ in NoResult() }
        #expect(try await Self.run(registry, "quiet", [:]) == JSONValue?.none)
    }

    @Test("a thrown error's message is its LocalizedError description when it has one, else its description")
    func errorMessages() {
        struct Described: LocalizedError { var errorDescription: String? { "the disk is full" } }
        struct Plain: Error { var reason = "quota" }
        #expect(JobExecution.message(of: Described()) == "the disk is full")
        #expect(JobExecution.message(of: Plain()) == #"Plain(reason: "quota")"#)
    }

    @Test("a handler on JSONValue sees the params as they are; a null result is no result")
    func jsonValueHandlers() async throws {
        var registry = JobRegistry()
        registry.register("echo", params: JSONValue.self) { params, _ in params }
        registry.register("nothing", params: JSONValue.self) { _, _ in JSONValue.null }
        let params: JSONValue = ["list": [1, "two", nil, ["three": 3.5]], "flag": false]
        #expect(try await Self.run(registry, "echo", params) == params)
        // No result at all, not a result that is JSON null.
        #expect(try await Self.run(registry, "nothing", params) == JSONValue?.none)
    }

    @Test("run(_:params:context:) refuses what a worker refuses, with the worker's codes, before the handler runs")
    func runRefusesLikeAWorker() async throws {
        let calls = Mutex(0)
        var registry = JobRegistry()
        registry.register("greet", params: JSONValue.self,
                          schema: ParamsSchema([.init("name", .string(maxLength: 5), required: true)])) { params, _ in
            calls.withLock { $0 += 1 }
            return params
        }
        let context = JobContext(type: "greet")
        for (type, params, code, message) in [
            ("wave", ["name": "ann"], "unknown_type", "no handler for job type wave on this worker"),
            ("greet", ["name": "annabel"], "invalid_params", "/params/name: must be at most 5 characters"),
            ("greet", [:], "invalid_params", "/params/name: is required"),
        ] as [(String, JSONValue, String, String)] {
            await #expect(throws: NonRetryableError(code: code, message: message)) {
                try await registry.run(type, params: params, context: context)
            }
        }
        #expect(calls.withLock { $0 } == 0)
        #expect(try await registry.run("greet", params: ["name": "ann"], context: context) == ["name": "ann"])
        #expect(calls.withLock { $0 } == 1)
    }

    @Test("a JobContext made in a test passes the handler's progress reports to its closure, and a throw from it stops the handler")
    func contextForTests() async throws {
        var registry = JobRegistry()
        registry.register("count", params: JSONValue.self) { _, context -> Int in
            for step in 1...5 { try await context.progress(current: step, total: 5, message: "step \(step)") }
            return 5
        }
        let reports = Mutex<[JobProgress]>([])
        let recording = JobContext(type: "count") { progress in reports.withLock { $0.append(progress) } }
        #expect(try await registry.run("count", params: [:], context: recording) == 5)
        #expect(reports.withLock { $0 } == (1...5).map { JobProgress(current: $0, total: 5, message: "step \($0)") })

        // A worker's reporter throws CancellationError once the job is cancelled.
        let cancelledAfterTwo = JobContext(type: "count") { progress in
            if progress.current > 2 { throw CancellationError() }
        }
        await #expect(throws: CancellationError.self) {
            try await registry.run("count", params: [:], context: cancelledAfterTwo)
        }

        // Or it says the attempt is to stop, as a worker's does for any task or thread.
        let stopped = JobContext(type: "count", cancelled: { true })
        #expect(stopped.isCancelled)
        #expect(throws: CancellationError.self) { try stopped.checkCancellation() }
        await #expect(throws: CancellationError.self) {
            try await registry.run("count", params: [:], context: stopped)
        }
    }
}
