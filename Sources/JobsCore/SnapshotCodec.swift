import Foundation

// A hand-written JSON codec for `JobSnapshot` and `StartJobCommand`.
//
// The gateway decodes every status event and encodes every HTTP answer, and
// Foundation's `JSONDecoder`/`JSONEncoder` dominated its CPU profile. The codec
// here reads and writes the bytes directly. It is not a second definition of the
// wire format: Foundation stays the reference. The writer produces a document
// Foundation reads back to the same value; the reader answers only for documents
// it is sure Foundation reads to exactly the same value, and hands everything
// else (odd spellings, unknown keys, errors) to Foundation, so every error and
// every unusual case is Foundation's answer. One exception: a request body
// (`decodeJSONValue`) must be JSON by RFC 8259, which Foundation is laxer than.

extension WireFormat {
    /// `snapshot` as JSON, written by hand: the members `encode(_:)` writes (nil
    /// optionals left out, the same times and numbers), in declaration order and
    /// with `/` unescaped, so not byte for byte Foundation's text but a document
    /// every reader reads back to the same snapshot. A value JSON can't hold (a NaN
    /// or infinite number) goes to `encode(_:)`, so the error is Foundation's.
    public static func encodeSnapshot(_ snapshot: JobSnapshot) throws -> [UInt8] {
        var writer = JSONWriter()
        writer.write(snapshot)
        guard writer.isComplete else { return try encode(snapshot) }
        return writer.bytes
    }

    /// `command` as JSON, `{"schemaVersion":1,"job":{…}}`, written as ``encodeSnapshot(_:)`` does.
    public static func encodeStartCommand(_ command: StartJobCommand) throws -> [UInt8] {
        var writer = JSONWriter()
        writer.write(command)
        guard writer.isComplete else { return try encode(command) }
        return writer.bytes
    }

    /// `value` as JSON, written as ``encodeSnapshot(_:)`` writes a snapshot.
    public static func encodeJSONValue(_ value: JSONValue) throws -> [UInt8] {
        var writer = JSONWriter()
        writer.write(value)
        guard writer.isComplete else { return try encode(value) }
        return writer.bytes
    }

    /// The snapshot in `bytes`: what `decode(JobSnapshot.self, from:)` returns, read
    /// by hand when the document is one the fast reader is sure of, else by Foundation
    /// (which also throws the errors).
    public static func decodeSnapshot(_ bytes: some Collection<UInt8>) throws -> JobSnapshot {
        if let snapshot = decodeSnapshotFast(bytes) { return snapshot }
        return try decode(JobSnapshot.self, from: bytes)
    }

    /// The start command in `bytes`, read as ``decodeSnapshot(_:)`` reads a snapshot.
    public static func decodeStartCommand(_ bytes: some Collection<UInt8>) throws -> StartJobCommand {
        if let command = decodeStartCommandFast(bytes) { return command }
        return try decode(StartJobCommand.self, from: bytes)
    }

    /// Any JSON document (a request body) as a ``JSONValue``, read as
    /// ``decodeSnapshot(_:)`` reads a snapshot: by hand when sure, else by Foundation,
    /// but only if it is JSON by RFC 8259.
    ///
    /// Foundation takes more than the RFC (trailing commas, as in `{"type":"noop",}`);
    /// a body other parsers refuse must not become a job, so such a document throws
    /// before Foundation sees it.
    ///
    /// An object with two members of one name is refused too ("names within an
    /// object SHOULD be unique", RFC 8259 §4): parsers disagree on which one
    /// counts, and Foundation would silently keep the first.
    public static func decodeJSONValue(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        var duplicate: String?
        let value = JSONReader.read(bytes) { reader in
            defer { duplicate = reader.duplicateMember }
            return reader.readValue()
        }
        if let value { return value }
        if let duplicate { throw DuplicateMemberError(name: duplicate) }
        let strict: Int? = JSONReader.read(bytes) { reader in
            defer { duplicate = reader.duplicateMember }
            return reader.skipStrictValue() ? reader.deepestNesting : nil
        }
        if let duplicate { throw DuplicateMemberError(name: duplicate) }
        guard let nesting = strict else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "The given data is not JSON by RFC 8259."))
        }
        guard nesting <= maximumJSONNesting else { throw NestingTooDeepError(limit: maximumJSONNesting) }
        return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// Deepest nesting of arrays and objects that ``decodeJSONValue(_:)`` reads
    /// (RFC 8259 §9 lets a parser set one). Below Foundation's own limit, so that
    /// too deep a document is refused with this error, not a vague one of Foundation's.
    public static let maximumJSONNesting = 500

    /// Valid JSON whose arrays and objects nest deeper than ``maximumJSONNesting``.
    public struct NestingTooDeepError: Error, Sendable, Hashable, CustomStringConvertible {
        public var limit: Int
        public var description: String { "arrays and objects nest more than \(limit) levels deep" }
    }

    /// A JSON object with two members of one name (compared as Swift strings, so
    /// also two spellings of one text, such as a precomposed and a decomposed `é`).
    public struct DuplicateMemberError: Error, Sendable, Hashable, CustomStringConvertible {
        public var name: String
        public var description: String { "an object has more than one member named \"\(name)\"" }
    }

    /// The fast reader alone: nil whenever Foundation must answer instead.
    static func decodeSnapshotFast(_ bytes: some Collection<UInt8>) -> JobSnapshot? {
        JSONReader.read(bytes) { $0.readSnapshot() }
    }

    /// The fast reader alone, for a start command.
    static func decodeStartCommandFast(_ bytes: some Collection<UInt8>) -> StartJobCommand? {
        JSONReader.read(bytes) { $0.readStartCommand() }
    }
}

// MARK: - Member names

/// Deepest nesting of arrays and objects, counted from the document's top, either
/// side handles itself. Past this (far beyond any real params) the work goes to
/// Foundation, up to ``WireFormat/maximumJSONNesting``.
private let maximumNesting = 128

/// The coding keys of one Codable type, in declaration order (the order the writer
/// writes them in), matched against a key's UTF-8 bytes.
private protocol MemberName: RawRepresentable<String>, CaseIterable, Sendable {}

private enum SnapshotMember: String, MemberName {
    case schemaVersion, id, type, params, status, attempt, sequence, progress, result, error, workerID
    case createdAt, startedAt, finishedAt, updatedAt, cancelRequested, maxAttempts, timeoutMs, stalled
    case idempotencyKey, submittedBy, orderingKey
    static let names = MemberNames<Self>()
}

private enum ProgressMember: String, MemberName {
    case current, total, message
    static let names = MemberNames<Self>()
}

private enum ErrorMember: String, MemberName {
    case code, message
    static let names = MemberNames<Self>()
}

private enum StartCommandMember: String, MemberName {
    case schemaVersion, job
    static let names = MemberNames<Self>()
}

/// The names of `Member`'s cases as bytes, for matching keys without making
/// Strings; a case's position also gives it a bit for spotting duplicates.
private struct MemberNames<Member: MemberName>: Sendable {
    private let members: [Member]
    /// All names, one after another; name `i` is `utf8[starts[i]..<starts[i + 1]]`.
    private let utf8: [UInt8]
    private let starts: [Int]
    /// The positions of the names of each length.
    private let positionsByLength: [[Int]]

    init() {
        members = Array(Member.allCases)
        precondition(members.count <= 64)
        var utf8: [UInt8] = []
        var starts = [0]
        var positionsByLength: [[Int]] = Array(repeating: [], count: members.map(\.rawValue.utf8.count).max()! + 1)
        for (position, member) in members.enumerated() {
            utf8 += member.rawValue.utf8
            starts.append(utf8.count)
            positionsByLength[member.rawValue.utf8.count].append(position)
        }
        (self.utf8, self.starts, self.positionsByLength) = (utf8, starts, positionsByLength)
    }

    subscript(position: Int) -> Member { members[position] }

    /// The position of the member spelled exactly `key`, byte for byte, trying
    /// `hint` first: the writer puts keys in declaration order, so the one after
    /// the last match is usually it. (Foundation puts them in hash order.)
    /// Foundation compares Strings, under which a few other spellings match too
    /// (a KELVIN SIGN for the `K` of `orderingKey`); those count as unknown here
    /// and so go to Foundation.
    func position(of key: UnsafeBufferPointer<UInt8>, hint: Int) -> Int? {
        if hint < members.count, matches(key, at: hint) { return hint }
        guard key.count < positionsByLength.count else { return nil }
        for position in positionsByLength[key.count] where matches(key, at: position) {
            return position
        }
        return nil
    }

    private func matches(_ key: UnsafeBufferPointer<UInt8>, at position: Int) -> Bool {
        let start = starts[position]
        guard starts[position + 1] - start == key.count else { return false }
        for offset in 0..<key.count where utf8[start + offset] != key[offset] {
            return false
        }
        return true
    }
}

// MARK: - Writing

/// Writes JSON into a byte array, as Foundation's encoder would for these types.
private struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// False once the value holds something only Foundation may answer for: a NaN or
    /// infinite number (Foundation throws) or nesting beyond `maximumNesting`.
    private(set) var isComplete = true
    private var depth = 0

    init() {
        bytes.reserveCapacity(512)
    }

    mutating func write(_ command: StartJobCommand) {
        guard enter() else { return }
        defer { depth -= 1 }
        bytes.append(.openBrace)
        member("schemaVersion")
        write(command.schemaVersion)
        member("job")
        write(command.job)
        bytes.append(.closeBrace)
    }

    /// The members in declaration order; nil optionals are left out, as the
    /// synthesized `encodeIfPresent` leaves them out.
    mutating func write(_ snapshot: JobSnapshot) {
        guard enter() else { return }
        defer { depth -= 1 }
        bytes.append(.openBrace)
        member("schemaVersion"); write(snapshot.schemaVersion)
        member("id"); write(snapshot.id.rawValue)
        member("type"); write(snapshot.type)
        member("params"); write(snapshot.params)
        member("status"); write(snapshot.status.rawValue)
        member("attempt"); write(snapshot.attempt)
        member("sequence"); write(snapshot.sequence)
        if let progress = snapshot.progress {
            member("progress")
            bytes.append(.openBrace)
            member("current"); write(progress.current)
            if let total = progress.total { member("total"); write(total) }
            if let message = progress.message { member("message"); write(message) }
            bytes.append(.closeBrace)
        }
        if let result = snapshot.result { member("result"); write(result) }
        if let error = snapshot.error {
            member("error")
            bytes.append(.openBrace)
            member("code"); write(error.code)
            member("message"); write(error.message)
            bytes.append(.closeBrace)
        }
        if let workerID = snapshot.workerID { member("workerID"); write(workerID) }
        member("createdAt"); write(snapshot.createdAt)
        if let startedAt = snapshot.startedAt { member("startedAt"); write(startedAt) }
        if let finishedAt = snapshot.finishedAt { member("finishedAt"); write(finishedAt) }
        member("updatedAt"); write(snapshot.updatedAt)
        member("cancelRequested"); append(snapshot.cancelRequested ? Literal.true : Literal.false)
        if let maxAttempts = snapshot.maxAttempts { member("maxAttempts"); write(maxAttempts) }
        if let timeoutMs = snapshot.timeoutMs { member("timeoutMs"); write(timeoutMs) }
        if let stalled = snapshot.stalled { member("stalled"); append(stalled ? Literal.true : Literal.false) }
        if let idempotencyKey = snapshot.idempotencyKey { member("idempotencyKey"); write(idempotencyKey) }
        if let submittedBy = snapshot.submittedBy { member("submittedBy"); write(submittedBy) }
        if let orderingKey = snapshot.orderingKey { member("orderingKey"); write(orderingKey) }
        bytes.append(.closeBrace)
    }

    /// As `JSONValue.encode(to:)` writes it.
    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append(Literal.null)
        case .bool(let flag): append(flag ? Literal.true : Literal.false)
        case .number(let number): write(number)
        case .string(let text): write(text)
        case .array(let elements):
            guard enter() else { return }
            bytes.append(.openBracket)
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(.comma) }
                write(element)
            }
            bytes.append(.closeBracket)
            depth -= 1
        case .object(let members):
            guard enter() else { return }
            bytes.append(.openBrace)
            // In key order, not the dictionary's, which each process seeds at
            // random: the same value is the same bytes (and ETag) on every replica.
            var first = true
            for (key, member) in members.sorted(by: { $0.key < $1.key }) {
                if !first { bytes.append(.comma) }
                first = false
                write(key)
                bytes.append(.colon)
                write(member)
            }
            bytes.append(.closeBrace)
            depth -= 1
        }
    }

    private mutating func enter() -> Bool {
        guard depth < maximumNesting else {
            isComplete = false
            return false
        }
        depth += 1
        return true
    }

    /// `,"name":` — without the comma right after the object's `{`.
    private mutating func member(_ name: StaticString) {
        if bytes.last != .openBrace { bytes.append(.comma) }
        bytes.append(.quote)
        append(name)
        bytes.append(.quote)
        bytes.append(.colon)
    }

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func write(_ date: Date) {
        write(WireFormat.timestampText(date))
    }

    private mutating func write(_ integer: Int) {
        write(Int64(integer))
    }

    private mutating func write(_ integer: Int64) {
        if integer < 0 { bytes.append(.minus) }
        var magnitude = integer.magnitude
        let start = bytes.count
        repeat {
            bytes.append(.zero + UInt8(truncatingIfNeeded: magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        bytes[start...].reverse()
    }

    /// Whole numbers within ±9.007e15 as integers (as `JSONValue` encodes them),
    /// others as Foundation writes a Double: Swift's shortest round-trip
    /// `description` (`0.25`, `1e-05`, `1e+20`: all valid JSON) less a trailing `.0`.
    private mutating func write(_ number: Double) {
        guard number.isFinite else {
            isComplete = false
            return
        }
        if number.rounded() == number, abs(number) < 9.007e15 {
            write(Int64(number))
            return
        }
        var text = number.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    /// A string escaped per RFC 8259: `"`, `\` and the control characters below
    /// 0x20; `/` and everything else as it is (UTF-8).
    private mutating func write(_ text: String) {
        bytes.append(.quote)
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == .quote || byte == .backslash else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                appendEscape(for: byte)
                runStart = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(.quote)
    }

    private mutating func appendEscape(for byte: UInt8) {
        bytes.append(.backslash)
        switch byte {
        case .quote, .backslash: bytes.append(byte)
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        default:
            func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? .zero + value : UInt8(ascii: "a") + value - 10 }
            bytes.append(UInt8(ascii: "u"))
            bytes.append(.zero)
            bytes.append(.zero)
            bytes.append(hexDigit(byte >> 4))
            bytes.append(hexDigit(byte & 0xF))
        }
    }
}

// MARK: - Reading

/// Reads JSON from a buffer of bytes, strictly by RFC 8259, into exactly the values
/// Foundation's decoder would produce. Every method returns nil (or false) on
/// anything it is not sure of, and the caller then asks Foundation.
///
/// It holds an unsafe buffer pointer, so it lives only inside `read(_:_:)`'s closure.
private struct JSONReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    /// Unescaped bytes of the last string that had escapes, reused between strings.
    private var scratch: [UInt8] = []
    /// The name that made ``readValue()`` or ``skipStrictValue()`` give up, when
    /// it was a second member of one name in an object.
    private(set) var duplicateMember: String?
    /// The most containers ``skipStrictValue()`` found open at once.
    private(set) var deepestNesting = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// `body`'s value read from `bytes`, if it spans the whole document (bar whitespace).
    static func read<Value>(_ bytes: some Collection<UInt8>, _ body: (inout JSONReader) -> Value?) -> Value? {
        func run(_ buffer: UnsafeBufferPointer<UInt8>) -> Value? {
            var reader = JSONReader(buffer)
            guard let value = body(&reader) else { return nil }
            reader.skipWhitespace()
            return reader.index == buffer.count ? value : nil
        }
        if let result = bytes.withContiguousStorageIfAvailable(run) { return result }
        return Array(bytes).withUnsafeBufferPointer(run)
    }

    // MARK: The job types

    mutating func readStartCommand() -> StartJobCommand? {
        var schemaVersion: Int?
        var job: JobSnapshot?
        guard readMembers(StartCommandMember.names, { reader, member in
            switch member {
            case .schemaVersion: schemaVersion = reader.readInt(); return schemaVersion != nil
            case .job: job = reader.readSnapshot(); return job != nil
            }
        }), let schemaVersion, let job else { return nil }
        var command = StartJobCommand(job: job)
        command.schemaVersion = schemaVersion
        return command
    }

    mutating func readSnapshot() -> JobSnapshot? {
        var schemaVersion: Int?, id: String?, type: String?, params: JSONValue?, status: JobStatus?
        var attempt: Int?, sequence: Int?, progress: JobProgress?, result: JSONValue?, error: JobError?
        var workerID: String?, createdAt: Date?, startedAt: Date?, finishedAt: Date?, updatedAt: Date?
        var cancelRequested: Bool?, maxAttempts: Int?, timeoutMs: Int?, stalled: Bool?
        var idempotencyKey: String?, submittedBy: String?, orderingKey: String?
        let complete = readMembers(SnapshotMember.names) { reader, member in
            switch member {
            // Required members: a null is a wrong type, so nil means "ask Foundation".
            case .schemaVersion: schemaVersion = reader.readInt(); return schemaVersion != nil
            case .id: id = reader.readString(); return id != nil
            case .type: type = reader.readString(); return type != nil
            case .params: params = reader.readValue(); return params != nil  // null is JSONValue.null
            case .status: status = reader.readString().flatMap(JobStatus.init(rawValue:)); return status != nil
            case .attempt: attempt = reader.readInt(); return attempt != nil
            case .sequence: sequence = reader.readInt(); return sequence != nil
            case .createdAt: createdAt = reader.readDate(); return createdAt != nil
            case .updatedAt: updatedAt = reader.readDate(); return updatedAt != nil
            case .cancelRequested: cancelRequested = reader.readBool(); return cancelRequested != nil
            // Optional members: null is nil, as `decodeIfPresent` reads it (also for `result`).
            case .progress: return reader.readOptional(into: &progress) { $0.readProgress() }
            case .result: return reader.readOptional(into: &result) { $0.readValue() }
            case .error: return reader.readOptional(into: &error) { $0.readError() }
            case .workerID: return reader.readOptional(into: &workerID) { $0.readString() }
            case .startedAt: return reader.readOptional(into: &startedAt) { $0.readDate() }
            case .finishedAt: return reader.readOptional(into: &finishedAt) { $0.readDate() }
            case .maxAttempts: return reader.readOptional(into: &maxAttempts) { $0.readInt() }
            case .timeoutMs: return reader.readOptional(into: &timeoutMs) { $0.readInt() }
            case .stalled: return reader.readOptional(into: &stalled) { $0.readBool() }
            case .idempotencyKey: return reader.readOptional(into: &idempotencyKey) { $0.readString() }
            case .submittedBy: return reader.readOptional(into: &submittedBy) { $0.readString() }
            case .orderingKey: return reader.readOptional(into: &orderingKey) { $0.readString() }
            }
        }
        guard complete, let schemaVersion, let id, let type, let params, let status, let attempt, let sequence,
              let createdAt, let updatedAt, let cancelRequested else { return nil }
        var snapshot = JobSnapshot(
            id: JobID(rawValue: id), type: type, params: params, status: status, attempt: attempt, sequence: sequence,
            progress: progress, result: result, error: error, workerID: workerID, createdAt: createdAt,
            startedAt: startedAt, finishedAt: finishedAt, updatedAt: updatedAt, cancelRequested: cancelRequested,
            maxAttempts: maxAttempts, timeoutMs: timeoutMs, stalled: stalled, idempotencyKey: idempotencyKey,
            submittedBy: submittedBy, orderingKey: orderingKey)
        snapshot.schemaVersion = schemaVersion
        return snapshot
    }

    private mutating func readProgress() -> JobProgress? {
        var current: Int?, total: Int?, message: String?
        guard readMembers(ProgressMember.names, { reader, member in
            switch member {
            case .current: current = reader.readInt(); return current != nil
            case .total: return reader.readOptional(into: &total) { $0.readInt() }
            case .message: return reader.readOptional(into: &message) { $0.readString() }
            }
        }), let current else { return nil }
        return JobProgress(current: current, total: total, message: message)
    }

    private mutating func readError() -> JobError? {
        var code: String?, message: String?
        guard readMembers(ErrorMember.names, { reader, member in
            switch member {
            case .code: code = reader.readString(); return code != nil
            case .message: message = reader.readString(); return message != nil
            }
        }), let code, let message else { return nil }
        return JobError(code: code, message: message)
    }

    /// An RFC 3339 time, parsed as `WireFormat.decoder()` parses it.
    private mutating func readDate() -> Date? {
        readString().flatMap(WireFormat.parseTimestamp)
    }

    /// `null` as nil in `target`, or a value read by `read`; false for anything else.
    private mutating func readOptional<Value>(into target: inout Value?, _ read: (inout JSONReader) -> Value?) -> Bool {
        if readLiteral(Literal.null) { target = nil; return true }
        target = read(&self)
        return target != nil
    }

    // MARK: Objects

    /// An object of `Member`'s keys, each value read by `value`. Unknown and duplicate
    /// keys are refused: Foundation ignores the one and keeps the first of the other,
    /// and either may hide a key that is equal as a String but not byte for byte.
    private mutating func readMembers<Member>(_ names: MemberNames<Member>, _ value: (inout JSONReader, Member) -> Bool) -> Bool {
        var seen: UInt64 = 0
        var next = 0
        return readObject(key: { names.position(of: $0, hint: next) }) { reader, position in
            let bit: UInt64 = 1 << UInt64(position)
            guard seen & bit == 0 else { return false }
            seen |= bit
            next = position + 1
            return value(&reader, names[position])
        }
    }

    /// `{`, then for each member its key made by `key` and its value read by `value`, then `}`.
    private mutating func readObject<Key>(key: (UnsafeBufferPointer<UInt8>) -> Key?, value: (inout JSONReader, Key) -> Bool) -> Bool {
        guard consume(.openBrace), enter() else { return false }
        defer { depth -= 1 }
        if consume(.closeBrace) { return true }
        repeat {
            guard peek() == .quote, let name = readStringBytes(key), consume(.colon), value(&self, name) else { return false }
        } while consume(.comma)
        return consume(.closeBrace)
    }

    private mutating func enter() -> Bool {
        guard depth < maximumNesting else { return false }
        depth += 1
        return true
    }

    // MARK: Values

    /// Skips one value if it is JSON by RFC 8259's grammar, making nothing: the check
    /// for documents the reader leaves to Foundation, which is more lenient. Nesting
    /// has no limit here (the open containers are a stack, not a recursion), and a
    /// leading UTF-8 byte order mark is skipped, as the RFC lets a parser do; what
    /// the grammar allows but Foundation refuses (invalid UTF-8, numbers out of
    /// range, too deep a nesting) is Foundation's to refuse. Lone surrogates, which
    /// both refuse, are refused here.
    mutating func skipStrictValue() -> Bool {
        if index == 0, bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        var closers: [UInt8] = []  // of the containers open, innermost last
        var names: [Set<String>] = []  // of the objects open, innermost last
        func skipKey(_ reader: inout JSONReader) -> Bool {
            // A name that is not UTF-8 is nil here, and Foundation's to refuse.
            guard reader.peek() == .quote, let name = reader.readStringBytes({ .some(JSONReader.string(from: $0)) }) else { return false }
            if let name, !names[names.count - 1].insert(name).inserted {
                reader.duplicateMember = name
                return false
            }
            return reader.consume(.colon)
        }
        while true {
            // A value, or the start of a container and its first member.
            guard let next = peek() else { return false }
            switch next {
            case .openBrace:
                index += 1
                deepestNesting = max(deepestNesting, closers.count + 1)
                if !consume(.closeBrace) {
                    names.append([])
                    guard skipKey(&self) else { return false }
                    closers.append(.closeBrace)
                    continue
                }
            case .openBracket:
                index += 1
                deepestNesting = max(deepestNesting, closers.count + 1)
                if !consume(.closeBracket) {
                    closers.append(.closeBracket)
                    continue
                }
            case .quote:
                guard readStringBytes({ _ in true }) != nil else { return false }
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                guard readBool() != nil else { return false }
            case UInt8(ascii: "n"):
                guard readLiteral(Literal.null) else { return false }
            case .minus, .zero...UInt8(ascii: "9"):
                guard scanNumber() != nil else { return false }
            default:
                return false
            }
            // After a value: a comma and the next member, or the ends of containers.
            while let closer = closers.last {
                if consume(.comma) {
                    if closer == .closeBrace, !skipKey(&self) { return false }
                    break
                }
                guard consume(closer) else { return false }
                closers.removeLast()
                if closer == .closeBrace { names.removeLast() }
            }
            if closers.isEmpty { return true }
        }
    }

    /// Any JSON value, as `JSONValue.init(from:)` decodes it.
    mutating func readValue() -> JSONValue? {
        guard let next = peek() else { return nil }
        switch next {
        case .quote:
            return readString().map(JSONValue.string)
        case .openBrace:
            var members: [String: JSONValue] = [:]
            let complete = readObject(key: JSONReader.string(from:)) { reader, key in
                // A duplicate (also one equal only as a String): the caller decides.
                guard let member = reader.readValue() else { return false }
                guard members.updateValue(member, forKey: key) == nil else {
                    reader.duplicateMember = key
                    return false
                }
                return true
            }
            return complete ? .object(members) : nil
        case .openBracket:
            index += 1
            guard enter() else { return nil }
            defer { depth -= 1 }
            var elements: [JSONValue] = []
            if consume(.closeBracket) { return .array(elements) }
            repeat {
                guard let element = readValue() else { return nil }
                elements.append(element)
            } while consume(.comma)
            return consume(.closeBracket) ? .array(elements) : nil
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            return readBool().map(JSONValue.bool)
        case UInt8(ascii: "n"):
            return readLiteral(Literal.null) ? .null : nil
        case .minus, .zero...UInt8(ascii: "9"):
            return readDouble().map(JSONValue.number)
        default:
            return nil
        }
    }

    private mutating func readBool() -> Bool? {
        if readLiteral(Literal.true) { return true }
        if readLiteral(Literal.false) { return false }
        return nil
    }

    private mutating func readLiteral(_ literal: StaticString) -> Bool {
        skipWhitespace()
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count, memcmp(bytes.baseAddress! + index, literal.utf8Start, count) == 0 else { return false }
        index += count
        return true
    }

    // MARK: Numbers

    /// A number checked against RFC 8259's grammar (`-? int frac? exp?`): its bytes
    /// and whether it is a plain integer (no fraction, no exponent).
    private mutating func scanNumber() -> (text: Range<Int>, isInteger: Bool)? {
        skipWhitespace()
        let start = index
        func digits(_ reader: inout JSONReader) -> Int {
            let first = reader.index
            while reader.index < reader.bytes.count, (.zero...UInt8(ascii: "9")).contains(reader.bytes[reader.index]) { reader.index += 1 }
            return reader.index - first
        }
        if index < bytes.count, bytes[index] == .minus { index += 1 }
        guard index < bytes.count else { return nil }
        if bytes[index] == .zero {
            index += 1  // no leading zeros: "01" stops after the 0, and the caller refuses the 1
        } else {
            guard digits(&self) > 0 else { return nil }
        }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { return nil }
            isInteger = false
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == .plus || bytes[index] == .minus { index += 1 }
            guard digits(&self) > 0 else { return nil }
            isInteger = false
        }
        return (start..<index, isInteger)
    }

    /// An `Int` member: plain integer text only. Foundation also accepts `1.0` and
    /// `1e2` for an Int, by rules of its own; those go to it.
    private mutating func readInt() -> Int? {
        guard let (text, isInteger) = scanNumber(), isInteger else { return nil }
        var position = text.lowerBound
        let negative = bytes[position] == .minus
        if negative { position += 1 }
        var value = 0
        while position < text.upperBound {
            let digit = Int(bytes[position] &- .zero)
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            value = next
            position += 1
        }
        return value
    }

    /// A number for `JSONValue`, correctly rounded as Foundation's `strtod` rounds it.
    /// Numbers that overflow to infinity or underflow to zero make Foundation throw,
    /// so they go to it, and so do zeros with an exponent: Foundation's check for a
    /// true zero scans the last few bytes backwards and so refuses `0.000e5`.
    private mutating func readDouble() -> Double? {
        guard let (text, isInteger) = scanNumber() else { return nil }
        let negative = bytes[text.lowerBound] == .minus
        let digitCount = text.count - (negative ? 1 : 0)
        if isInteger, digitCount <= 15 {
            // Below 2^53: exact as an integer, no parsing of text needed.
            var value = 0
            for position in text.lowerBound + (negative ? 1 : 0)..<text.upperBound {
                value = value * 10 + Int(bytes[position] &- .zero)
            }
            return negative ? -Double(value) : Double(value)  // "-0" is -0.0, as strtod reads it
        }
        let string = String(decoding: UnsafeBufferPointer(rebasing: bytes[text]), as: UTF8.self)
        guard let value = Double(string), value.isFinite else { return nil }
        if value == 0 {
            // A true zero: no exponent, no nonzero digit.
            for position in text where bytes[position] | 0x20 == UInt8(ascii: "e") || (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[position]) {
                return nil
            }
        }
        return value
    }

    // MARK: Strings

    private mutating func readString() -> String? {
        guard peek() == .quote else { return nil }
        return readStringBytes(JSONReader.string(from:))
    }

    /// `utf8` as a String if it is valid UTF-8, as Foundation requires. (Faster than
    /// the generic `String(validating:as:)`: `String(decoding:as:)` repairs invalid
    /// input, and a repaired string never has the input's bytes.)
    private static func string(from utf8: UnsafeBufferPointer<UInt8>) -> String? {
        let string = String(decoding: utf8, as: UTF8.self)
        var copy = string
        let unchanged = copy.withUTF8 { $0.count == utf8.count && (utf8.isEmpty || memcmp($0.baseAddress!, utf8.baseAddress!, utf8.count) == 0) }
        return unchanged ? string : nil
    }

    /// A string's unescaped UTF-8 bytes, handed to `body` (nil from it is passed on).
    /// The bytes are the input itself when the string has no escapes, else `scratch`.
    /// Raw control characters, unknown escapes and lone surrogates are refused;
    /// invalid UTF-8 is left for `body` to refuse.
    private mutating func readStringBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result?) -> Result? {
        index += 1  // the opening quote
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == .quote {
                index += 1
                return body(UnsafeBufferPointer(rebasing: bytes[start..<index - 1]))
            }
            if byte == .backslash { break }
            guard byte >= 0x20 else { return nil }
            index += 1
        }
        guard index < bytes.count else { return nil }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case .quote:
                return scratch.withUnsafeBufferPointer(body)
            case .backslash:
                guard index < bytes.count else { return nil }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case .quote, .backslash, .slash: scratch.append(escaped)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    guard let scalar = readEscapedScalar() else { return nil }
                    UTF8.encode(scalar) { scratch.append($0) }
                default:
                    return nil
                }
            default:
                guard byte >= 0x20 else { return nil }
                scratch.append(byte)
            }
        }
        return nil
    }

    /// The scalar of `XXXX` after `\u`, or of a surrogate pair `XXXX\uXXXX`.
    private mutating func readEscapedScalar() -> Unicode.Scalar? {
        guard let unit = readHex4() else { return nil }
        switch unit {
        case 0xD800...0xDBFF:
            guard bytes.count - index >= 2, bytes[index] == .backslash, bytes[index + 1] == UInt8(ascii: "u") else { return nil }
            index += 2
            guard let low = readHex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
            return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
        case 0xDC00...0xDFFF:
            return nil
        default:
            return Unicode.Scalar(unit)
        }
    }

    private mutating func readHex4() -> UInt32? {
        guard bytes.count - index >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case .zero...UInt8(ascii: "9"): digit = byte - .zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    // MARK: Whitespace and punctuation

    /// Skips JSON's four whitespace bytes (space, tab, line feed, carriage return).
    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// The next byte after whitespace, not consumed.
    private mutating func peek() -> UInt8? {
        skipWhitespace()
        return index < bytes.count ? bytes[index] : nil
    }

    /// Consumes `byte` if it comes next after whitespace.
    private mutating func consume(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        index += 1
        return true
    }
}

private enum Literal {
    static let null: StaticString = "null"
    static let `true`: StaticString = "true"
    static let `false`: StaticString = "false"
}

private extension UInt8 {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let zero = UInt8(ascii: "0")
}
