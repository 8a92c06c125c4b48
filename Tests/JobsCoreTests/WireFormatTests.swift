import Foundation
@testable import JobsCore
import Testing

@Suite("The wire format")
struct WireFormatTests {
    /// A snapshot with every field set, times with milliseconds, nested params.
    static let full = JobSnapshot(
        id: JobID(rawValue: "2f1c0a4e-9a55-4a43-b1f5-4f2a1c9d0e77"), type: "sleep",
        params: [
            "steps": 5, "stepMs": 250,
            "options": ["tags": ["a", "b"], "ratio": 0.25, "deep": ["flag": true, "none": nil, "negative": -3]],
        ],
        status: .failed, attempt: 2, sequence: 7,
        progress: JobProgress(current: 3, total: 5, message: "step 3 of 5"),
        result: ["partial": [1, 2.5, "x"]],
        error: JobError(code: "handler_error", message: "disk full"),
        workerID: "worker-7f3a",
        createdAt: at(0.001), startedAt: at(1.123), finishedAt: at(2.999), updatedAt: at(3.457),
        cancelRequested: true, maxAttempts: 3, timeoutMs: 60_000, stalled: true, idempotencyKey: "order-1234", submittedBy: "billing",
        orderingKey: "customer-42"
    )

    @Test("a fully populated snapshot round-trips through encode and decode")
    func fullSnapshotRoundTrips() throws {
        let decoded = try WireFormat.decode(JobSnapshot.self, from: WireFormat.encode(Self.full))
        #expect(decoded == Self.full)
    }

    @Test("every snapshot of a retried job's history round-trips")
    func historyRoundTrips() throws {
        for snapshot in try RetriedJobHistory(steps: 3).events {
            #expect(try WireFormat.decode(JobSnapshot.self, from: WireFormat.encode(snapshot)) == snapshot)
        }
    }

    @Test("generated job ids are distinct lowercase version-4 UUIDs")
    func generatedIDs() throws {
        let ids = (0..<10_000).map { _ in JobID.generate().rawValue }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(1000) {
            let uuid = try #require(UUID(uuidString: id), "\(id)")
            #expect(uuid.uuidString.lowercased() == id)
            let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "version of \(id)")
            #expect(bytes[8] >> 6 == 0b10, "variant of \(id)")
        }
    }

    @Test("hand-written times agree with Foundation's formatter from 1583 to 9999, and read back exactly from year 1")
    func handWrittenTimes() {
        // Foundation turns dates before the Gregorian reform (1582) Julian; the
        // parser, as RFC 3339, reads them proleptic Gregorian, as they are written.
        var random = SeededGenerator(seed: 7)
        let year1583: Int64 = -12_212_553_600_000, year10000: Int64 = 253_402_300_800_000, year1: Int64 = -62_135_596_800_000
        var samples: [Int64] = [0, -1, 1, 999, -999, 86_399_999, -86_400_000, 951_782_400_000, 4_107_542_399_999,
                                year1583, year10000 - 1, year1]
        samples += (0..<5_000).map { _ in Int64.random(in: year1583..<year10000, using: &random) }
        for milliseconds in samples where milliseconds >= year1583 {
            #expect(RFC3339.text(milliseconds: milliseconds) == WireFormat.foundationTimestampText(milliseconds: milliseconds),
                    "\(milliseconds)")
        }
        samples += (0..<5_000).map { _ in Int64.random(in: year1..<year10000, using: &random) }
        for milliseconds in samples {
            let text = WireFormat.timestampText(Date(timeIntervalSince1970: Double(milliseconds) / 1000))
            #expect(WireFormat.parseTimestamp(text).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } == milliseconds, "\(text)")
        }
        #expect(RFC3339.text(milliseconds: year1 - 1) == nil)
        #expect(RFC3339.text(milliseconds: year10000) == nil)
        #expect(WireFormat.timestampText(Date(timeIntervalSince1970: Double(year10000) / 1000)).hasPrefix("10000-01-01T00:00:00.000"))
    }

    @Test("a time is read only if it is in years 1 to 9999 in UTC, so that every time read can be written back")
    func timesOutsideFourDigitYearsAreRefused() throws {
        for text in ["9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59.9999Z", "0001-01-01T00:30:00+01:00"] {
            #expect(WireFormat.parseTimestamp(text) == nil, "\(text)")
        }
        for text in ["9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", "0001-01-01T00:30:00+00:30", "9999-12-31T22:59:59.999-01:00"] {
            let date = try #require(WireFormat.parseTimestamp(text), "\(text)")
            #expect(WireFormat.parseTimestamp(WireFormat.timestampText(date)) == date, "\(text)")
            #expect(RFC3339.text(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded())) != nil, "\(text)")
        }
        let snapshot = SnapshotCodecTests.minimal.replacingOccurrences(of: #""createdAt":"2023-11-14T22:13:20.000Z""#,
                                                                        with: #""createdAt":"9999-12-31T23:30:00-01:00""#)
        #expect(snapshot != SnapshotCodecTests.minimal)
        #expect(throws: (any Error).self) { try WireFormat.decodeSnapshot(Array(snapshot.utf8)) }
    }

    @Test("times are ISO 8601 in UTC with exactly three fractional digits")
    func timesHaveMilliseconds() throws {
        let text = String(decoding: try WireFormat.encode(Self.full), as: UTF8.self)
        #expect(text.contains(#""createdAt":"2023-11-14T22:13:20.001Z""#))
        #expect(text.contains(#""startedAt":"2023-11-14T22:13:21.123Z""#))
        #expect(text.contains(#""finishedAt":"2023-11-14T22:13:22.999Z""#))
        #expect(text.contains(#""updatedAt":"2023-11-14T22:13:23.457Z""#))
    }

    @Test("every decoded millisecond time re-encodes to the same text and equals the constructed Date")
    func millisecondTimesAreStable() throws {
        var drifted: [String] = []
        for ms in 0..<1000 {
            let digits = String(ms)
            let text = "\"2023-11-14T22:13:20.\(String(repeating: "0", count: 3 - digits.count))\(digits)Z\""
            let decoded = try WireFormat.decode(Date.self, from: Array(text.utf8))
            let again = String(decoding: try WireFormat.encode(decoded), as: UTF8.self)
            if again != text || decoded != at(Double(ms) / 1000) { drifted.append("\(text) -> \(again)") }
        }
        #expect(drifted.count == 0, "e.g. \(drifted.prefix(3))")
    }

    @Test("times are rounded to the nearest millisecond, also before 1970")
    func timesRoundToNearestMillisecond() throws {
        func text(_ seconds: Double) throws -> String {
            String(decoding: try WireFormat.encode(Date(timeIntervalSince1970: seconds)), as: UTF8.self)
        }
        #expect(try text(1_700_000_000.1236) == #""2023-11-14T22:13:20.124Z""#)
        #expect(try text(1_700_000_000.9996) == #""2023-11-14T22:13:21.000Z""#)
        #expect(try text(-1.5) == #""1969-12-31T23:59:58.500Z""#)
    }

    @Test("a time without fractional seconds is accepted, and a non-time is refused")
    func decodesWholeSecondsAndRefusesGarbage() throws {
        #expect(try WireFormat.decode(Date.self, from: Array(#""2023-11-14T22:13:20Z""#.utf8)) == epoch)
        #expect(throws: DecodingError.self) {
            try WireFormat.decode(Date.self, from: Array(#""yesterday""#.utf8))
        }
    }

    @Test("integers stay integers in the JSON text and other numbers keep their fraction")
    func integersStayIntegers() throws {
        let text = String(decoding: try WireFormat.encode(Self.full), as: UTF8.self)
        #expect(text.contains(#""steps":5"#))
        #expect(text.contains(#""stepMs":250"#))
        #expect(text.contains(#""negative":-3"#))
        #expect(text.contains(#""ratio":0.25"#))
        #expect(text.contains("[1,2.5,\"x\"]"))
        #expect(!text.contains("5.0") && !text.contains("250.0") && !text.contains("3.0"))
        let huge = String(decoding: try WireFormat.encode(JSONValue.number(1e300)), as: UTF8.self)
        #expect(try WireFormat.decode(JSONValue.self, from: Array(huge.utf8)) == .number(1e300))
    }

    @Test("JSON values of every kind decode to the matching case")
    func jsonValueDecodesEveryKind() throws {
        let value = try WireFormat.decode(JSONValue.self, from: Array(#"{"n":null,"t":true,"f":false,"i":1,"z":0,"d":-0.5,"s":"1","a":[]}"#.utf8))
        #expect(value == ["n": nil, "t": true, "f": false, "i": 1, "z": 0, "d": -0.5, "s": "1", "a": []])
        #expect(JSONValue.number(3).typeName == "integer")
        #expect(JSONValue.number(3.5).typeName == "number")
    }

    @Test("the encoded snapshot says schemaVersion 1, its status as a string and its id as a string")
    func schemaVersionIsOne() throws {
        let json = try WireFormat.decode(JSONValue.self, from: WireFormat.encode(Self.full))
        #expect(json.objectValue?["schemaVersion"] == 1)
        #expect(json.objectValue?["status"] == "failed")
        #expect(json.objectValue?["id"] == "2f1c0a4e-9a55-4a43-b1f5-4f2a1c9d0e77")
        #expect(String(decoding: try WireFormat.encode(Self.full), as: UTF8.self).contains(#""schemaVersion":1"#))
    }

    @Test("commands carry schemaVersion 1 and round-trip")
    func commandsRoundTrip() throws {
        let start = StartJobCommand(job: Self.full)
        #expect(try WireFormat.decode(StartJobCommand.self, from: WireFormat.encode(start)) == start)
        #expect(start.schemaVersion == 1)

        let cancel = ControlCommand.cancel(Self.full.id, at: at(4.5))
        let json = try WireFormat.decode(JSONValue.self, from: WireFormat.encode(cancel))
        #expect(json == ["schemaVersion": 1, "kind": "cancel", "jobID": "2f1c0a4e-9a55-4a43-b1f5-4f2a1c9d0e77", "requestedAt": "2023-11-14T22:13:24.500Z"])
        #expect(try WireFormat.decode(ControlCommand.self, from: WireFormat.encode(cancel)) == cancel)
    }

    @Test("topic names share the deployment's prefix")
    func topicNames() {
        let named = TopicNames(prefix: "staging")
        #expect(named.all == ["staging.commands", "staging.control", "staging.status", "staging.workers"])
        #expect(TopicNames().status == "jobs.status")
        #expect(TopicNames(prefix: "").all == ["commands", "control", "status", "workers"])
    }

    @Test("RFC 3339 times parse with any offset, lowercase letters and old years; impossible ones are refused")
    func rfc3339() throws {
        #expect(WireFormat.parseTimestamp("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
        #expect(WireFormat.parseTimestamp("2026-11-23T19:51:45.433Z") == Date(timeIntervalSince1970: 1_795_463_505.433))
        #expect(WireFormat.parseTimestamp("2026-11-23t20:51:45.433+01:00") == WireFormat.parseTimestamp("2026-11-23T19:51:45.433Z"))
        #expect(WireFormat.parseTimestamp("2026-11-23T14:21:45-05:30") == WireFormat.parseTimestamp("2026-11-23T19:51:45z"))
        #expect(WireFormat.parseTimestamp("2024-02-29T00:00:00Z") != nil)
        #expect(WireFormat.parseTimestamp("1969-12-31T23:59:59.5Z") == Date(timeIntervalSince1970: -0.5))
        // Proleptic Gregorian: 0083-01-04 is 689,209 days before 1970-01-01.
        #expect(WireFormat.parseTimestamp("0083-01-04T09:36:59+23:04") == Date(timeIntervalSince1970: -689_209 * 86_400 + 9 * 3600 + 36 * 60 + 59 - (23 * 3600 + 4 * 60)))
        for bad in ["2026-02-29T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23 19:51:45Z", "2026-11-23T19:51:45",
                    "2026-11-23T19:51:45+24:00", "2026-13-01T00:00:00Z", "yesterday", ""] {
            #expect(WireFormat.parseTimestamp(bad) == nil, "\(bad)")
        }
    }
}
