import JobsCore

extension JobRegistry {
    /// A registry with the job types every worker serves: `noop` and `sleep`.
    public static var builtin: JobRegistry {
        var registry = JobRegistry()
        registry.registerBuiltinJobs()
        return registry
    }

    public mutating func registerBuiltinJobs() {
        register(BuiltinJobTypes.noop.name, params: NoParams.self, schema: BuiltinJobTypes.noop.params,
                 summary: BuiltinJobTypes.noop.summary) { _, _ in NoResult() }

        register(BuiltinJobTypes.sleep.name, params: SleepParams.self, schema: BuiltinJobTypes.sleep.params,
                 summary: BuiltinJobTypes.sleep.summary) { params, context in
            let steps = params.steps ?? 10
            let stepMs = params.stepMs ?? 1000
            for step in 1...steps {
                try await Task.sleep(for: .milliseconds(stepMs))
                try await context.progress(current: step, total: steps, message: "step \(step) of \(steps)")
            }
            return SleepResult(steps: steps, sleptMs: steps * stepMs)
        }
    }
}

struct NoParams: Codable, Sendable {}

/// What a handler with nothing to report returns: it encodes as JSON `null`,
/// which the registry stores as "no result".
public struct NoResult: Encodable, Sendable {
    public init() {}

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}

struct SleepParams: Codable, Sendable {
    var steps: Int?
    var stepMs: Int?
}

struct SleepResult: Codable, Sendable {
    var steps: Int
    var sleptMs: Int
}
