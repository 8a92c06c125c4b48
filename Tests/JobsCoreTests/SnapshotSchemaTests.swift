import Foundation
import JobsCore
import Testing

/// Keeps `schemas/job-snapshot.schema.json` and the encoding of `JobSnapshot` in step.
@Suite("The published snapshot schema")
struct SnapshotSchemaTests {
    /// The schema file, found by walking up from this source file to the package root.
    static func loadSchema(filePath: String = #filePath) throws -> [String: JSONValue] {
        var directory = URL(fileURLWithPath: filePath).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("schemas/job-snapshot.schema.json")
            if FileManager.default.fileExists(atPath: candidate.path) {
                let data = try Data(contentsOf: candidate)
                return try #require(try WireFormat.decode(JSONValue.self, from: data).objectValue)
            }
            directory.deleteLastPathComponent()
        }
        Issue.record("schemas/job-snapshot.schema.json not found above \(filePath)")
        throw CancellationError()
    }

    func keys(_ value: JSONValue?) -> Set<String> {
        Set(value?.objectValue?.keys.map { $0 } ?? [])
    }

    func strings(_ value: JSONValue?) -> Set<String> {
        guard case .array(let items)? = value else { return [] }
        return Set(items.compactMap { if case .string(let s) = $0 { s } else { nil } })
    }

    @Test("the schema declares exactly the properties of a fully populated snapshot")
    func propertiesMatchFullSnapshot() throws {
        let schema = try Self.loadSchema()
        let encoded = try encodedKeys(WireFormatTests.full)
        // Every stored property of JobSnapshot, so the fixture really is full.
        #expect(encoded.count == Mirror(reflecting: WireFormatTests.full).children.count)
        #expect(keys(schema["properties"]) == encoded)
    }

    @Test("the schema requires exactly the properties of a freshly queued snapshot")
    func requiredMatchesQueuedSnapshot() throws {
        let schema = try Self.loadSchema()
        let queued = JobSnapshot.queued(type: "noop", params: [:], at: at(0))
        #expect(strings(schema["required"]) == (try encodedKeys(queued)))
        if case .array(let required)? = schema["required"] {
            #expect(required.count == strings(schema["required"]).count, "required lists a key twice")
        }
    }

    @Test("the nested progress and error objects match their encodings")
    func nestedObjectsMatch() throws {
        let schema = try Self.loadSchema()
        let definitions = schema["$defs"]?.objectValue
        let progress = definitions?["progress"]?.objectValue
        let error = definitions?["error"]?.objectValue
        #expect(keys(progress?["properties"]) == (try encodedKeys(JobProgress(current: 1, total: 2, message: "m"))))
        #expect(strings(progress?["required"]) == (try encodedKeys(JobProgress(current: 1))))
        #expect(keys(error?["properties"]) == (try encodedKeys(JobError(code: "c", message: "m"))))
        #expect(strings(error?["required"]) == ["code", "message"])
    }

    @Test("the schema's status enum lists every JobStatus")
    func statusEnumMatches() throws {
        let schema = try Self.loadSchema()
        let status = schema["properties"]?.objectValue?["status"]?.objectValue
        #expect(strings(status?["enum"]) == Set(JobStatus.allCases.map(\.rawValue)))
    }

    @Test("queued, running, failed and succeeded snapshots use only declared keys and carry every required one")
    func typicalSnapshotsUseDeclaredKeys() throws {
        let schema = try Self.loadSchema()
        let declared = keys(schema["properties"])
        let required = strings(schema["required"])
        let queued = JobSnapshot.queued(id: JobID(rawValue: "j"), type: "sleep", params: ["steps": 2], at: at(0))
        let running = try queued.started(attempt: 1, by: "w", at: at(1)).reporting(JobProgress(current: 1, total: 2), at: at(2))
        let failed = try running.failed(JobError(code: "boom", message: "it broke"), at: at(3))
        let succeeded = try running.succeeded(result: ["ok": true], at: at(3))
        for snapshot in [queued, running, failed, succeeded] {
            let present = try encodedKeys(snapshot)
            #expect(present.isSubset(of: declared), "\(snapshot.status): undeclared \(present.subtracting(declared))")
            #expect(required.isSubset(of: present), "\(snapshot.status): missing \(required.subtracting(present))")
        }
    }
}
