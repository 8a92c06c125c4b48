import JobsCore
import Testing

@Suite("Params schemas announced as JSON Schema")
struct ParamsSchemaRoundTripTests {
    static let rich = ParamsSchema([
        .init("count", .integer(minimum: 1, maximum: 10), required: true, summary: "How many."),
        .init("ratio", .number(minimum: 0, maximum: 1)),
        .init("mode", .string(maxLength: 8, allowed: ["fast", "slow"]), required: true),
        .init("label", .string(maxLength: 40)),
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
    }
}
