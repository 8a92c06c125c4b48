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
    /// passed `schema`; params that pass it but don't decode (the schema and the
    /// type disagree) end the job `failed` with `invalid_params` at once, not
    /// retried. The handler's return value becomes the job's `result` (none when
    /// it encodes to `null`: a `nil` optional, or ``NoResult``); one that can't be
    /// encoded as JSON (a NaN) ends the job `failed` with `invalid_result` at once,
    /// since another attempt would give it again. Times in params
    /// and results are RFC 3339 text, as everywhere on the wire.
    ///
    /// Registering a name again replaces its handler (a built-in type's too).
    /// A name that is not a job type name (``JobTypeDescriptor/nameRule``) or a
    /// schema `pattern` that is not a valid regular expression stops the program
    /// here: no job could ever reach such a type, and no one would say why.
    public mutating func register<Params: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String,
        params: Params.Type = Params.self,
        schema: ParamsSchema = ParamsSchema(),
        summary: String = "",
        options: JobOptions = JobOptions(),
        handler: @escaping @Sendable (Params, JobContext) async throws -> Output
    ) {
        precondition(JobTypeDescriptor.isValidName(name), "job type \"\(name)\": not a job type name (\(JobTypeDescriptor.nameRule))")
        for field in schema.fields {
            guard case .string(_, _, let pattern?) = field.type else { continue }
            // A mistake in the code, caught at start-up: a gateway can't read such a
            // schema, so the type would never accept a job, and no one would say why.
            precondition((try? Regex(pattern)) != nil,
                         "job type \(name): the pattern of params field \(field.name), \(pattern), is not a valid regular expression")
        }
        let descriptor = JobTypeDescriptor(name: name, summary: summary, params: schema)
        handlers[name] = RegisteredJob(descriptor: descriptor, options: options) { rawParams, context in
            let params: Params
            do {
                params = try Self.decode(Params.self, from: rawParams)
            } catch {
                throw NonRetryableError(code: "invalid_params", message: "params do not fit \(name): \(error)")
            }
            let output = try await handler(params, context)
            let result: JSONValue
            do {
                result = try Self.jsonValue(of: output)
            } catch {
                throw NonRetryableError(code: "invalid_result", message: "the result cannot be encoded as JSON: \(error)")
            }
            // Not `result == .null ? nil : result`: that `nil` is JSONValue's nil literal, `.null`.
            return result == .null ? JSONValue?.none : result
        }
    }

    /// One pass of Foundation's decoder, on bytes from the hand-written writer
    /// (no Foundation encoding first); none for a handler that takes `JSONValue`.
    private static func decode<Params: Decodable>(_ type: Params.Type, from value: JSONValue) throws -> Params {
        if let params = value as? Params { return params }
        return try WireFormat.decoder().decode(Params.self, from: Data(WireFormat.encodeJSONValue(value)))
    }

    /// One pass of Foundation's encoder, read back by the hand-written reader;
    /// none for a handler that returns `JSONValue`.
    private static func jsonValue<Output: Encodable>(of output: Output) throws -> JSONValue {
        if let value = output as? JSONValue { return value }
        return try WireFormat.decodeJSONValue(WireFormat.encoder().encode(output))
    }

    /// The descriptors of every registered type, for validation and discovery.
    public var descriptors: [JobTypeDescriptor] {
        handlers.values.map(\.descriptor).sorted { $0.name < $1.name }
    }

    subscript(type: String) -> RegisteredJob? { handlers[type] }

    /// Runs one attempt of a job the way a worker does, without Kafka: the
    /// params are checked against the type's schema and decoded, the handler is
    /// called, and its return value comes back as the job's `result` would be
    /// stored (`nil` for none). For unit tests of handlers; a worker's retries
    /// and time limit are not applied. Throws what the handler throws, or a
    /// ``NonRetryableError`` coded `unknown_type` or `invalid_params`, as the
    /// job's snapshot would show it.
    public func run(_ type: String, params: JSONValue, context: JobContext) async throws -> JSONValue? {
        let registered = try handler(for: type, params: params).mapError(NonRetryableError.init).get()
        return try await registered.run(params, context)
    }

    /// The handler for a job of `type` with `params`, or why the job can't run here.
    func handler(for type: String, params: JSONValue) -> Result<RegisteredJob, JobError> {
        guard let registered = handlers[type] else {
            return .failure(JobError(code: "unknown_type", message: "no handler for job type \(type) on this worker"))
        }
        let violations = registered.descriptor.params.violations(of: params)
        guard violations.isEmpty else {
            return .failure(JobError(code: "invalid_params", message: violations.map(\.description).joined(separator: "; ")))
        }
        return .success(registered)
    }

    /// `maxConcurrent` of every type that has one.
    var concurrencyLimits: [String: Int] { handlers.compactMapValues(\.options.maxConcurrent) }
}

/// A handler with its params and result erased to JSON.
struct RegisteredJob: Sendable {
    let descriptor: JobTypeDescriptor
    let options: JobOptions
    let run: @Sendable (JSONValue, JobContext) async throws -> JSONValue?
}
