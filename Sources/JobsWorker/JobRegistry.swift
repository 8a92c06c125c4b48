import Foundation
import JobsCore

/// The job types a worker serves, keyed by name: what a team registers its own
/// handlers into.
///
/// ```swift
/// var registry = JobRegistry.builtin
/// registry.register("resize", params: ResizeParams.self, schema: resizeSchema) { params, context in
///     try await context.progress(current: 1, total: 2)
///     return ResizeResult(...)
/// }
/// ```
public struct JobRegistry: Sendable {
    private(set) var handlers: [String: RegisteredJob] = [:]

    public init() {}

    /// Registers a handler. `Params` is decoded from the job's params after they
    /// passed `schema`; the handler's return value becomes the job's `result`.
    public mutating func register<Params: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String,
        params: Params.Type = Params.self,
        schema: ParamsSchema = ParamsSchema(),
        summary: String = "",
        options: JobOptions = JobOptions(),
        handler: @escaping @Sendable (Params, JobContext) async throws -> Output
    ) {
        let descriptor = JobTypeDescriptor(name: name, summary: summary, params: schema)
        handlers[name] = RegisteredJob(descriptor: descriptor, options: options) { rawParams, context in
            let params: Params
            do {
                params = try JSONDecoder().decode(Params.self, from: JSONEncoder().encode(rawParams))
            } catch {
                throw JobError(code: "invalid_params", message: "params do not fit \(name): \(error)")
            }
            let output = try await handler(params, context)
            let result = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(output))
            return result == .null ? nil : result
        }
    }

    /// The descriptors of every registered type, for validation and discovery.
    public var descriptors: [JobTypeDescriptor] {
        handlers.values.map(\.descriptor).sorted { $0.name < $1.name }
    }

    subscript(type: String) -> RegisteredJob? { handlers[type] }

    /// `maxConcurrent` of every type that has one.
    var concurrencyLimits: [String: Int] { handlers.compactMapValues(\.options.maxConcurrent) }
}

/// A handler with its params and result erased to JSON.
struct RegisteredJob: Sendable {
    let descriptor: JobTypeDescriptor
    let options: JobOptions
    let run: @Sendable (JSONValue, JobContext) async throws -> JSONValue?
}
