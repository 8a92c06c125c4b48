import Foundation
import JobsCore
import Testing

/// One refused `POST /jobs` body and why.
struct RefusedBody: Sendable, CustomTestStringConvertible {
    let name: String
    let body: String
    let rejection: SubmitRequest.Rejection
    var testDescription: String { name }

    static func fields(_ name: String, _ body: String, _ violations: [(String, String)]) -> Self {
        .init(name: name, body: body, rejection: .invalidFields(violations.map { .init(pointer: $0.0, detail: $0.1) }))
    }

    static func params(_ name: String, _ body: String, _ violations: [(String, String)]) -> Self {
        .init(name: name, body: body, rejection: .invalidParams(type: "sleep", violations.map { .init(pointer: $0.0, detail: $0.1) }))
    }
}

@Suite("Validating POST /jobs bodies")
struct SubmitRequestTests {
    func parse(_ body: String) -> Result<SubmitRequest, SubmitRequest.Rejection> {
        SubmitRequest.parse(Array(body.utf8), types: builtinTypes)
    }

    static let refusedBodies: [RefusedBody] = [
        .init(name: "malformed JSON", body: #"{"type": "noop""#, rejection: .malformedJSON("the body is not valid JSON")),
        .init(name: "empty body", body: "", rejection: .malformedJSON("the body is not valid JSON")),
        // Foundation's decoder takes these; RFC 8259, and so a strict parser, does not.
        .init(name: "trailing comma in the body", body: #"{"type": "noop",}"#, rejection: .malformedJSON("the body is not valid JSON")),
        .init(name: "trailing comma in params", body: #"{"type": "noop", "params": [1,]}"#, rejection: .malformedJSON("the body is not valid JSON")),
        .init(name: "trailing comma deep in params", body: #"{"type": "sleep", "params": {"steps": 1, "x": {"a": [{},]}}}"#,
              rejection: .malformedJSON("the body is not valid JSON")),
        // Parsers disagree on which of two members of one name counts.
        .init(name: "params nested past the reader's limit",
              body: #"{"type": "sleep", "params": {"x": "# + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}}",
              rejection: .malformedJSON("the body is JSON, but its arrays and objects nest more than 500 levels deep, the most this API reads")),
        .init(name: "type given twice", body: #"{"type": "noop", "type": "sleep"}"#,
              rejection: .malformedJSON(#"the body is not valid JSON: an object has more than one member named "type""#)),
        .init(name: "a param given twice", body: #"{"type": "sleep", "params": {"steps": 1, "steps": 2}}"#,
              rejection: .malformedJSON(#"the body is not valid JSON: an object has more than one member named "steps""#)),
        .fields("body is an array", #"[{"type": "noop"}]"#, [("", "the body must be a JSON object, not array")]),
        .fields("body is a string", #""noop""#, [("", "the body must be a JSON object, not string")]),
        .fields("type missing", #"{"params": {}}"#, [("/type", "is required")]),
        .fields("type null", #"{"type": null}"#, [("/type", "is required")]),
        .fields("type is a number", #"{"type": 5}"#, [("/type", "must be a string, not integer")]),
        .fields("type is an object", #"{"type": {"name": "noop"}}"#, [("/type", "must be a string, not object")]),
        .fields("type empty", #"{"type": ""}"#, [("/type", "must not be empty")]),
        .fields("unknown extra field", #"{"type": "noop", "priority": 1}"#, [("/priority", "is not a field of a job request")]),
        .fields("params an array", #"{"type": "sleep", "params": [1, 2]}"#, [("/params", "must be an object, not array")]),
        .fields("params null", #"{"type": "sleep", "params": null}"#, [("/params", "must be an object, not null")]),
        .fields(
            "every field problem at once", #"{"zeta": 1, "type": true, "alpha": 2, "params": "x"}"#,
            [
                ("/alpha", "is not a field of a job request"), ("/zeta", "is not a field of a job request"),
                ("/type", "must be a string, not boolean"), ("/params", "must be an object, not string"),
            ]),
        .init(name: "unknown job type", body: #"{"type": "transcode"}"#, rejection: .unknownType("transcode", known: ["noop", "sleep"])),
        .fields("orderingKey empty", #"{"type": "noop", "orderingKey": ""}"#, [("/orderingKey", "must not be empty")]),
        .fields("orderingKey a number", #"{"type": "noop", "orderingKey": 7}"#, [("/orderingKey", "must be string, not integer")]),
        .fields(
            "orderingKey too long", #"{"type": "noop", "orderingKey": "\#(String(repeating: "k", count: 256))"}"#,
            [("/orderingKey", "must be at most 255 characters")]),
        // One grapheme cluster, but 5001 code points: JSON Schema's maxLength counts the latter.
        .fields(
            "orderingKey of combining accents too long", #"{"type": "noop", "orderingKey": "a\#(String(repeating: "\u{301}", count: 5000))"}"#,
            [("/orderingKey", "must be at most 255 characters")]),
        .params("steps is a string", #"{"type": "sleep", "params": {"steps": "5"}}"#, [("/params/steps", "must be integer, not string")]),
        .params("steps is a boolean", #"{"type": "sleep", "params": {"steps": true}}"#, [("/params/steps", "must be integer, not boolean")]),
        .params("steps is not whole", #"{"type": "sleep", "params": {"steps": 2.5}}"#, [("/params/steps", "must be an integer")]),
        .params("steps is whole but past 2^53, and over its maximum", #"{"type": "sleep", "params": {"steps": 9007199254740993}}"#,
                [("/params/steps", "must be at most 100000")]),
        .params("steps is 1e23", #"{"type": "sleep", "params": {"steps": 1e23}}"#, [("/params/steps", "must be at most 100000")]),
        .params("steps below minimum", #"{"type": "sleep", "params": {"steps": 0}}"#, [("/params/steps", "must be at least 1")]),
        .params("steps above maximum", #"{"type": "sleep", "params": {"steps": 100001}}"#, [("/params/steps", "must be at most 100000")]),
        .params("stepMs negative", #"{"type": "sleep", "params": {"stepMs": -1}}"#, [("/params/stepMs", "must be at least 0")]),
        .params("unknown param", #"{"type": "sleep", "params": {"steps": 2, "speed": 3}}"#, [("/params/speed", "is not a parameter of this job type")]),
        .params(
            "every param problem at once", #"{"type": "sleep", "params": {"b": 1, "a": 1, "steps": 0, "stepMs": "x"}}"#,
            [
                ("/params/a", "is not a parameter of this job type"), ("/params/b", "is not a parameter of this job type"),
                ("/params/steps", "must be at least 1"), ("/params/stepMs", "must be integer, not string"),
            ]),
        .init(
            name: "noop takes no params", body: #"{"type": "noop", "params": {"steps": 1}}"#,
            rejection: .invalidParams(type: "noop", [.init(pointer: "/params/steps", detail: "is not a parameter of this job type")])),
    ]

    @Test("a bad body is refused with the reason and the JSON pointer of each offending field", arguments: refusedBodies)
    func refusedBody(_ refused: RefusedBody) {
        #expect(parse(refused.body) == .failure(refused.rejection))
    }

    @Test("a noop request without params is accepted with empty params")
    func acceptsNoopWithoutParams() {
        #expect(parse(#"{"type": "noop"}"#) == .success(SubmitRequest(type: "noop", params: [:])))
        #expect(parse(#"{"type": "noop", "params": {}}"#) == .success(SubmitRequest(type: "noop")))
    }

    @Test("a sleep request with valid params is accepted with the params as given")
    func acceptsSleep() {
        #expect(parse(#"{"type": "sleep", "params": {"steps": 3, "stepMs": 250}}"#)
            == .success(SubmitRequest(type: "sleep", params: ["steps": 3, "stepMs": 250])))
        #expect(parse(#"{"params": {"steps": 100000, "stepMs": 0}, "type": "sleep"}"#)
            == .success(SubmitRequest(type: "sleep", params: ["steps": 100_000, "stepMs": 0])))
    }

    @Test("an ordering key of 1 to 255 characters is accepted with the other options")
    func acceptsOrderingKey() {
        #expect(parse(#"{"type": "noop", "orderingKey": "customer-42", "maxAttempts": 2}"#)
            == .success(SubmitRequest(type: "noop", maxAttempts: 2, orderingKey: "customer-42")))
        let longest = String(repeating: "é", count: SubmitRequest.orderingKeyMaxLength)
        #expect(parse(#"{"type": "noop", "orderingKey": "\#(longest)"}"#) == .success(SubmitRequest(type: "noop", orderingKey: longest)))
        #expect(parse(#"{"type": "noop", "orderingKey": null}"#) == .success(SubmitRequest(type: "noop")))
    }

    @Test("an ordering key's length is counted in code points, as JSON Schema counts maxLength, not in grapheme clusters")
    func orderingKeyLengthInCodePoints() {
        let longest = "a" + String(repeating: "\u{301}", count: SubmitRequest.orderingKeyMaxLength - 1)
        #expect(longest.count == 1 && longest.unicodeScalars.count == 255)
        #expect(parse(#"{"type": "noop", "orderingKey": "\#(longest)"}"#) == .success(SubmitRequest(type: "noop", orderingKey: longest)))
        #expect(parse(#"{"type": "noop", "orderingKey": "\#(longest)\u0301"}"#)
            == .failure(.invalidFields([.init(pointer: "/orderingKey", detail: "must be at most 255 characters")])))
    }

    @Test("whole numbers written as 5.0 or 1e2 are integers, and a null param counts as absent: the job's params leave it out")
    func wholeNumbersAreIntegers() {
        #expect(parse(#"{"type": "sleep", "params": {"steps": 5.0, "stepMs": 1e2}}"#)
            == .success(SubmitRequest(type: "sleep", params: ["steps": 5, "stepMs": 100])))
        // Left out, so the same request with or without it is the same request to an Idempotency-Key.
        #expect(parse(#"{"type": "sleep", "params": {"steps": null, "stepMs": 5}}"#)
            == .success(SubmitRequest(type: "sleep", params: ["stepMs": 5])))
        #expect(parse(#"{"type": "sleep", "params": {"steps": null}}"#) == parse(#"{"type": "sleep", "params": {}}"#))
    }

    @Test("an unknown type is refused with the known types, sorted")
    func unknownTypeListsKnownTypes() {
        var types = builtinTypes
        types["resize"] = JobTypeDescriptor(name: "resize")
        let result = SubmitRequest.parse(Array(#"{"type": "Noop"}"#.utf8), types: types)
        #expect(result == .failure(.unknownType("Noop", known: ["noop", "resize", "sleep"])))
    }
}

@Suite("Params schemas")
struct ParamsSchemaTests {
    let schema = ParamsSchema([
        .init("name", .string(maxLength: 5), required: true),
        .init("mode", .string(allowed: ["fast", "slow"])),
        .init("ratio", .number(minimum: 0, maximum: 1)),
        .init("dryRun", .boolean),
    ])

    @Test("a required field that is missing or null is reported")
    func requiredFieldMissing() {
        #expect(schema.violations(of: [:]) == [.init(pointer: "/params/name", detail: "is required")])
        #expect(schema.violations(of: ["name": nil]) == [.init(pointer: "/params/name", detail: "is required")])
    }

    @Test("string length, allowed values, number range and boolean type are enforced")
    func fieldConstraints() {
        #expect(schema.violations(of: ["name": "abcde", "mode": "slow", "ratio": 0.5, "dryRun": true]).isEmpty)
        #expect(schema.violations(of: ["name": "abcdef"]) == [.init(pointer: "/params/name", detail: "must be at most 5 characters")])
        // Code points, as JSON Schema counts: "é" written as e + U+0301 is two, the precomposed U+00E9 one.
        #expect(schema.violations(of: ["name": "caf\u{E9}s"]).isEmpty)
        #expect(schema.violations(of: ["name": "cafe\u{301}s"]) == [.init(pointer: "/params/name", detail: "must be at most 5 characters")])
        #expect(schema.violations(of: ["name": "e\u{301}\u{301}\u{301}\u{301}\u{301}"])
            == [.init(pointer: "/params/name", detail: "must be at most 5 characters")])
        #expect(schema.violations(of: ["name": "a", "mode": "medium"]) == [.init(pointer: "/params/mode", detail: "must be one of fast, slow")])
        #expect(schema.violations(of: ["name": "a", "ratio": 1.5]) == [.init(pointer: "/params/ratio", detail: "must be at most 1.0")])
        #expect(schema.violations(of: ["name": "a", "dryRun": 1]) == [.init(pointer: "/params/dryRun", detail: "must be boolean, not integer")])
        // An integer without bounds still has the wire's: near 2^53 it can't be told from its neighbours.
        let count = ParamsSchema([.init("count", .integer())])
        #expect(count.violations(of: ["count": 9_006_999_999_999_999]).isEmpty)
        #expect(count.violations(of: ["count": 1e17])
            == [.init(pointer: "/params/count", detail: "must be an integer under 9007000000000000 in magnitude")])
    }

    @Test("params that are not an object are one violation at /params")
    func paramsNotObject() {
        #expect(schema.violations(of: [1]) == [.init(pointer: "/params", detail: "must be an object, not array")])
        #expect(ParamsSchema.Violation(pointer: "/params/x", detail: "is bad").description == "/params/x: is bad")
    }

    @Test("the sleep type's params are published as a JSON Schema with integer bounds")
    func sleepJSONSchema() throws {
        let expected: JSONValue = [
            "type": "object",
            "properties": [
                "steps": ["type": "integer", "description": "Number of steps (default 10).", "minimum": 1, "maximum": 100_000],
                "stepMs": [
                    "type": "integer", "description": "Length of one step in milliseconds (default 1000).",
                    "minimum": 0, "maximum": 3_600_000,
                ],
            ],
            "required": [],
            "additionalProperties": false,
        ]
        #expect(BuiltinJobTypes.sleep.params.jsonSchema == expected)
        let text = String(decoding: try WireFormat.encode(BuiltinJobTypes.sleep.params.jsonSchema), as: UTF8.self)
        #expect(text.contains(#""maximum":3600000"#))
        #expect(!text.contains(".0"))
    }

    @Test("a schema publishes required fields, string enums and lengths")
    func jsonSchemaOfOtherFieldTypes() {
        let json = schema.jsonSchema
        #expect(json.objectValue?["required"] == ["name"])
        let properties = json.objectValue?["properties"]?.objectValue
        #expect(properties?["name"] == ["type": "string", "maxLength": 5])
        #expect(properties?["mode"] == ["type": "string", "enum": ["fast", "slow"]])
        #expect(properties?["ratio"] == ["type": "number", "minimum": 0, "maximum": 1])
        #expect(properties?["dryRun"] == ["type": "boolean"])
        #expect(BuiltinJobTypes.noop.params.jsonSchema.objectValue?["properties"] == [:])
    }
}
