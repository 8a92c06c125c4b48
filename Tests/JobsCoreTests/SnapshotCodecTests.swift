import Foundation
@testable import JobsCore
import Testing

@Suite("The hand-written snapshot codec")
struct SnapshotCodecTests {
    // MARK: Round trips

    @Test("every snapshot of a varied set round-trips fast→Foundation, Foundation→fast and fast→fast")
    func variedSnapshotsRoundTrip() throws {
        for (index, snapshot) in Self.varied.enumerated() {
            let problems = try roundTripProblems(snapshot)
            #expect(problems.isEmpty, "snapshot \(index): \(problems)")
        }
    }

    @Test("a thousand random snapshots round-trip all three ways, and the fast reader takes every one")
    func randomSnapshotsRoundTrip() throws {
        var random = SeededGenerator(seed: 20_240_611)
        var failures: [String] = []
        for index in 0..<1000 {
            let snapshot = RandomSnapshot.make(using: &random)
            let problems = try roundTripProblems(snapshot)
            if !problems.isEmpty { failures.append("#\(index): \(problems)") }
        }
        #expect(failures.isEmpty, "\(failures.count) failed, e.g. \(failures.prefix(3))")
    }

    @Test("request bodies read as Foundation reads them: random values, scalars, and refusals")
    func jsonValuesReadAsFoundationReadsThem() throws {
        var random = SeededGenerator(seed: 99)
        var documents = (0..<500).map { _ in
            String(decoding: try! WireFormat.encode(RandomSnapshot.value(depth: 0, using: &random)), as: UTF8.self)
        }
        documents += [#"{"type":"noop"}"#, " [1, 2.5, -0, \"\\u00e9\"] ", "true", "null", #""x""#, "1e2"]
        for document in documents {
            #expect(try WireFormat.decodeJSONValue(Array(document.utf8)) == JSONDecoder().decode(JSONValue.self, from: Data(document.utf8)),
                    "\(document)")
        }
        for bad in ["", "{", #"{"a":}"#, "[1,,2]", "nul", #"{"a":1} x"#, "\"\\ud800\""] {
            #expect(throws: (any Error).self, "\(bad)") { try WireFormat.decodeJSONValue(Array(bad.utf8)) }
        }
    }

    @Test("a request body must be JSON by RFC 8259: trailing commas, comments and other laxities Foundation may take are refused")
    func requestBodiesAreStrictJSON() throws {
        let lax = [
            #"{"type":"noop",}"#, "[1,]", #"{"a":[1,2,],"b":1}"#, #"{"a":{"b":1,},"c":2}"#, "[[],]", "[{},]",
            #"{"a":1 /* note */}"#, "// note\n{}", "{} // note", "# note\n{}", #"{a:1}"#, #"{'a':1}"#, "['a']",
            "[NaN]", "[Infinity]", "[-Infinity]", "[+1]", "[.5]", "[1.]", "[0x10]", "[01]", "[1e]", "[-]",
            "[\"a\tb\"]", "[\"\\x\"]", "[,1]", "[1,,2]", "{,}", #"{"a" 1}"#, #"{"a":1 "b":2}"#, "[1 2]",
            "[True]", "[nul]", "[1]]", "[[1]", "\u{0C}[1]", "[1]\u{0B}",
        ]
        for text in lax {
            #expect(throws: DecodingError.self, "\(text)") { try WireFormat.decodeJSONValue(Array(text.utf8)) }
        }
        // What the RFC allows but the fast reader leaves to Foundation is still Foundation's answer.
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let strict = [deep, "\u{FEFF}{\"a\":[1]}", " [1e400] ", "[0.000e5]"]
        for text in strict {
            let expected = Result { try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) }
            let actual = Result { try WireFormat.decodeJSONValue(Array(text.utf8)) }
            #expect(String(describing: actual) == String(describing: expected), "\(text)")
        }
    }

    @Test("JSON is read to 500 levels of nesting, counting an empty innermost container, and refused past them with its own error")
    func nestingHasOneLimit() throws {
        func nested(_ depth: Int, innermost: String = "[]") -> [UInt8] {
            Array((String(repeating: #"{"a":["#, count: depth / 2) + (depth % 2 == 1 ? innermost : "1")
                   + String(repeating: "]}", count: depth / 2)).utf8)
        }
        #expect(WireFormat.maximumJSONNesting == 500)
        #expect(try WireFormat.decodeJSONValue(nested(500)).objectValue?["a"] != nil)
        #expect(try WireFormat.decodeJSONValue(nested(499, innermost: "{}")).objectValue?["a"] != nil)
        #expect(throws: WireFormat.NestingTooDeepError(limit: 500)) { try WireFormat.decodeJSONValue(nested(501, innermost: "{}")) }
        #expect(throws: WireFormat.NestingTooDeepError(limit: 500)) { try WireFormat.decodeJSONValue(nested(501, innermost: "[]")) }
        #expect(throws: WireFormat.NestingTooDeepError(limit: 500)) { try WireFormat.decodeJSONValue(nested(600)) }
        // Not JSON at all is still not JSON, however deep.
        #expect(throws: DecodingError.self) { try WireFormat.decodeJSONValue(nested(600).dropLast()) }
    }

    @Test("a request body with two members of one name in an object is refused, naming it, at any depth")
    func duplicateMembersAreRefused() throws {
        let deep = { (inner: String) in String(repeating: "[", count: 200) + inner + String(repeating: "]", count: 200) }
        let documents: [(String, String)] = [
            (#"{"a":1,"a":2}"#, "a"),
            (#"{"a":1,"a":1}"#, "a"),
            (#"{"p":{"x":[{"k":1,"b":true,"k":null}]}}"#, "k"),
            // Equal as text, though not byte for byte: a precomposed and a decomposed é.
            (#"{"\u00e9":1,"e\u0301":2}"#, "\u{E9}"),
            // Past the fast reader's nesting, the strict check finds it.
            (deep(#"{"a":1,"b":{},"a":2}"#), "a"),
        ]
        for (text, name) in documents {
            #expect(throws: WireFormat.DuplicateMemberError(name: name), "\(text)") {
                try WireFormat.decodeJSONValue(Array(text.utf8))
            }
        }
        // One name in different objects is no duplicate.
        for text in [#"[{"a":1},{"a":2}]"#, #"{"a":{"a":{"a":1}},"b":{"a":2}}"#, deep(#"{"a":{"a":1},"b":[{"a":2}]}"#)] {
            let expected = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            #expect(try WireFormat.decodeJSONValue(Array(text.utf8)) == expected, "\(text)")
        }
    }

    @Test("any value is written as a document Foundation reads back to the same value; NaN throws Foundation's error")
    func jsonValuesWrittenForFoundation() throws {
        var random = SeededGenerator(seed: 7)
        var values = (0..<500).map { _ in RandomSnapshot.value(depth: 0, using: &random) }
        values += [.null, true, 0, -0.5, 1e300, "a\"b\\c\u{1}/é", [:], [], [nil, [[:]]]]
        for value in values {
            let bytes = try WireFormat.encodeJSONValue(value)
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(bytes)) == value, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(throws: EncodingError.self) { try WireFormat.encodeJSONValue(["x": [.number(.nan)]]) }
    }

    @Test("an object's members are written in key order, whatever order the dictionary holds them in, at any depth")
    func objectsAreWrittenInKeyOrder() throws {
        // Dictionaries of many keys, built in different orders: their own orders differ,
        // and so would the bytes (and a job's ETag) from one process to another.
        let keys = (0..<40).map { "k\($0)" } + ["Z", "a", "é", "_", "10"]
        let forward = JSONValue.object(Dictionary(uniqueKeysWithValues: keys.map { ($0, JSONValue.number(1)) }))
        let backward = JSONValue.object(Dictionary(uniqueKeysWithValues: keys.reversed().map { ($0, JSONValue.number(1)) }))
        let nested: JSONValue = ["outer": ["b": forward, "a": [backward]]]
        let text = String(decoding: try WireFormat.encodeJSONValue(nested), as: UTF8.self)
        let inner = "{" + keys.sorted().map { "\"\($0)\":1" }.joined(separator: ",") + "}"
        #expect(text == #"{"outer":{"a":["# + inner + #"],"b":"# + inner + "}}")
        var job = JobSnapshot.queued(type: "t", params: forward)
        let one = try WireFormat.encodeSnapshot(job)
        job.params = backward
        #expect(try WireFormat.encodeSnapshot(job) == one)
    }

    @Test("a start command round-trips, and its JSON is {schemaVersion, job}")
    func startCommandRoundTrips() throws {
        for snapshot in Self.varied {
            let command = StartJobCommand(job: snapshot)
            let fast = try WireFormat.encodeStartCommand(command)
            #expect(try WireFormat.decode(StartJobCommand.self, from: fast) == command)
            #expect(try WireFormat.decodeStartCommand(WireFormat.encode(command)) == command)
            #expect(WireFormat.decodeStartCommandFast(fast) == command)
        }
        let json = try WireFormat.decode(JSONValue.self, from: WireFormat.encodeStartCommand(StartJobCommand(job: WireFormatTests.full)))
        #expect(Set(json.objectValue?.keys.map { $0 } ?? []) == ["schemaVersion", "job"])
        #expect(json["schemaVersion"] == 1)
    }

    @Test("a start command the fast reader is unsure of is read, or refused, by Foundation")
    func startCommandFallsBack() throws {
        let job = String(decoding: try WireFormat.encodeSnapshot(WireFormatTests.full), as: UTF8.self)
        let spaced = #" { "job" : \#(job) , "schemaVersion" : 1 } "#
        #expect(try WireFormat.decodeStartCommand(Array(spaced.utf8)) == StartJobCommand(job: WireFormatTests.full))
        let extra = #"{"schemaVersion":1,"job":\#(job),"note":"x"}"#
        #expect(WireFormat.decodeStartCommandFast(Array(extra.utf8)) == nil)
        #expect(try WireFormat.decodeStartCommand(Array(extra.utf8)) == StartJobCommand(job: WireFormatTests.full))
        #expect(throws: DecodingError.self) { try WireFormat.decodeStartCommand(Array(#"{"schemaVersion":1}"#.utf8)) }
    }

    // MARK: The fast path

    @Test("canonical input takes the fast path, also as Data and as a non-contiguous collection")
    func canonicalInputTakesTheFastPath() throws {
        for snapshot in Self.varied {
            let fast = try WireFormat.encodeSnapshot(snapshot)
            #expect(WireFormat.decodeSnapshotFast(fast) == snapshot)
            #expect(WireFormat.decodeSnapshotFast(Data(fast)) == snapshot)
            #expect(WireFormat.decodeSnapshotFast(fast.lazy.map { $0 }) == snapshot)
            // Foundation's own output too (it writes `\/` and keys in its own order).
            #expect(WireFormat.decodeSnapshotFast(try WireFormat.encode(snapshot)) == snapshot)
        }
    }

    @Test("pretty-printed input with sorted keys takes the fast path and equals Foundation's result")
    func whitespaceAndReorderedKeys() throws {
        let encoder = WireFormat.encoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        for snapshot in Self.varied {
            let pretty = Array(try encoder.encode(snapshot))
            #expect(WireFormat.decodeSnapshotFast(pretty) == snapshot)
            #expect(try WireFormat.decodeSnapshot(pretty) == WireFormat.decode(JobSnapshot.self, from: pretty))
        }
        let tabs = "\t\r\n " + Self.minimal.replacingOccurrences(of: ",", with: " ,\n\t").replacingOccurrences(of: "\":", with: "\"\r: ") + "\n "
        try expectSameAsFoundation(tabs, fast: true)
    }

    @Test("escapes such as \\/ and \\u00e9, surrogate pairs and an escaped key decode as Foundation decodes them")
    func escapesDecodeAsFoundationDoes() throws {
        try expectSameAsFoundation(Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"a\/b \u00e9\u00E9 \ud83d\ude00 \b\f\n\r\t\"\\ \u0000""#), fast: true)
        try expectSameAsFoundation(Self.minimal.replacingOccurrences(of: #""id":"j""#, with: #""i\u0064":"j""#), fast: true)
        try expectSameAsFoundation(Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":{"\u00e9":"e\u0301","x\/y":["\ud834\udd1e"]}"#), fast: true)
        let decoded = try WireFormat.decodeSnapshot(Array(Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"\u00e9\/""#).utf8))
        #expect(decoded.type == "é/")
    }

    @Test("null optionals, result null and params null decode as Foundation decodes them")
    func nullsDecodeAsFoundationDoes() throws {
        let nulls = #","progress":null,"result":null,"error":null,"workerID":null,"startedAt":null,"finishedAt":null,"maxAttempts":null,"timeoutMs":null,"stalled":null,"idempotencyKey":null,"submittedBy":null,"orderingKey":null}"#
        try expectSameAsFoundation(String(Self.minimal.dropLast()) + nulls, fast: true)
        try expectSameAsFoundation(String(Self.minimal.dropLast()) + #","progress":{"current":1,"total":null,"message":null}}"#, fast: true)
        try expectSameAsFoundation(Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":null"#), fast: true)
        // `result: .null` is written as null, which reads back as no result (as with Foundation).
        var snapshot = WireFormatTests.full
        snapshot.result = .null
        #expect(try WireFormat.decodeSnapshot(WireFormat.encodeSnapshot(snapshot)).result == nil)
        #expect(try WireFormat.decode(JobSnapshot.self, from: WireFormat.encode(snapshot)).result == nil)
    }

    @Test("unknown keys, duplicate keys, trailing commas and numbers such as 1.0 for an Int are left to Foundation")
    func unusualInputGoesToFoundation() throws {
        let texts: [String] = [
            String(Self.minimal.dropLast()) + #","future":{"a":[1,2]}}"#,
            String(Self.minimal.dropLast()) + #","id":"second"}"#,
            String(Self.minimal.dropLast()) + #","progress":null,"progress":{"current":2}}"#,
            Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":{"a":1,"a":2}"#),
            Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":{"\u00e9":1,"e\u0301":2}"#),
            Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":1.0"#),
            Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":2e0"#),
            String(Self.minimal.dropLast()) + #","orderingKey":"a","ordering\u212Aey":"b"}"#,
            "\u{FEFF}" + Self.minimal,
            // Foundation accepts trailing commas; the fast reader leaves them to it.
            Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":[1,]"#),
            Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":{"a":1,}"#),
            String(Self.minimal.dropLast()) + ",}",
        ]
        for text in texts {
            try expectSameAsFoundation(text, fast: false)
        }
    }

    @Test("every Int field takes the whole Int range")
    func intRange() throws {
        var snapshot = WireFormatTests.full
        for value in [Int.min, Int.min + 1, -1, 0, Int.max] {
            snapshot.attempt = value
            snapshot.sequence = value
            snapshot.progress = JobProgress(current: value, total: value)
            snapshot.maxAttempts = value
            snapshot.timeoutMs = value
            snapshot.schemaVersion = value
            let problems = try roundTripProblems(snapshot)
            #expect(problems.isEmpty, "\(value): \(problems)")
        }
        try expectSameAsFoundation(Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":-0"#), fast: true)
    }

    // MARK: Numbers

    @Test("numbers are written as valid JSON that reads back to the same Double, in Foundation's style")
    func numbersAreValidJSON() throws {
        let numbers: [Double] = [
            0, -0.0, 1, -1, 0.5, 0.1, -0.25, 1e-05, 1e-7, 1e+20, 1e16, 1e21, 123456.789, 9.007e15, 9.007e15 + 1, -9.007e15,
            9_007_199_254_740_994, 1e300, -1e300, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
            -.greatestFiniteMagnitude, .pi, 2.5e-308,
        ]
        for number in numbers {
            var snapshot = WireFormatTests.full
            snapshot.params = ["n": .number(number), "a": [.number(number)]]
            let text = String(decoding: try WireFormat.encodeSnapshot(snapshot), as: UTF8.self)
            let decoded = try WireFormat.decode(JobSnapshot.self, from: Array(text.utf8))
            #expect(decoded.params["n"] == .number(number), "\(number) as \(text)")
            #expect(try WireFormat.decodeSnapshot(Array(text.utf8)).params["n"] == .number(number))
            let written = text.components(separatedBy: #""n":"#)[1].prefix { $0 != "," && $0 != "}" }
            let foundation = String(decoding: try WireFormat.encode(JSONValue.number(number)), as: UTF8.self)
            #expect(String(written) == foundation, "\(number)")
        }
        let text = String(decoding: try WireFormat.encodeSnapshot(WireFormatTests.full), as: UTF8.self)
        #expect(text.contains(#""steps":5"#) && text.contains(#""ratio":0.25"#) && text.contains("[1,2.5,\"x\"]"))
    }

    @Test("number spellings in input decode as Foundation decodes them")
    func numberSpellings() throws {
        for number in ["0", "-0", "-0.0", "1E5", "1e+5", "1.5e-3", "0.1", "123456789012345", "1234567890123456", "12345678901234567890",
                       "9007199254740993", "1e-320", "0e-999", "0.000e5", "4.9406564584124654e-324", "2.2250738585072011e-308",
                       "1.7976931348623157e308", "0e0", "0.0e-1", "-0.00000e+0", "0.0", "-0.000", "1e400", "-1e400", "1e-400", "01", "1.", ".5", "-", "+1", "1e", "0x10", "NaN", "--1"] {
            try expectSameAsFoundation(Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":[\#(number)]"#), fast: nil)
        }
    }

    @Test("a NaN or infinite number makes encodeSnapshot throw Foundation's EncodingError")
    func nonFiniteNumbersThrow() {
        for number in [Double.nan, .infinity, -.infinity] {
            var snapshot = WireFormatTests.full
            snapshot.result = ["deep": [.number(number)]]
            #expect(throws: EncodingError.self) { try WireFormat.encodeSnapshot(snapshot) }
            #expect(throws: EncodingError.self) { try WireFormat.encodeStartCommand(StartJobCommand(job: snapshot)) }
        }
    }

    @Test("params nested deeper than 127 levels are handed to Foundation, both ways")
    func deepNesting() throws {
        for levels in [100, 127, 128, 200, 600] {
            var value: JSONValue = "leaf"
            for level in 0..<levels { value = level.isMultiple(of: 2) ? [value] : ["k": value] }
            var snapshot = WireFormatTests.full
            snapshot.params = value
            let fast = Result { try WireFormat.encodeSnapshot(snapshot) }
            let foundation = Result { try WireFormat.encode(snapshot) }
            switch (fast, foundation) {
            case (.success(let bytes), .success):
                // The snapshot's object is one level, so 127 levels of params is the most the fast reader takes.
                #expect((WireFormat.decodeSnapshotFast(bytes) != nil) == (levels <= 127), "\(levels) levels")
                #expect(try WireFormat.decode(JobSnapshot.self, from: bytes) == snapshot)
                #expect(try WireFormat.decodeSnapshot(bytes) == snapshot)
                #expect(try WireFormat.decodeSnapshot(WireFormat.encode(snapshot)) == snapshot)
            case (.failure, .failure):
                break
            default:
                Issue.record("\(levels) levels: fast \(fast), Foundation \(foundation)")
            }
        }
    }

    // MARK: Refusals

    @Test("input Foundation refuses is refused too: truncated, wrong types, missing keys, bad strings, trailing garbage")
    func refusesWhatFoundationRefuses() throws {
        let full = String(decoding: try WireFormat.encodeSnapshot(WireFormatTests.full), as: UTF8.self)
        var bad: [String] = [
            "", " ", "null", "[]", "{}", "\"x\"",
            String(full.dropLast()), String(full.prefix(full.count / 2)), String(full.prefix(1)),
            Self.minimal.replacingOccurrences(of: #""id":"j","#, with: ""),
            Self.minimal.replacingOccurrences(of: #","cancelRequested":false"#, with: ""),
            Self.minimal.replacingOccurrences(of: #""params":{},"#, with: ""),
            Self.minimal.replacingOccurrences(of: #""id":"j""#, with: #""id":7"#),
            Self.minimal.replacingOccurrences(of: #""id":"j""#, with: #""id":null"#),
            Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":"1""#),
            Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":1.5"#),
            Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":99999999999999999999"#),
            Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":01"#),
            Self.minimal.replacingOccurrences(of: #""cancelRequested":false"#, with: #""cancelRequested":0"#),
            Self.minimal.replacingOccurrences(of: #""status":"queued""#, with: #""status":"paused""#),
            Self.minimal.replacingOccurrences(of: #""status":"queued""#, with: #""status":"Queued""#),
            Self.minimal.replacingOccurrences(of: #""createdAt":"2023-11-14T22:13:20.000Z""#, with: #""createdAt":"yesterday""#),
            Self.minimal.replacingOccurrences(of: #""createdAt":"2023-11-14T22:13:20.000Z""#, with: #""createdAt":1700000000"#),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"\ud800""#),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"\ud800x""#),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"\udc00\ud800""#),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"\x""#),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"\u12""#),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: "\"type\":\"a\u{01}b\""),
            Self.minimal.replacingOccurrences(of: #""type":"t""#, with: "\"type\":\"a\nb\""),
            Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":[1e400]"#),
            Self.minimal.replacingOccurrences(of: #""params":{}"#, with: #""params":tru"#),
            String(Self.minimal.dropLast()) + #","progress":{"total":3}}"#,
            String(Self.minimal.dropLast()) + #","error":{"code":"x"}}"#,
            String(Self.minimal.dropLast()) + #","stalled":"yes"}"#,
            Self.minimal + "x", Self.minimal + "}", Self.minimal + Self.minimal, Self.minimal + ",",
            "[" + Self.minimal + "]",
        ]
        bad.append(String(repeating: "[", count: 600) + String(repeating: "]", count: 600))
        var invalidUTF8 = Array(Self.minimal.utf8)
        let t = invalidUTF8.firstIndex(of: UInt8(ascii: "t"))!  // the "t" of "type"
        invalidUTF8.replaceSubrange(t..<t + 1, with: [0xFF])
        var invalidValue = Array(Self.minimal.replacingOccurrences(of: #""type":"t""#, with: #""type":"é""#).utf8)
        invalidValue.remove(at: invalidValue.firstIndex(of: 0xC3)!)
        // A UTF-8-encoded surrogate, an overlong "/", a scalar beyond U+10FFFF, a lone lead byte before an escape.
        let sequences: [[UInt8]] = [[0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80], [0xC3, 0x5C, 0x6E]]
        let invalidSequences = sequences.map { sequence -> [UInt8] in
            let parts = Self.minimal.components(separatedBy: #""type":"t""#)
            let before: [UInt8] = Array(parts[0].utf8) + Array(#""type":"t"#.utf8)
            let after: [UInt8] = [UInt8(ascii: "\"")] + Array(parts[1].utf8)
            return before + sequence + after
        }
        for bytes in bad.map({ Array($0.utf8) }) + [invalidUTF8, invalidValue] + invalidSequences {
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(throws: (any Error).self, "Foundation, \(text)") { try WireFormat.decode(JobSnapshot.self, from: bytes) }
            #expect(throws: (any Error).self, "\(text)") { try WireFormat.decodeSnapshot(bytes) }
            #expect(WireFormat.decodeSnapshotFast(bytes) == nil, "\(text)")
        }
    }

    @Test("a refused snapshot throws Foundation's own error")
    func errorsAreFoundations() throws {
        let bytes = Array(Self.minimal.replacingOccurrences(of: #""attempt":1"#, with: #""attempt":1.5"#).utf8)
        let expected = String(describing: Result { try WireFormat.decode(JobSnapshot.self, from: bytes) })
        #expect(String(describing: Result { try WireFormat.decodeSnapshot(bytes) }) == expected)
    }

    // MARK: Keeping up with the types

    @Test("the codec writes every key Foundation writes, and knows every stored property of the types")
    func knowsEveryMember() throws {
        let fast = try WireFormat.decode(JSONValue.self, from: WireFormat.encodeSnapshot(WireFormatTests.full))
        #expect(try encodedKeys(WireFormatTests.full) == Set(fast.objectValue?.keys.map { $0 } ?? []))
        #expect(Set(fast["progress"]?.objectValue?.keys.map { $0 } ?? []) == ["current", "total", "message"])
        #expect(Set(fast["error"]?.objectValue?.keys.map { $0 } ?? []) == ["code", "message"])
        // A property added to JobSnapshot (even one nil in every fixture) must be added to the codec.
        let known: Set<String> = [
            "schemaVersion", "id", "type", "params", "status", "attempt", "sequence", "progress", "result", "error", "workerID",
            "createdAt", "startedAt", "finishedAt", "updatedAt", "cancelRequested", "maxAttempts", "timeoutMs", "stalled",
            "idempotencyKey", "submittedBy", "orderingKey",
        ]
        #expect(Set(Mirror(reflecting: WireFormatTests.full).children.compactMap(\.label)) == known)
        #expect(Set(Mirror(reflecting: JobProgress(current: 0)).children.compactMap(\.label)) == ["current", "total", "message"])
        #expect(Set(Mirror(reflecting: JobError(code: "", message: "")).children.compactMap(\.label)) == ["code", "message"])
        #expect(Set(Mirror(reflecting: StartJobCommand(job: WireFormatTests.full)).children.compactMap(\.label)) == ["schemaVersion", "job"])
    }

    @Test("strings are escaped per RFC 8259 and times are written as WireFormat writes them")
    func escapingAndTimes() throws {
        var snapshot = WireFormatTests.full
        snapshot.type = "q\"b\\s/n\nt\tc\u{01}\u{1F}\u{7F}é😀"
        let text = String(decoding: try WireFormat.encodeSnapshot(snapshot), as: UTF8.self)
        #expect(text.contains(#""type":"q\"b\\s/n\nt\tc\u0001\u001f\#u{7F}é😀""#))
        #expect(text.contains(#""createdAt":"2023-11-14T22:13:20.001Z""#))
        #expect(text.contains(#""updatedAt":"2023-11-14T22:13:23.457Z""#))
    }

    // MARK: Fixtures

    /// The smallest valid snapshot, with every required key, in Foundation's key order.
    static let minimal = #"{"schemaVersion":1,"id":"j","type":"t","params":{},"status":"queued","attempt":1,"sequence":0,"createdAt":"2023-11-14T22:13:20.000Z","updatedAt":"2023-11-14T22:13:20.000Z","cancelRequested":false}"#

    /// Every status, every optional nil and set, awkward strings, numbers and times.
    static let varied: [JobSnapshot] = {
        let id = JobID(rawValue: "2f1c0a4e-9a55-4a43-b1f5-4f2a1c9d0e77")
        var snapshots: [JobSnapshot] = [WireFormatTests.full]
        for status in JobStatus.allCases {
            snapshots.append(JobSnapshot(id: id, type: "sleep", params: [:], status: status, createdAt: at(0)))
        }
        snapshots.append(JobSnapshot(id: id, type: "sleep", params: nil, createdAt: at(0), cancelRequested: true))
        snapshots.append(JobSnapshot(
            id: JobID(rawValue: "ünïcödé-😀-e\u{301}-\u{1F1EB}\u{1F1F7}-日本"), type: "\"quoted\" \\back\\ /slash/",
            params: ["text": "line1\nline2\ttab\r\u{0}\u{1}\u{8}\u{C}\u{1B}\u{7F}\u{2028}\u{FEFF}",
                     "emoji": "👩‍👩‍👧‍👦🏳️‍🌈", "combining": "a\u{300}\u{301}\u{302}", "": "empty key", "/": "\\"],
            status: .running, attempt: 3, sequence: 12,
            progress: JobProgress(current: 0), result: nil, error: nil, workerID: "w\"1\"",
            createdAt: Date(timeIntervalSince1970: -1.5), startedAt: Date(timeIntervalSince1970: -86_400 * 365 * 50 + 0.001),
            updatedAt: Date(timeIntervalSince1970: 0), stalled: false, idempotencyKey: "", submittedBy: "ops", orderingKey: "k/\u{0}"))
        snapshots.append(JobSnapshot(
            id: id, type: "numbers",
            params: ["big": 9_007_000_000_000_000, "huge": 1e300, "tiny": .number(.leastNonzeroMagnitude), "neg": -12345.678, "frac": 0.1,
                     "negzero": .number(-0.0), "exp": 1e-05, "e20": 1e+20, "ints": [0, -1, 1, 2_147_483_648, -9_006_999_999_999_999]],
            status: .succeeded, progress: JobProgress(current: 5, total: 5), result: [[[], [:], [nil, true, false]], ["a": ["b": ["c": nil]]]],
            createdAt: Date(timeIntervalSince1970: 4_102_444_800.999), finishedAt: Date(timeIntervalSince1970: 4_102_444_801.5),
            updatedAt: Date(timeIntervalSince1970: 4_102_444_802), maxAttempts: 1, timeoutMs: 0))
        snapshots.append(JobSnapshot(
            id: id, type: "failed", params: "a string as params", status: .failed, attempt: 2, sequence: 1,
            progress: JobProgress(current: -3, message: "no total"), result: 42,
            error: JobError(code: "handler_error", message: "boom: \"x\"\n\tat line 3"), workerID: "worker-1",
            createdAt: Date(timeIntervalSince1970: -2_208_988_800.123), updatedAt: at(1.001), maxAttempts: 5))
        snapshots.append(JobSnapshot(id: id, type: "t", params: [1, "two", 3.5, nil, false, [:], []], status: .cancelled,
                                     progress: JobProgress(current: 1, total: 2, message: ""), result: "done",
                                     createdAt: at(0.999), updatedAt: at(2), cancelRequested: true))
        return snapshots + (try! RetriedJobHistory(steps: 3).events)
    }()
}

// MARK: - Helpers

/// How `snapshot` fails to round-trip fast→Foundation, Foundation→fast and fast→fast
/// (also checking that the fast reader itself took both documents); empty if it doesn't.
private func roundTripProblems(_ snapshot: JobSnapshot) throws -> [String] {
    var problems: [String] = []
    let fast = try WireFormat.encodeSnapshot(snapshot)
    let foundation = try WireFormat.encode(snapshot)
    if try WireFormat.decode(JobSnapshot.self, from: fast) != snapshot { problems.append("fast→Foundation") }
    if try WireFormat.decodeSnapshot(foundation) != snapshot { problems.append("Foundation→fast") }
    if try WireFormat.decodeSnapshot(fast) != snapshot { problems.append("fast→fast") }
    if WireFormat.decodeSnapshotFast(fast) == nil { problems.append("fast reader refused the fast writer's output") }
    if WireFormat.decodeSnapshotFast(foundation) == nil { problems.append("fast reader refused Foundation's output") }
    if !problems.isEmpty { problems.append(String(decoding: fast, as: UTF8.self)) }
    return problems
}

/// `decodeSnapshot(text)` gives what Foundation gives (the same snapshot, or an error);
/// `fast` says whether the fast reader should have answered itself (nil: don't care).
private func expectSameAsFoundation(_ text: String, fast: Bool?, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = Array(text.utf8)
    let expected = Result { try WireFormat.decode(JobSnapshot.self, from: bytes) }
    let actual = Result { try WireFormat.decodeSnapshot(bytes) }
    switch (expected, actual) {
    case (.success(let want), .success(let got)):
        #expect(got == want, "\(text)", sourceLocation: sourceLocation)
    case (.failure(let want), .failure(let got)):
        #expect(String(describing: got) == String(describing: want), "\(text)", sourceLocation: sourceLocation)
    default:
        Issue.record("\(text): Foundation \(expected), fast \(actual)", sourceLocation: sourceLocation)
    }
    if let fast {
        #expect((WireFormat.decodeSnapshotFast(bytes) != nil) == fast, "fast path for \(text)", sourceLocation: sourceLocation)
    }
    if let fastResult = WireFormat.decodeSnapshotFast(bytes) {
        #expect(try expected.get() == fastResult, "\(text)", sourceLocation: sourceLocation)
    }
}

/// Random snapshots for the round-trip test: every field, awkward strings and numbers,
/// params trees a few levels deep.
private enum RandomSnapshot {
    static func make(using random: inout SeededGenerator) -> JobSnapshot {
        func maybe<T>(_ make: (inout SeededGenerator) -> T) -> T? {
            Bool.random(using: &random) ? make(&random) : nil
        }
        var snapshot = JobSnapshot(
            id: JobID(rawValue: string(using: &random)), type: string(using: &random), params: value(depth: 0, using: &random),
            status: JobStatus.allCases.randomElement(using: &random)!,
            attempt: integer(using: &random), sequence: integer(using: &random),
            progress: maybe { JobProgress(current: integer(using: &$0), total: Bool.random(using: &$0) ? integer(using: &$0) : nil,
                                          message: Bool.random(using: &$0) ? string(using: &$0) : nil) },
            result: maybe { nonNullValue(using: &$0) },
            error: maybe { JobError(code: string(using: &$0), message: string(using: &$0)) },
            workerID: maybe { string(using: &$0) },
            createdAt: date(using: &random), startedAt: maybe { date(using: &$0) }, finishedAt: maybe { date(using: &$0) },
            updatedAt: date(using: &random), cancelRequested: Bool.random(using: &random),
            maxAttempts: maybe { integer(using: &$0) }, timeoutMs: maybe { integer(using: &$0) },
            stalled: maybe { Bool.random(using: &$0) }, idempotencyKey: maybe { string(using: &$0) },
            submittedBy: maybe { string(using: &$0) }, orderingKey: maybe { string(using: &$0) })
        if Int.random(in: 0..<10, using: &random) == 0 { snapshot.schemaVersion = integer(using: &random) }
        return snapshot
    }

    /// A `result` that survives a round trip: `.null` there reads back as no result.
    static func nonNullValue(using random: inout SeededGenerator) -> JSONValue {
        while true {
            let candidate = value(depth: 0, using: &random)
            if candidate != .null { return candidate }
        }
    }

    static func value(depth: Int, using random: inout SeededGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth < 4 ? 8 : 5), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .number(number(using: &random))
        case 3, 4: return .string(string(using: &random))
        case 5: return .array((0..<Int.random(in: 0..<5, using: &random)).map { _ in value(depth: depth + 1, using: &random) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<6, using: &random) {
                members[string(using: &random)] = value(depth: depth + 1, using: &random)
            }
            return .object(members)
        }
    }

    static func number(using random: inout SeededGenerator) -> Double {
        switch Int.random(in: 0..<6, using: &random) {
        case 0: return Double(Int.random(in: -1000...1000, using: &random))
        case 1: return Double(Int64.random(in: -9_007_000_000_000_000...9_007_000_000_000_000, using: &random))
        case 2: return Double(Int.random(in: -100_000...100_000, using: &random)) / 100
        case 3: return Double.random(in: -1...1, using: &random) * pow(10, Double(Int.random(in: -320...300, using: &random)))
        case 4: return [0.1, -0.0, 1e-05, 1e+20, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 9_007_199_254_740_994, 0.3].randomElement(using: &random)!
        default:
            while true {  // any finite bit pattern
                let candidate = Double(bitPattern: random.next())
                if candidate.isFinite { return candidate }
            }
        }
    }

    static func integer(using random: inout SeededGenerator) -> Int {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return Int.random(in: 0...10, using: &random)
        case 1: return Int.random(in: -1_000_000...1_000_000, using: &random)
        case 2: return [Int.min, Int.max, -1, 0].randomElement(using: &random)!
        default: return Int(truncatingIfNeeded: random.next())
        }
    }

    private static let pieces: [String] = [
        "a", "job", "Z", "0", " ", "\"", "\\", "/", "\\u", "\n", "\t", "\r", "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "é", "e\u{301}",
        "\u{300}", "ß", "Ω", "日本", "😀", "👩‍👩‍👧", "🇫🇷", "\u{2028}", "\u{FEFF}", "\u{10FFFF}", "{", "}", "[", "]", ":", ",", "null", "1e5",
    ]

    static func string(using random: inout SeededGenerator) -> String {
        var text = ""
        for _ in 0..<Int.random(in: 0..<8, using: &random) { text += pieces.randomElement(using: &random)! }
        return text
    }

    /// A whole-millisecond time between 1900 and 2200 (the wire keeps milliseconds).
    static func date(using random: inout SeededGenerator) -> Date {
        let milliseconds = Int64.random(in: -2_208_988_800_000...7_258_118_400_000, using: &random)
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
