import Foundation

/// The body of `POST /jobs`, checked against the known job types.
///
/// Validation is a pure function of the body's bytes and the catalogue, so the
/// gateway can refuse bad input before it publishes anything.
public struct SubmitRequest: Sendable, Hashable {
    public var type: String
    public var params: JSONValue
    /// Overrides the job type's number of attempts.
    public var maxAttempts: Int?
    /// Overrides the job type's time limit for one attempt.
    public var timeoutMs: Int?
    /// Jobs sharing this key run one at a time, in submit order (see ``JobSnapshot/orderingKey``).
    public var orderingKey: String?

    public init(type: String, params: JSONValue = [:], maxAttempts: Int? = nil, timeoutMs: Int? = nil,
                orderingKey: String? = nil) {
        self.type = type
        self.params = params
        self.maxAttempts = maxAttempts
        self.timeoutMs = timeoutMs
        self.orderingKey = orderingKey
    }

    /// Longest ordering key, in characters: it becomes a Kafka message key, and
    /// 255 is the bound the API already uses for `Idempotency-Key`.
    public static let orderingKeyMaxLength = 255

    /// The request's own options, checked like params.
    static let options = ParamsSchema([
        .init("maxAttempts", .integer(minimum: 1, maximum: 100)),
        .init("timeoutMs", .integer(minimum: 1, maximum: 7 * 24 * 3_600_000)),
        .init("orderingKey", .string(maxLength: orderingKeyMaxLength)),
    ])

    /// Why a body was refused; the gateway turns each case into a problem response.
    public enum Rejection: Error, Sendable, Hashable {
        case malformedJSON(String)
        case invalidFields([ParamsSchema.Violation])
        case unknownType(String, known: [String])
        case invalidParams(type: String, [ParamsSchema.Violation])
    }

    /// Decodes and validates a `POST /jobs` body.
    public static func parse(_ body: some Collection<UInt8>, types: [String: JobTypeDescriptor]) -> Result<SubmitRequest, Rejection> {
        let value: JSONValue
        do {
            value = try WireFormat.decodeJSONValue(body)
        } catch let duplicate as WireFormat.DuplicateMemberError {
            return .failure(.malformedJSON("the body is not valid JSON: \(duplicate)"))
        } catch let nesting as WireFormat.NestingTooDeepError {
            return .failure(.malformedJSON("the body is JSON, but its \(nesting), the most this API reads"))
        } catch {
            return .failure(.malformedJSON("the body is not valid JSON"))
        }
        guard let members = value.objectValue else {
            return .failure(.invalidFields([.init(pointer: "", detail: "the body must be a JSON object, not \(value.typeName)")]))
        }
        var violations: [ParamsSchema.Violation] = []
        let optionNames = Set(options.fields.map(\.name))
        for name in members.keys.sorted() where !["type", "params"].contains(name) && !optionNames.contains(name) {
            violations.append(.init(pointer: "/\(name)", detail: "is not a field of a job request"))
        }
        var typeName: String?
        switch members["type"] {
        case .string(let name) where !name.isEmpty: typeName = name
        case nil, .null: violations.append(.init(pointer: "/type", detail: "is required"))
        case .string: violations.append(.init(pointer: "/type", detail: "must not be empty"))
        case let other?: violations.append(.init(pointer: "/type", detail: "must be a string, not \(other.typeName)"))
        }
        let params = members["params"] ?? [:]
        if params.objectValue == nil {
            violations.append(.init(pointer: "/params", detail: "must be an object, not \(params.typeName)"))
        }
        let optionValues = members.filter { optionNames.contains($0.key) }
        violations += options.violations(of: .object(optionValues)).map {
            ParamsSchema.Violation(pointer: String($0.pointer.dropFirst("/params".count)), detail: $0.detail)
        }
        // An empty key would silently order nothing; the schema subset has no minLength.
        if optionValues["orderingKey"] == "" {
            violations.append(.init(pointer: "/orderingKey", detail: "must not be empty"))
        }
        guard violations.isEmpty, let typeName else { return .failure(.invalidFields(violations)) }
        guard let descriptor = types[typeName] else {
            return .failure(.unknownType(typeName, known: types.keys.sorted()))
        }
        let paramViolations = descriptor.params.violations(of: params)
        guard paramViolations.isEmpty else { return .failure(.invalidParams(type: typeName, paramViolations)) }
        // A param given as null is one left out (as the schema check took it): the
        // job carries one form of it, and a request repeated with or without the
        // nulls is the same request to its Idempotency-Key.
        var given = params
        if case .object(let members) = params { given = .object(members.filter { $0.value != .null }) }
        return .success(SubmitRequest(type: typeName, params: given, maxAttempts: optionValues["maxAttempts"]?.intValue,
                                      timeoutMs: optionValues["timeoutMs"]?.intValue,
                                      orderingKey: optionValues["orderingKey"]?.stringValue))
    }
}
