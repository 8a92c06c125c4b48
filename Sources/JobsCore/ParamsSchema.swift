/// The shape a job type accepts for its params: an object of named, typed fields.
///
/// Deliberately a small subset of JSON Schema (it is published as one), so the
/// gateway can reject bad params with the offending field before anything is
/// published, and a worker validates again before it runs a job.
public struct ParamsSchema: Sendable, Hashable {
    public enum FieldType: Sendable, Hashable {
        case integer(minimum: Int? = nil, maximum: Int? = nil)
        case number(minimum: Double? = nil, maximum: Double? = nil)
        /// `pattern` is a regular expression (Swift `Regex` syntax, close to
        /// ECMAScript's) that a value must contain a match of; as in JSON Schema it
        /// is not anchored, so write `^…$` to constrain the whole value.
        case string(maxLength: Int? = nil, allowed: [String]? = nil, pattern: String? = nil)
        case boolean
    }

    public struct Field: Sendable, Hashable {
        public var name: String
        public var type: FieldType
        public var required: Bool
        public var summary: String

        public init(_ name: String, _ type: FieldType, required: Bool = false, summary: String = "") {
            self.name = name
            self.type = type
            self.required = required
            self.summary = summary
        }
    }

    public var fields: [Field]

    public init(_ fields: [Field] = []) {
        self.fields = fields
    }

    /// One reason the params were refused, naming the field.
    public struct Violation: Sendable, Hashable, Codable, CustomStringConvertible {
        /// A JSON pointer into the request body, e.g. `/params/steps`.
        public var pointer: String
        public var detail: String
        public var description: String { pointer.isEmpty ? detail : "\(pointer): \(detail)" }

        public init(pointer: String, detail: String) {
            self.pointer = pointer
            self.detail = detail
        }
    }

    /// Every violation of `params`; empty when they are acceptable.
    public func violations(of params: JSONValue) -> [Violation] {
        guard let members = params.objectValue else {
            return [Violation(pointer: "/params", detail: "must be an object, not \(params.typeName)")]
        }
        var found: [Violation] = []
        let known = Set(fields.map(\.name))
        for name in members.keys.sorted() where !known.contains(name) {
            found.append(Violation(pointer: "/params/\(name)", detail: "is not a parameter of this job type"))
        }
        for field in fields {
            let pointer = "/params/\(field.name)"
            guard let value = members[field.name], value != .null else {
                if field.required { found.append(Violation(pointer: pointer, detail: "is required")) }
                continue
            }
            if let problem = field.type.problem(with: value) {
                found.append(Violation(pointer: pointer, detail: problem))
            }
        }
        return found
    }
}

extension ParamsSchema.FieldType {
    fileprivate func problem(with value: JSONValue) -> String? {
        switch (self, value) {
        case (.integer(let minimum, let maximum), .number(let n)):
            guard n.rounded() == n else { return "must be an integer" }
            // Bounds first: 9007199254740993 is an integer, just too large.
            if let minimum, n < Double(minimum) { return "must be at least \(minimum)" }
            if let maximum, n > Double(maximum) { return "must be at most \(maximum)" }
            // The bound every integer on the wire keeps (JSONValue.intValue): just under 2^53.
            guard abs(n) < 9.007e15 else { return "must be an integer under 9007000000000000 in magnitude" }
            return nil
        case (.number(let minimum, let maximum), .number(let n)):
            if let minimum, n < minimum { return "must be at least \(minimum)" }
            if let maximum, n > maximum { return "must be at most \(maximum)" }
            return nil
        case (.string(let maxLength, let allowed, let pattern), .string(let s)):
            // JSON Schema counts a string's length in code points, not in the grapheme
            // clusters `count` gives: "e" plus five combining accents is six, not one.
            if let maxLength, s.unicodeScalars.count > maxLength { return "must be at most \(maxLength) characters" }
            if let allowed, !allowed.contains(s) { return "must be one of \(allowed.joined(separator: ", "))" }
            if let pattern {
                // Fail closed: a pattern this process can't compile accepts nothing.
                guard let regex = try? Regex(pattern) else { return "cannot be checked: the pattern \(pattern) is invalid" }
                if !s.contains(regex) { return "must match the pattern \(pattern)" }
            }
            return nil
        case (.boolean, .bool):
            return nil
        default:
            return "must be \(jsonTypeName), not \(value.typeName)"
        }
    }

    var jsonTypeName: String {
        switch self {
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .boolean: "boolean"
        }
    }
}

extension ParamsSchema {
    /// The schema as a JSON Schema document, for `GET /job-types` and outside tools.
    public var jsonSchema: JSONValue {
        var properties: [String: JSONValue] = [:]
        for field in fields {
            var property: [String: JSONValue] = ["type": .string(field.type.jsonTypeName)]
            if !field.summary.isEmpty { property["description"] = .string(field.summary) }
            switch field.type {
            case .integer(let minimum, let maximum):
                if let minimum { property["minimum"] = .number(Double(minimum)) }
                if let maximum { property["maximum"] = .number(Double(maximum)) }
            case .number(let minimum, let maximum):
                if let minimum { property["minimum"] = .number(minimum) }
                if let maximum { property["maximum"] = .number(maximum) }
            case .string(let maxLength, let allowed, let pattern):
                if let maxLength { property["maxLength"] = .number(Double(maxLength)) }
                if let allowed { property["enum"] = .array(allowed.map(JSONValue.string)) }
                if let pattern { property["pattern"] = .string(pattern) }
            case .boolean:
                break
            }
            properties[field.name] = .object(property)
        }
        return [
            "type": "object",
            "properties": .object(properties),
            "required": .array(fields.filter(\.required).map { .string($0.name) }),
            "additionalProperties": false,
        ]
    }
}

extension ParamsSchema {
    /// Reads back a schema published by ``jsonSchema`` (as workers announce their
    /// job types); `nil` for JSON Schema this subset can't express, so a gateway
    /// never validates against a misread schema.
    public init?(jsonSchema: JSONValue) {
        guard let root = jsonSchema.objectValue, root["type"] == "object" else { return nil }
        let required = Set((root["required"]?.arrayValue ?? []).compactMap(\.stringValue))
        var fields: [Field] = []
        for (name, value) in (root["properties"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let property = value.objectValue, let type = property["type"]?.stringValue else { return nil }
            let summary = property["description"]?.stringValue ?? ""
            let fieldType: FieldType
            switch type {
            case "integer":
                fieldType = .integer(minimum: property["minimum"]?.intValue, maximum: property["maximum"]?.intValue)
            case "number":
                func number(_ key: String) -> Double? { if case .number(let n)? = property[key] { n } else { nil } }
                fieldType = .number(minimum: number("minimum"), maximum: number("maximum"))
            case "string":
                let allowed = property["enum"]?.arrayValue?.compactMap(\.stringValue)
                let pattern = property["pattern"]?.stringValue
                // A pattern that isn't a string, or that this process can't compile,
                // can't be enforced: refuse the schema rather than drop the constraint.
                if property["pattern"] != nil, pattern == nil { return nil }
                if let pattern, (try? Regex(pattern)) == nil { return nil }
                fieldType = .string(maxLength: property["maxLength"]?.intValue, allowed: allowed, pattern: pattern)
            case "boolean":
                fieldType = .boolean
            default:
                return nil
            }
            fields.append(Field(name, fieldType, required: required.contains(name), summary: summary))
        }
        self.init(fields)
    }
}
