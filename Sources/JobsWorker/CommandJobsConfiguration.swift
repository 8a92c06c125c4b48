import Foundation
import JobsCore
import Yams

/// The command job types of one configuration file, checked and ready to
/// register (``JobRegistry/register(commandJobs:)``). The format is described
/// in docs/command-jobs.md.
public struct CommandJobsConfiguration: Sendable {
    /// The file it was read from, for messages.
    public var source: String
    public var jobs: [CommandJobSpec]

    public init(source: String, jobs: [CommandJobSpec]) {
        self.source = source
        self.jobs = jobs
    }

    /// Reads and checks the file at `path`: JSON if its name ends in `.json`,
    /// YAML otherwise. Executable names are looked up on `environment`'s
    /// `PATH`, and the variables a job type inherits come from `environment`.
    ///
    /// - Throws: ``CommandJobsConfigurationError`` naming the file, the entry
    ///   at fault and what is wrong with it.
    public static func load(
        contentsOf path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CommandJobsConfigurationError) -> CommandJobsConfiguration {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandJobsConfigurationError(file: path, entry: nil, problem: "does not exist")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CommandJobsConfigurationError(file: path, entry: nil, problem: "can't be read: \(error.localizedDescription)")
        }
        let format: Format = path.lowercased().hasSuffix(".json") ? .json : .yaml
        return try parse(text, format: format, source: path, environment: environment)
    }

    public enum Format: Sendable {
        case yaml, json

        var name: String { self == .json ? "JSON" : "YAML" }
    }

    /// Foundation's parse errors say where in their debug description; Yams's
    /// errors say it in their description.
    private static func message(of error: any Error) -> String {
        let nsError = error as NSError
        if nsError.domain == NSCocoaErrorDomain, let detail = nsError.userInfo[NSDebugDescriptionErrorKey] as? String {
            return detail
        }
        return String(describing: error)
    }

    /// Parses and checks configuration text; see ``load(contentsOf:environment:)``.
    public static func parse(
        _ text: String, format: Format, source: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(CommandJobsConfigurationError) -> CommandJobsConfiguration {
        let file: CommandJobsFile
        do {
            file = try decode(CommandJobsFile.self, from: text, format: format)
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
            // A syntax error: the parser's own message says where, when it knows.
            throw CommandJobsConfigurationError(file: source, entry: nil, problem: "is not valid \(format.name): "
                                                + (context.underlyingError.map(Self.message(of:)) ?? context.debugDescription))
        } catch let error as DecodingError {
            let names = (try? decode(EntryNames.self, from: text, format: format))?.jobs ?? []
            throw CommandJobsConfigurationError(decoding: error, file: source, names: names.map(\.name))
        } catch {
            throw CommandJobsConfigurationError(file: source, entry: nil, problem: "is not valid \(format.name): \(Self.message(of: error))")
        }
        var jobs: [CommandJobSpec] = []
        for (index, entry) in file.jobs.enumerated() {
            let label = CommandJobsConfigurationError.entryLabel(index: index, name: entry.name)
            if jobs.contains(where: { $0.name == entry.name }) {
                throw CommandJobsConfigurationError(file: source, entry: label, problem: "name: \"\(entry.name)\" is declared twice")
            }
            do {
                jobs.append(try entry.spec(environment: environment))
            } catch {
                throw CommandJobsConfigurationError(file: source, entry: label, problem: error.description)
            }
        }
        return CommandJobsConfiguration(source: source, jobs: jobs)
    }

    private static func decode<T: Decodable>(_ type: T.Type, from text: String, format: Format) throws -> T {
        switch format {
        case .json: try JSONDecoder().decode(type, from: Data(text.utf8))
        case .yaml: try YAMLDecoder().decode(type, from: text)
        }
    }
}

/// Why a command jobs file was refused: the file, the entry at fault (when
/// one is), and what is wrong, e.g.
/// `command jobs file /etc/jobs.yaml: jobs[1] "resize": params.width.type: "int" is not a param type (...)`.
public struct CommandJobsConfigurationError: Error, Sendable, Hashable, CustomStringConvertible, LocalizedError {
    public let file: String
    /// `jobs[<index>] "<name>"`, counting from 0; `nil` for a problem of the whole file.
    public let entry: String?
    public let problem: String

    public var description: String {
        "command jobs file \(file): " + (entry.map { "\($0): " } ?? "") + problem
    }

    public var errorDescription: String? { description }

    init(file: String, entry: String?, problem: String) {
        self.file = file
        self.entry = entry
        self.problem = problem
    }

    static func entryLabel(index: Int, name: String?) -> String {
        "jobs[\(index)]" + (name.map { " \"\($0)\"" } ?? "")
    }

    /// Turns a decoding error into the entry it concerns and a readable path within it.
    init(decoding error: DecodingError, file: String, names: [String?]) {
        let (path, problem): ([any CodingKey], String) = switch error {
        case .typeMismatch(let type, let context):
            (context.codingPath, "must be \(Self.typeName(type))")
        case .valueNotFound(let type, let context):
            (context.codingPath, "must be \(Self.typeName(type)), not empty")
        case .keyNotFound(let key, let context):
            (context.codingPath + [key], "is required")
        case .dataCorrupted(let context):
            (context.codingPath, context.debugDescription
                + ((context.underlyingError).map { ": \($0.localizedDescription)" } ?? ""))
        @unknown default:
            ([], "\(error)")
        }
        var rest = path[...]
        var entry: String?
        if rest.first?.stringValue == "jobs", rest.count >= 2, let index = rest.dropFirst().first?.intValue {
            entry = Self.entryLabel(index: index, name: names.indices.contains(index) ? names[index] : nil)
            rest = rest.dropFirst(2)
        }
        let where_ = rest.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        let field = where_.hasPrefix(".") ? String(where_.dropFirst()) : where_
        self.init(file: file, entry: entry, problem: field.isEmpty ? problem : "\(field): \(problem)")
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is [String].Type: "a list of strings"
        case is [String: String].Type: "a map of strings"
        default:
            switch "\(type)" {
            case let name where name.hasPrefix("Array") || name == "Sequence": "a list"
            case let name where name.hasPrefix("Dictionary") || name == "Mapping": "a map"
            case let name: name
            }
        }
    }
}
