import Foundation
import JobsCore
import Yams

/// The OpenAPI 3.1 document the gateway serves.
///
/// The routes, bodies and problems are written once in `Resources/openapi.yaml`
/// (and tests hold them to ``Endpoint`` and the server's answers). Job types
/// come and go with the workers, so the request body's schema is filled in per
/// request: one alternative per known type, with that type's params schema.
public struct APIDocument: Sendable {
    /// The document as written, before the job types are filled in.
    public let base: JSONValue

    public init() throws {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw APIDocumentError.missing
        }
        base = try YAMLDecoder().decode(JSONValue.self, from: String(contentsOf: url, encoding: .utf8))
    }

    /// The document with `SubmitJobRequest` describing exactly these types, and
    /// this gateway's page size bound and authentication.
    public func document(jobTypes: [JobTypeDescriptor], authentication: Authentication, maxPageSize: Int) -> JSONValue {
        guard case .object(var root) = base,
              case .object(var components) = root["components"],
              case .object(var schemas) = components["schemas"],
              case .object(let generic) = schemas["SubmitJobRequest"],
              case .object(let options) = generic["properties"] else { return base }
        let alternatives: [JSONValue] = jobTypes.sorted { $0.name < $1.name }.map { type in
            var properties = options
            properties["type"] = ["const": .string(type.name)]
            properties["params"] = Self.nullableOptionals(type.params.jsonSchema)
            var alternative = generic
            alternative["title"] = .string(type.name)
            alternative["description"] = .string(type.summary)
            alternative["properties"] = .object(properties)
            // Left out, params are `{}`: a type with a required param needs them.
            if type.params.fields.contains(where: \.required), case .array(let required)? = generic["required"] {
                alternative["required"] = .array(required + ["params"])
            }
            return .object(alternative)
        }
        schemas["SubmitJobRequest"] = [
            "description": "A job of one of the types the gateway knows now; `type` selects the params schema.",
            "oneOf": .array(alternatives),
        ]
        components["schemas"] = .object(schemas)
        root["components"] = .object(components)
        if case .disabled = authentication { root["security"] = [] }
        root["paths"] = Self.settingLimitMaximum(root["paths"], to: maxPageSize)
        return .object(root)
    }

    /// `GET /jobs`'s `limit` bounded by this gateway's `maxPageSize`.
    static func settingLimitMaximum(_ paths: JSONValue?, to maximum: Int) -> JSONValue? {
        guard case .object(var all) = paths, case .object(var jobs) = all["/jobs"], case .object(var list) = jobs["get"],
              case .array(var parameters) = list["parameters"] else { return paths }
        for (index, parameter) in parameters.enumerated() where parameter["name"] == "limit" {
            guard case .object(var members) = parameter, case .object(var schema) = members["schema"] else { continue }
            schema["maximum"] = .number(Double(maximum))
            schema["default"] = .number(Double(min(50, maximum)))
            members["schema"] = .object(schema)
            parameters[index] = .object(members)
        }
        list["parameters"] = .array(parameters)
        jobs["get"] = .object(list)
        all["/jobs"] = .object(jobs)
        return .object(all)
    }

    /// The gateway takes `null` for an optional param as leaving it out; the
    /// document says so, so that generated clients may send it.
    static func nullableOptionals(_ schema: JSONValue) -> JSONValue {
        guard case .object(var root) = schema, case .object(var properties) = root["properties"] else { return schema }
        let required = Set(root["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        for (name, property) in properties where !required.contains(name) {
            guard case .object(var members) = property, let type = members["type"]?.stringValue else { continue }
            members["type"] = [.string(type), "null"]
            // An enum lists every value allowed, whatever the type says.
            if case .array(let values)? = members["enum"], !values.contains(.null) { members["enum"] = .array(values + [.null]) }
            properties[name] = .object(members)
        }
        root["properties"] = .object(properties)
        return .object(root)
    }

    public static func json(_ document: JSONValue) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(document))
    }

    public static func yaml(_ document: JSONValue) throws -> String {
        let encoder = YAMLEncoder()
        encoder.options.sortKeys = true
        // Yams writes keys plain, so a response code such as 200 would read back as
        // an integer; OpenAPI 3.1 wants every key a string, so such keys are quoted.
        guard let node = try Yams.compose(yaml: encoder.encode(document)) else { return "" }
        return try Yams.serialize(node: quotingKeys(node), sortKeys: true)
    }

    /// `node` with every mapping key that would not read back as a string double-quoted.
    static func quotingKeys(_ node: Node) -> Node {
        switch node {
        case .mapping(var mapping):
            for index in mapping.indices {
                let (key, value) = mapping[index]
                let quoted = if case .scalar(let scalar) = key, key.tag != Tag(.str) {
                    Node(scalar.string, Tag(.str), .doubleQuoted)
                } else {
                    key
                }
                mapping[index] = (quoted, quotingKeys(value))
            }
            return .mapping(mapping)
        case .sequence(var sequence):
            for index in sequence.indices { sequence[index] = quotingKeys(sequence[index]) }
            return .sequence(sequence)
        case .scalar, .alias:
            return node
        }
    }
}

enum APIDocumentError: Error, CustomStringConvertible {
    case missing
    var description: String { "openapi.yaml is missing from the gateway's resources" }
}
