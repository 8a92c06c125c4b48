import ArgumentParser
import Foundation

/// Where the gateway's and worker's options come from: the command line, else
/// the option's `JOBS_` variable, else its default.
///
/// A value from either source that doesn't parse, or that is out of range, stops
/// the process with a usage error (exit 64) naming the option or variable and
/// the value. A typo in a deployment's environment used to be replaced by the
/// default without a word (`JOBS_PORT=abc` listened on 8080), and a number out
/// of range was clamped or wrapped (`--port 99999` listened on 34463).
public struct OptionValues: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// Text, taken as given: an empty variable is an empty value (an empty
    /// `JOBS_TOPIC_PREFIX` means topics without a prefix).
    public func text(_ given: String?, _ variable: String) -> String? {
        given ?? environment[variable]
    }

    /// Text that means nothing when empty (a broker list, a group, a worker id):
    /// refused if empty or blank, rather than taken as given or replaced by the
    /// default. `nil` if neither the command line nor the variable has one.
    public func nonEmptyText(_ given: String?, _ option: String, _ variable: String) throws -> String? {
        guard let (text, source) = sourced(given, option, variable) else { return nil }
        guard !text.allSatisfy(\.isWhitespace) else { throw ValidationError("\(source) must not be empty") }
        return text
    }

    /// A folder, refused unless it exists: a mistyped one would serve nothing,
    /// with nothing said. `nil` if neither the command line nor the variable has one.
    public func existingDirectory(_ given: String?, _ option: String, _ variable: String) throws -> String? {
        guard let (path, source) = sourced(given, option, variable) else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("\(source): '\(path)' is not an existing directory")
        }
        return path
    }

    /// The topic-name prefix, else `fallback`: Kafka allows only ASCII letters,
    /// digits, `.`, `_` and `-` in a topic name, and 249 characters (the longest
    /// suffix, `.commands`, takes 9). Empty means topics without a prefix.
    public func topicPrefix(_ given: String?, _ option: String, _ variable: String, default fallback: String) throws -> String {
        let (text, source) = sourced(given, option, variable) ?? (fallback, option)
        let allowed = text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
        guard allowed, text.count <= 240 else {
            throw ValidationError("\(source): '\(text)' is not a topic prefix: at most 240 of A-Z a-z 0-9 . _ -")
        }
        return text
    }

    /// `key=value` settings of a repeatable option (`--kafka linger.ms=1`): a
    /// setting without `=` or without a key is a usage error naming the option.
    public func assignments(_ given: [String], _ option: String) throws -> [String: String] {
        var settings: [String: String] = [:]
        for assignment in given {
            guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                throw ValidationError("\(option): '\(assignment)' is not key=value")
            }
            settings[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
        }
        return settings
    }

    /// A value from the command line or the variable, or `nil` if neither has one.
    public func value<Value: OptionValue>(
        _ given: Value?, _ option: String, _ variable: String, _ bounds: Bounds<Value> = .any
    ) throws -> Value? {
        if let given {
            try bounds.check(given, source: option)
            return given
        }
        guard let text = environment[variable] else { return nil }
        guard let parsed = Value(argument: text) else {
            throw ValidationError("\(variable): '\(text)' is not \(Value.kind)")
        }
        try bounds.check(parsed, source: variable)
        return parsed
    }

    /// A value from the command line or the variable, else `fallback`.
    public func value<Value: OptionValue>(
        _ given: Value?, _ option: String, _ variable: String, default fallback: Value, _ bounds: Bounds<Value> = .any
    ) throws -> Value {
        try value(given, option, variable, bounds) ?? fallback
    }

    /// One of a few words (a log level), from the command line or the variable, else `fallback`.
    public func choice(
        _ given: String?, _ option: String, _ variable: String, default fallback: String, among choices: [String]
    ) throws -> String {
        let (text, source) = sourced(given, option, variable) ?? (fallback, option)
        guard choices.contains(text) else {
            throw ValidationError("\(source): '\(text)' is not one of \(choices.joined(separator: ", "))")
        }
        return text
    }

    /// The text given and where it came from, the option or the variable, for
    /// an error to name; `nil` if neither has one.
    private func sourced(_ given: String?, _ option: String, _ variable: String) -> (text: String, source: String)? {
        given.map { ($0, option) } ?? environment[variable].map { ($0, variable) }
    }

    /// The items of a list variable, separated by commas or whitespace.
    public func list(_ variable: String) -> [String] {
        (environment[variable] ?? "").split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
    }
}

/// A type an option's value can have, with the words an error uses for it.
public protocol OptionValue: ExpressibleByArgument, Sendable {
    /// What a valid value is, after "is not": "a valid integer".
    static var kind: String { get }
    /// The value as a person would type it.
    var optionText: String { get }
}

extension OptionValue {
    public var optionText: String { "\(self)" }
}

extension Int: OptionValue {
    public static var kind: String { "a valid integer" }
}

extension Double: OptionValue {
    public static var kind: String { "a valid number" }
    /// `168`, not `168.0`.
    public var optionText: String {
        rounded() == self && abs(self) < 1e15 ? String(Int(self)) : "\(self)"
    }
}

extension Bool: OptionValue {
    public static var kind: String { "true or false" }
}

/// The values an option accepts, and how an error says so.
public struct Bounds<Value: OptionValue>: Sendable {
    let contains: @Sendable (Value) -> Bool
    /// After "must be": "at least 1", "between 0 and 65535".
    let wording: String

    /// Refuses `value` unless it is within bounds, naming `source` (`--port`, `JOBS_PORT`).
    public func check(_ value: Value, source: String) throws {
        guard contains(value) else { throw ValidationError("\(source) must be \(wording), not \(value.optionText)") }
    }

    public static var any: Bounds { Bounds(contains: { _ in true }, wording: "") }
}

extension Bounds where Value: Comparable {
    public static func atLeast(_ lowest: Value) -> Bounds {
        Bounds(contains: { $0 >= lowest }, wording: "at least \(lowest.optionText)")
    }

    public static func between(_ lowest: Value, _ highest: Value) -> Bounds {
        Bounds(contains: { $0 >= lowest && $0 <= highest }, wording: "between \(lowest.optionText) and \(highest.optionText)")
    }

    /// More than `lowest` (a duration of zero), at most `highest`; refuses NaN.
    public static func above(_ lowest: Value, atMost highest: Value) -> Bounds {
        Bounds(contains: { $0 > lowest && $0 <= highest }, wording: "more than \(lowest.optionText) and at most \(highest.optionText)")
    }
}
