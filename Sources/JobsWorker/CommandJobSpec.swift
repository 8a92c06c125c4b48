import Foundation
import JobsCore

/// One command job type: which program a job of this type runs, how its params
/// become that program's arguments, and the limits it runs under.
///
/// Usually read from a configuration file (``CommandJobsConfiguration``); the
/// initializer checks everything that doesn't touch the file system.
public struct CommandJobSpec: Sendable {
    public var name: String
    public var summary: String
    /// An absolute path: names are resolved on `PATH` when the file is loaded,
    /// so what runs can't change with a job's environment.
    public var executable: String
    /// argv after argv[0], one template per entry.
    public var arguments: [ArgumentTemplate]
    /// Published to the gateway, which refuses bad params before a job is
    /// queued; the worker checks them again before it runs the command.
    public var params: ParamsSchema
    /// Values of optional params a job left out.
    public var defaults: [String: JSONValue]
    /// Where the command runs; `nil` for the worker's own working directory.
    public var workingDirectory: String?
    /// The command's whole environment (nothing else of the worker's is passed),
    /// to which each run adds `JOBS_JOB_ID`, `JOBS_JOB_TYPE` and `JOBS_ATTEMPT`.
    public var environment: [String: String]
    /// Attempts, time limit and the most runs at once on one worker.
    public var options: JobOptions
    /// How long a cancelled command has between SIGTERM and SIGKILL.
    public var killGracePeriod: Duration
    /// How much of each output stream the result keeps: the last lines, at
    /// most this many, of at most this many bytes together.
    public var outputTailLines: Int
    public var outputTailBytes: Int

    /// Most lines and bytes a result may keep of each stream, so a command's
    /// result stays far below the worker's result size limit (64 KiB by default).
    public static let maxOutputTailLines = 1000
    public static let maxOutputTailBytes = 16 * 1024
    /// The grace period between SIGTERM and SIGKILL unless one is given.
    public static let defaultKillGracePeriod = Duration.seconds(5)

    public init(
        name: String, summary: String = "", executable: String, arguments: [String] = [],
        params: ParamsSchema = ParamsSchema(), defaults: [String: JSONValue] = [:],
        workingDirectory: String? = nil, environment: [String: String] = [:], options: JobOptions = JobOptions(),
        killGracePeriod: Duration = CommandJobSpec.defaultKillGracePeriod,
        outputTailLines: Int = 50, outputTailBytes: Int = 8 * 1024
    ) throws(CommandJobSpecError) {
        guard JobTypeDescriptor.isValidName(name) else {
            throw CommandJobSpecError("name: \"\(name)\" is not a job type name (\(JobTypeDescriptor.nameRule))")
        }
        guard executable.hasPrefix("/") else {
            throw CommandJobSpecError("executable: \"\(executable)\" must be an absolute path")
        }
        var templates: [ArgumentTemplate] = []
        for (index, argument) in arguments.enumerated() {
            do {
                templates.append(try ArgumentTemplate(parsing: argument))
            } catch {
                throw CommandJobSpecError("arguments[\(index)] \"\(argument)\": \(error)")
            }
        }
        let declared = Set(params.fields.map(\.name))
        for field in params.fields where !ArgumentTemplate.isParamName(field.name) {
            throw CommandJobSpecError("params.\(field.name): a param name is a letter or _ then letters, digits or _")
        }
        for (index, template) in templates.enumerated() {
            if let unknown = template.paramNames.subtracting(declared).sorted().first {
                throw CommandJobSpecError("arguments[\(index)] \"\(template)\": {\(unknown)} is not a declared param"
                                          + (declared.isEmpty ? "" : " (declared: \(declared.sorted().joined(separator: ", ")))"))
            }
        }
        let interpreter = (executable as NSString).lastPathComponent
        switch Self.placeholderInInlineCode(executable: executable, arguments: templates) {
        case .inCode(let index)?:
            throw CommandJobSpecError("arguments[\(index)] \"\(templates[index])\": a placeholder inside code for "
                + "\(interpreter) to run would let a param inject commands; "
                + "pass the value as an argument of its own and refer to it from the code (\"$1\" in a shell)")
        case .optionAfterCode(let index)?:
            throw CommandJobSpecError("arguments[\(index)] \"\(templates[index])\": \(interpreter) reads options after its code, "
                + "so a param beginning with - there could add code; put \"--\" before the arguments that hold params")
        case nil:
            break
        }
        for (param, value) in defaults.sorted(by: { $0.key < $1.key }) {
            guard let field = params.fields.first(where: { $0.name == param }) else {
                throw CommandJobSpecError("params.\(param): a default for a param that isn't declared")
            }
            let problems = ParamsSchema([field]).violations(of: [param: value])
            if let problem = problems.first {
                throw CommandJobSpecError("params.\(param).default: \(problem.detail)")
            }
        }
        for (key, value) in environment {
            guard !key.isEmpty, !key.contains("="), !key.contains("\0"), !value.contains("\0") else {
                throw CommandJobSpecError("environment: \"\(key)\" is not a valid variable (no empty name, no = in a name, no NUL)")
            }
        }
        if let workingDirectory, !workingDirectory.hasPrefix("/") {
            throw CommandJobSpecError("workingDirectory: \"\(workingDirectory)\" must be an absolute path")
        }
        guard killGracePeriod >= .zero else { throw CommandJobSpecError("killGracePeriod: must not be negative") }
        guard (0...Self.maxOutputTailLines).contains(outputTailLines) else {
            throw CommandJobSpecError("outputTailLines: must be 0 to \(Self.maxOutputTailLines)")
        }
        guard (0...Self.maxOutputTailBytes).contains(outputTailBytes) else {
            throw CommandJobSpecError("outputTailBytes: must be 0 to \(Self.maxOutputTailBytes)")
        }
        self.name = name
        self.summary = summary
        self.executable = executable
        self.arguments = templates
        self.params = params
        self.defaults = defaults
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.options = options
        self.killGracePeriod = killGracePeriod
        self.outputTailLines = outputTailLines
        self.outputTailBytes = outputTailBytes
    }

    /// The argv (after argv[0]) for a job's params, defaults filled in. Each
    /// template yields exactly one argument, or none when it mentions an
    /// optional param that has no value.
    ///
    /// - Throws: `JobError` `invalid_params` when the params don't fit the
    ///   schema, or a value can't be an argument (it holds a NUL byte).
    public func argv(for params: JSONValue) throws(JobError) -> [String] {
        guard var values = params == .null ? [:] : params.objectValue else {
            throw JobError(code: "invalid_params", message: "/params: must be an object, not \(params.typeName)")
        }
        for (name, value) in defaults where values[name] == nil || values[name] == .null {
            values[name] = value
        }
        let violations = self.params.violations(of: .object(values))
        guard violations.isEmpty else {
            throw JobError(code: "invalid_params", message: violations.map(\.description).joined(separator: "; "))
        }
        var texts: [String: String] = [:]
        for (name, value) in values where value != .null {
            guard let text = value.argumentText else {
                throw JobError(code: "invalid_params", message: "/params/\(name): a \(value.typeName) can't be an argument")
            }
            // C strings end at NUL: such a value would be cut short in argv.
            guard !text.utf8.contains(0) else {
                throw JobError(code: "invalid_params", message: "/params/\(name): must not contain a NUL character")
            }
            texts[name] = text
        }
        return arguments.compactMap { $0.render(texts) }
    }

    /// How an interpreter is told to run code given on its command line.
    struct InlineCodeOptions: Sendable {
        /// Letters of short options that take code: the code follows in the
        /// same argument (`-cprint(1)`) or is the next argument that is not an
        /// option (`-c`, `-ec`, `-le`, `-uc`).
        var letters: Set<Character>
        /// Long options that take code: `--eval code` or `--eval=code`.
        var longOptions: Set<String> = []
        /// Letters of short options whose value is the next argument (a
        /// shell's `-o errexit`): that argument is skipped on the way to the code.
        var valueLetters: Set<Character> = []
        /// Whether `+e`, `+o name` are options too, as in a POSIX shell.
        var plusOptions = false
        /// Whether options are still read after the code (`perl -e code -e more`,
        /// `node -e code --eval=more`) until a `--`: an argument there that
        /// begins with a param could then be another option, and more code.
        var optionsAfterCode = false

        static let shell = InlineCodeOptions(letters: ["c"], valueLetters: ["o", "O"], plusOptions: true)
    }

    /// The interpreters that run code from an argument, by executable name (a
    /// prefix followed by no letter, so `python3.12` counts).
    static let inlineCodeOptions: [(interpreter: String, options: InlineCodeOptions)] = [
        ("sh", .shell), ("bash", .shell), ("dash", .shell), ("zsh", .shell), ("ksh", .shell), ("mksh", .shell),
        ("ash", .shell), ("yash", .shell), ("busybox", .shell),
        ("csh", .init(letters: ["c"])), ("tcsh", .init(letters: ["c"])),
        ("fish", .init(letters: ["c", "C"], longOptions: ["--command", "--init-command"])),
        ("python", .init(letters: ["c"])), ("pypy", .init(letters: ["c"])),
        ("perl", .init(letters: ["e", "E"], optionsAfterCode: true)), ("ruby", .init(letters: ["e"], optionsAfterCode: true)),
        ("node", .init(letters: ["e", "p"], longOptions: ["--eval", "--print"], optionsAfterCode: true)),
        ("nodejs", .init(letters: ["e", "p"], longOptions: ["--eval", "--print"], optionsAfterCode: true)),
        ("bun", .init(letters: ["e", "p"], longOptions: ["--eval", "--print"], optionsAfterCode: true)),
        ("php", .init(letters: ["r", "B", "R", "E"],
                      longOptions: ["--run", "--process-begin", "--process-code", "--process-end"], optionsAfterCode: true)),
        ("lua", .init(letters: ["e"], optionsAfterCode: true)), ("Rscript", .init(letters: ["e"], optionsAfterCode: true)),
        ("osascript", .init(letters: ["e"], optionsAfterCode: true)),
    ]

    /// Where a placeholder would let a param become code.
    enum UnsafePlaceholder: Equatable {
        /// In the code, or in an option on the way to it.
        case inCode(Int)
        /// Where the interpreter may still take it for an option, after its code.
        case optionAfterCode(Int)
    }

    /// The argument that is code for the executable to run (a shell's `-c`
    /// script, `python -c`, `perl -e`, …) and holds a placeholder: a param
    /// there is code, the one thing it must never be.
    ///
    /// Interpreters read options the way getopt does, so the code letter may
    /// sit anywhere in a cluster (`-ec`, `-le`, `-uc`), and the code is the
    /// first argument after it that is not an option: further options
    /// (`-c -e`), a shell option's value (`-o errexit`) and a `--` that ends
    /// options may come first. A placeholder in any of those is refused too:
    /// telling them from the code would take the interpreter's own parser, and
    /// erring this way refuses a file rather than letting a param be code.
    /// Arguments after the code (a shell's `$0`, `$1`, …) may hold placeholders;
    /// for an interpreter that reads options after its code (perl, node, …) one
    /// may not begin with a placeholder until a `--` has ended the options.
    static func placeholderInInlineCode(executable: String, arguments: [ArgumentTemplate]) -> UnsafePlaceholder? {
        let name = (executable as NSString).lastPathComponent
        guard let options = inlineCodeOptions.first(where: { name == $0.interpreter || name.hasPrefix($0.interpreter)
                                                       && !name.dropFirst($0.interpreter.count).contains(where: \.isLetter) })?.options else {
            return nil
        }
        // Set from a code option until the code argument has been passed.
        var awaitingCode = false
        // Set once code was given to an interpreter that reads options after it, until `--`.
        var optionsFollowCode = false
        // Values of options such as `-o` still to be skipped before the code.
        var pendingValues = 0
        for (index, template) in arguments.enumerated() {
            let text = template.description
            let hasPlaceholder = !template.paramNames.isEmpty
            let letters = optionLetters(text, plusOptions: options.plusOptions)
            if awaitingCode {
                if hasPlaceholder { return .inCode(index) }
                if let letters {
                    pendingValues += letters.filter(options.valueLetters.contains).count
                } else if text.count > 1, text.hasPrefix("-") || (options.plusOptions && text.hasPrefix("+")) {
                    // `--`, `--name`, `--name=value`, `-Wall`: options; the code is still to come.
                } else if pendingValues > 0 {
                    pendingValues -= 1
                } else {
                    awaitingCode = false // This was the code.
                    optionsFollowCode = options.optionsAfterCode
                }
                continue
            }
            if optionsFollowCode {
                if text == "--" {
                    optionsFollowCode = false
                } else if text.hasPrefix("{"), !text.hasPrefix("{{"), hasPlaceholder {
                    return .optionAfterCode(index) // A value beginning with `-` would be an option, perhaps more code.
                }
            }
            if options.longOptions.contains(text) {
                awaitingCode = true
            } else if let equals = text.firstIndex(of: "="), options.longOptions.contains(String(text[..<equals])) {
                if hasPlaceholder { return .inCode(index) }
            } else if let letters, letters.contains(where: options.letters.contains) {
                awaitingCode = true
                pendingValues = letters.filter(options.valueLetters.contains).count
            } else if text.hasPrefix("-"), !text.hasPrefix("--"),
                      text.dropFirst().prefix(while: { $0.isASCII && $0.isLetter }).contains(where: options.letters.contains) {
                // Code in the same argument as its option: `-cprint(1)`, `-e{x}`.
                if hasPlaceholder { return .inCode(index) }
            }
        }
        return nil
    }

    /// The letters of a short-option cluster (`-ec`, `+o` for a shell): one
    /// `-` (or `+`) and letters only; `nil` for anything else.
    private static func optionLetters(_ text: String, plusOptions: Bool) -> Substring? {
        guard let first = text.first, first == "-" || (plusOptions && first == "+") else { return nil }
        let letters = text.dropFirst()
        guard !letters.isEmpty, letters.allSatisfy({ $0.isASCII && $0.isLetter }) else { return nil }
        return letters
    }
}

/// Why a ``CommandJobSpec`` was refused: which setting, and what is wrong with it.
public struct CommandJobSpecError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
