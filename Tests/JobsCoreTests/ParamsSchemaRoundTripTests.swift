import JobsCore
import Testing

@Suite("Params schemas announced as JSON Schema")
struct ParamsSchemaRoundTripTests {
    static let rich = ParamsSchema([
        .init("count", .integer(minimum: 1, maximum: 10), required: true, summary: "How many."),
        .init("ratio", .number(minimum: 0, maximum: 1)),
        .init("mode", .string(maxLength: 8, allowed: ["fast", "slow"]), required: true),
        .init("label", .string(maxLength: 40)),
        .init("host", .string(maxLength: 253, pattern: #"^[a-z0-9.-]+$"#)),
        .init("dryRun", .boolean),
    ])

    @Test("a schema read back from its JSON Schema is the same schema", arguments: [rich, BuiltinJobTypes.sleep.params, ParamsSchema()])
    func roundTrip(schema: ParamsSchema) throws {
        let readBack = try #require(ParamsSchema(jsonSchema: schema.jsonSchema))
        #expect(Set(readBack.fields.map(\.name)) == Set(schema.fields.map(\.name)))
        for field in schema.fields {
            #expect(readBack.fields.first { $0.name == field.name } == field)
        }
    }

    @Test("JSON Schema outside the supported subset is refused rather than misread")
    func unsupportedSchemasAreRefused() {
        #expect(ParamsSchema(jsonSchema: ["type": "array"]) == nil)
        #expect(ParamsSchema(jsonSchema: ["type": "object", "properties": ["tags": ["type": "array"]]]) == nil)
        #expect(ParamsSchema(jsonSchema: ["type": "object", "properties": ["x": ["minimum": 1]]]) == nil)
        // A pattern that can't be enforced must not be dropped silently.
        #expect(ParamsSchema(jsonSchema: ["type": "object", "properties": ["x": ["type": "string", "pattern": "([a-z"]]]) == nil)
        #expect(ParamsSchema(jsonSchema: ["type": "object", "properties": ["x": ["type": "string", "pattern": 3]]]) == nil)
    }

    @Test("a string pattern is published as JSON Schema and enforced, unanchored as in JSON Schema")
    func patternIsPublishedAndEnforced() throws {
        let schema = ParamsSchema([.init("host", .string(pattern: #"^[a-z0-9.-]+$"#), required: true),
                                   .init("tag", .string(pattern: "v[0-9]"))])
        let property = schema.jsonSchema.objectValue?["properties"]?.objectValue?["host"]?.objectValue
        #expect(property?["pattern"] == .string(#"^[a-z0-9.-]+$"#))

        #expect(schema.violations(of: ["host": "db-1.internal"]).isEmpty)
        #expect(schema.violations(of: ["host": "db-1", "tag": "release-v2"]).isEmpty, "unanchored: a match anywhere will do")
        for bad in ["; touch /tmp/pwned", "$(id)", "db-1\n", "DB"] {
            let violations = schema.violations(of: ["host": .string(bad)])
            #expect(violations == [.init(pointer: "/params/host", detail: #"must match the pattern ^[a-z0-9.-]+$"#)], "\(bad)")
        }
        #expect(schema.violations(of: ["host": "a", "tag": "latest"]).map(\.pointer) == ["/params/tag"])
    }
}
