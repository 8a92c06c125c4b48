import Foundation
import JobsCore

// The command jobs file as written: decoded strictly (an unknown key is an
// error, so a misspelt limit is never silently ignored), then checked and
// turned into `CommandJobSpec`s.

struct CommandJobsFile: Decodable {
    var jobs: [CommandJobEntry]

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case jobs
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        jobs = try decoder.container(keyedBy: CodingKeys.self).decode([CommandJobEntry].self, forKey: .jobs)
    }
}

struct CommandJobEntry: Decodable {
    var name: String
    var summary: String?
    var executable: String
    var arguments: [String]?
    var params: [String: CommandParamEntry]?
    var timeout: ConfigDuration?
    var killGracePeriod: ConfigDuration?
    var workingDirectory: String?
    var environment: [String: String]?
    var inheritEnvironment: [String]?
    var maxConcurrent: Int?
    var maxAttempts: Int?
    var retryBackoff: ConfigDuration?
    var outputTailLines: Int?
    var outputTailBytes: Int?

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case name, summary, executable, arguments, params, timeout, killGracePeriod, workingDirectory
        case environment, inheritEnvironment, maxConcurrent, maxAttempts, retryBackoff, outputTailLines, outputTailBytes
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        summary = try container.decodeIfPresent(String.self, forKey: .summary)
        executable = try container.decode(String.self, forKey: .executable)
        arguments = try container.decodeIfPresent([String].self, forKey: .arguments)
        params = try container.decodeIfPresent([String: CommandParamEntry].self, forKey: .params)
        timeout = try container.decodeIfPresent(ConfigDuration.self, forKey: .timeout)
        killGracePeriod = try container.decodeIfPresent(ConfigDuration.self, forKey: .killGracePeriod)
        workingDirectory = try container.decodeIfPresent(String.self, forKey: .workingDirectory)
        environment = try container.decodeIfPresent([String: String].self, forKey: .environment)
        inheritEnvironment = try container.decodeIfPresent([String].self, forKey: .inheritEnvironment)
        maxConcurrent = try container.decodeIfPresent(Int.self, forKey: .maxConcurrent)
        maxAttempts = try container.decodeIfPresent(Int.self, forKey: .maxAttempts)
        retryBackoff = try container.decodeIfPresent(ConfigDuration.self, forKey: .retryBackoff)
        outputTailLines = try container.decodeIfPresent(Int.self, forKey: .outputTailLines)
        outputTailBytes = try container.decodeIfPresent(Int.self, forKey: .outputTailBytes)
    }

    /// Checks the entry against the file system and builds its spec.
    func spec(environment worker: [String: String]) throws(CommandJobSpecError) -> CommandJobSpec {
        let executable = try Self.resolve(executable: executable, path: worker["PATH"])
        if let workingDirectory {
            var isDirectory: ObjCBool = false
            guard workingDirectory.hasPrefix("/"),
                  FileManager.default.fileExists(atPath: workingDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CommandJobSpecError("workingDirectory: \"\(workingDirectory)\" is not an existing directory given by an absolute path")
            }
        }
        var fields: [ParamsSchema.Field] = []
        var defaults: [String: JSONValue] = [:]
        for (name, param) in (params ?? [:]).sorted(by: { $0.key < $1.key }) {
            do {
                fields.append(try param.field(named: name))
            } catch {
                throw CommandJobSpecError("params.\(name).\(error.description)")
            }
            if let value = param.default { defaults[name] = value }
        }
        for (limit, value) in [("maxConcurrent", maxConcurrent), ("maxAttempts", maxAttempts)] {
            if let value, value < 1 { throw CommandJobSpecError("\(limit): must be at least 1, not \(value)") }
        }
        for (setting, value) in [("timeout", timeout), ("retryBackoff", retryBackoff)] {
            if let value, value.duration <= .zero { throw CommandJobSpecError("\(setting): must be longer than 0") }
        }
        var options = JobOptions(maxAttempts: maxAttempts ?? 1, timeout: timeout?.duration, maxConcurrent: maxConcurrent)
        if let retryBackoff { options.initialBackoff = retryBackoff.duration }
        return try CommandJobSpec(
            name: name, summary: summary ?? "", executable: executable, arguments: arguments ?? [],
            params: ParamsSchema(fields), defaults: defaults, workingDirectory: workingDirectory,
            environment: try childEnvironment(worker: worker), options: options,
            killGracePeriod: killGracePeriod?.duration ?? CommandJobSpec.defaultKillGracePeriod,
            outputTailLines: outputTailLines ?? 50, outputTailBytes: outputTailBytes ?? 8 * 1024
        )
    }

    /// `PATH` and the names in `inheritEnvironment` from the worker, then the
    /// explicit `environment` over them; nothing else of the worker's.
    private func childEnvironment(worker: [String: String]) throws(CommandJobSpecError) -> [String: String] {
        var result: [String: String] = [:]
        for name in ["PATH"] + (inheritEnvironment ?? []) {
            guard !name.isEmpty, !name.contains("=") else {
                throw CommandJobSpecError("inheritEnvironment: \"\(name)\" is not a variable name")
            }
            if let value = worker[name] { result[name] = value }
        }
        result.merge(environment ?? [:]) { _, explicit in explicit }
        return result
    }

    /// An absolute path as it is, if it is an executable file; a bare name
    /// looked up on `path` now, once, so later changes to `PATH` don't matter.
    static func resolve(executable: String, path: String?) throws(CommandJobSpecError) -> String {
        let files = FileManager.default
        if executable.hasPrefix("/") {
            guard files.isExecutableFile(atPath: executable), !Self.isDirectory(executable) else {
                throw CommandJobSpecError("executable: \(executable) is not an executable file")
            }
            return executable
        }
        guard !executable.isEmpty, !executable.contains("/") else {
            throw CommandJobSpecError("executable: \"\(executable)\" must be an absolute path or a bare name to look up on PATH")
        }
        let directories = (path ?? "").split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        for directory in directories {
            let candidate = (directory as NSString).appendingPathComponent(executable)
            if files.isExecutableFile(atPath: candidate), !Self.isDirectory(candidate) { return candidate }
        }
        throw CommandJobSpecError("executable: \"\(executable)\" was not found on PATH (\(path ?? "unset"))")
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

struct CommandParamEntry: Decodable {
    var type: String
    var required: Bool?
    var pattern: String?
    var allowed: [String]?
    var maxLength: Int?
    var minimum: Double?
    var maximum: Double?
    var `default`: JSONValue?
    var description: String?

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case type, required, pattern, `enum`, maxLength, minimum, maximum, `default`, description
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        type = try container.decode(String.self, forKey: .type)
        required = try container.decodeIfPresent(Bool.self, forKey: .required)
        pattern = try container.decodeIfPresent(String.self, forKey: .pattern)
        allowed = try container.decodeIfPresent([String].self, forKey: .enum)
        maxLength = try container.decodeIfPresent(Int.self, forKey: .maxLength)
        minimum = try container.decodeIfPresent(Double.self, forKey: .minimum)
        maximum = try container.decodeIfPresent(Double.self, forKey: .maximum)
        `default` = try container.decodeIfPresent(JSONValue.self, forKey: .default)
        description = try container.decodeIfPresent(String.self, forKey: .description)
    }

    /// A string param without `maxLength` or `enum` gets this limit: argv has
    /// limits of its own, and a pattern is cheap to check only on short input.
    static let defaultMaxLength = 4096

    /// The schema field; the error names the setting at fault (after `params.<name>.`).
    func field(named name: String) throws(CommandJobSpecError) -> ParamsSchema.Field {
        func reject(_ setting: String, _ types: String) throws(CommandJobSpecError) {
            throw CommandJobSpecError("\(setting): only a \(types) param may have one")
        }
        let fieldType: ParamsSchema.FieldType
        switch type {
        case "string":
            if minimum != nil { try reject("minimum", "integer or number") }
            if maximum != nil { try reject("maximum", "integer or number") }
            if let maxLength, maxLength < 1 { throw CommandJobSpecError("maxLength: must be at least 1") }
            if let allowed, allowed.isEmpty { throw CommandJobSpecError("enum: must list at least one value") }
            if let pattern {
                do {
                    _ = try Regex(pattern)
                } catch {
                    throw CommandJobSpecError("pattern: \(pattern) is not a valid regular expression: \(error)")
                }
            }
            let limit = maxLength ?? (allowed == nil ? Self.defaultMaxLength : nil)
            fieldType = .string(maxLength: limit, allowed: allowed, pattern: pattern)
        case "integer":
            try rejectStringSettings()
            func whole(_ value: Double?, _ setting: String) throws(CommandJobSpecError) -> Int? {
                guard let value else { return nil }
                guard value.rounded() == value, abs(value) < 9.007e15 else {
                    throw CommandJobSpecError("\(setting): must be a whole number for an integer param")
                }
                return Int(value)
            }
            fieldType = .integer(minimum: try whole(minimum, "minimum"), maximum: try whole(maximum, "maximum"))
        case "number":
            try rejectStringSettings()
            fieldType = .number(minimum: minimum, maximum: maximum)
        case "boolean":
            try rejectStringSettings()
            if minimum != nil || maximum != nil { try reject(minimum != nil ? "minimum" : "maximum", "integer or number") }
            fieldType = .boolean
        default:
            throw CommandJobSpecError("type: \"\(type)\" is not a param type (string, integer, number or boolean)")
        }
        if let minimum, let maximum, minimum > maximum {
            throw CommandJobSpecError("minimum: \(minimum) is above maximum \(maximum)")
        }
        return ParamsSchema.Field(name, fieldType, required: required ?? false, summary: description ?? "")
    }

    private func rejectStringSettings() throws(CommandJobSpecError) {
        for (setting, present) in [("pattern", pattern != nil), ("enum", allowed != nil), ("maxLength", maxLength != nil)] where present {
            throw CommandJobSpecError("\(setting): only a string param may have one")
        }
    }
}

/// A duration as written in the file: a number of seconds (`30`, `0.5`) or a
/// number with a unit: `500ms`, `30s`, `10m`, `2h`.
struct ConfigDuration: Decodable {
    var duration: Duration

    /// A year: longer than any job should wait or run, and far inside the
    /// milliseconds an `Int64` holds (`1e300` seconds once stopped the process).
    static let maxMilliseconds: Double = 365 * 24 * 3_600_000

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            guard let parsed = Self.duration(milliseconds: seconds * 1000) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "must be a number of seconds from 0 to a year (8760h)")
            }
            duration = parsed
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = Self.parse(text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription: "\"\(text)\" is not a duration from 0 to a year (seconds, or a number with ms, s, m or h: 500ms, 30s, 10m, 2h)")
        }
        duration = parsed
    }

    static func parse(_ text: String) -> Duration? {
        let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  let value = Double(number) else { return nil }
            return duration(milliseconds: value * unit.milliseconds)
        }
        return nil
    }

    private static func duration(milliseconds: Double) -> Duration? {
        guard milliseconds.isFinite, (0...maxMilliseconds).contains(milliseconds) else { return nil }
        return .milliseconds(Int64(milliseconds.rounded()))
    }
}

/// Just the names of the entries, read leniently, to name the entry a
/// decoding error is about.
struct EntryNames: Decodable {
    struct Named: Decodable {
        var name: String?

        private enum CodingKeys: String, CodingKey {
            case name
        }

        init(from decoder: any Decoder) throws {
            name = try? decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .name)
        }
    }

    var jobs: [Named]
}

/// Any key, to list the keys a mapping holds.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Throws for the first key of this mapping that `Keys` doesn't list.
    fileprivate func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let container = try container(keyedBy: AnyKey.self)
        let known = Keys.allCases.map(\.stringValue)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [AnyKey(stringValue: unknown)],
                debugDescription: "unknown setting (known: \(known.joined(separator: ", ")))"
            ))
        }
    }
}
