import Foundation
import KafkaClient
import Testing

/// docker-compose.yml can't be started on a machine without a Docker engine, but it
/// can be validated: Debian's docker-compose (1.29) checks a file offline with
/// `docker-compose config` and prints it normalised. These tests run that, then
/// check the normalised file against the project: every build context and
/// Dockerfile exists, every command of an image built here is an executable the
/// Dockerfile builds (and Package.swift declares), and every environment variable
/// given to it is one that executable reads, or a KAFKA_* librdkafka pass-through.
@Suite("docker-compose.yml is valid and matches the project", .timeLimit(.minutes(1)))
struct ComposeFileTests {
    @Test("docker-compose config accepts docker-compose.yml")
    func composeConfigSucceeds() throws {
        let result = try ComposeProject.config()
        #expect(result.status == 0, "docker-compose config exited \(result.status):\n\(result.standardError)")
        #expect(!result.standardOutput.isEmpty)
    }

    @Test("every service built here has an existing context and Dockerfile, runs an executable the Dockerfile builds, and gets only environment variables that executable reads or KAFKA_ pass-throughs")
    func servicesMatchTheProject() throws {
        let result = try ComposeProject.config()
        try #require(result.status == 0, "docker-compose config exited \(result.status):\n\(result.standardError)")
        let services = try #require(try MiniYAML.parse(result.standardOutput)["services"]?.mapping,
                                    "no services in:\n\(result.standardOutput)")
        let products = try ComposeProject.executableProducts()
        var builtExecutables: Set<String> = []

        for (name, service) in services {
            guard let build = service["build"] else { continue }
            // `build: path` or `build: {context, dockerfile}`; relative paths are the compose file's folder.
            let context = ComposeProject.resolve(build.scalar ?? build["context"]?.scalar ?? ".", against: ComposeProject.root)
            var isFolder: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: context.path, isDirectory: &isFolder) && isFolder.boolValue,
                    "service \(name): build context \(context.path) is not a folder")
            let dockerfile = ComposeProject.resolve(build["dockerfile"]?.scalar ?? "Dockerfile", against: context)
            guard FileManager.default.fileExists(atPath: dockerfile.path) else {
                Issue.record("service \(name): Dockerfile \(dockerfile.path) does not exist")
                continue
            }
            let image = try ComposeProject.dockerfileFacts(dockerfile)
            #expect(!image.builtProducts.isEmpty, "\(dockerfile.path) builds no `--product`")
            for product in image.builtProducts {
                #expect(products[product] != nil,
                        "\(dockerfile.path) builds --product \(product), which is not an executable product of Package.swift (\(products.keys.sorted()))")
            }

            // What the container runs: the entrypoint, else the command, else the image's CMD.
            let argv = service["entrypoint"]?.words ?? service["command"]?.words ?? image.defaultCommand
            guard let executable = argv.first.map({ URL(fileURLWithPath: $0).lastPathComponent }) else {
                Issue.record("service \(name): no command, and \(dockerfile.path) has no CMD")
                continue
            }
            guard image.builtProducts.contains(executable), let target = products[executable] else {
                Issue.record("service \(name) runs \(executable), which \(dockerfile.path) does not build (it builds \(image.builtProducts.sorted()))")
                continue
            }
            builtExecutables.insert(executable)

            let sources = try ComposeProject.sources(ofTarget: target)
            for variable in service["environment"]?.variableNames ?? [] {
                if variable.hasPrefix("JOBS_") {
                    let read = sources.contains("\"\(variable)\"")
                    #expect(read,
                            "service \(name) sets \(variable), which \(executable) never reads (no \"\(variable)\" in Sources/\(target))")
                } else if variable.hasPrefix("KAFKA_") {
                    let passedThrough = !KafkaConfiguration.properties(fromEnvironment: [variable: "x"]).isEmpty
                    #expect(passedThrough,
                            "service \(name) sets \(variable), which is not passed through to librdkafka (a JVM tool variable)")
                } else {
                    Issue.record("service \(name) sets \(variable): \(executable) reads only JOBS_* settings and KAFKA_* librdkafka properties")
                }
            }
        }
        #expect(builtExecutables == ["gateway", "worker"], "services built here run \(builtExecutables.sorted())")
    }

    @Test("the YAML reader used here reads docker-compose's normalised output: nesting, indentless lists, quoting and folded lines")
    func miniYAMLReadsComposeOutput() throws {
        let text = #"""
            services:
              a:
                build:
                  context: /src
                command:
                - worker
                - --kafka
                - 'debug=all: yes'
                environment:
                  JOBS_PORT: '8080'
                  EMPTY: ''
                  FLAG: "false"
                healthcheck:
                  test:
                  - CMD-SHELL
                  - /bin/check --server localhost:9092
                    > /dev/null 2>&1
                ports:
                - published: 8080
                  target: 8080
              b:
                command:
                - /bin/bash
                - "one\
                  \ two\nthree \"q\"\
                  \ four"
                entrypoint: run   now
            volumes:
              data: {}
            """#
        let root = try MiniYAML.parse(text)
        let a = try #require(root["services"]?["a"])
        #expect(a["build"]?["context"]?.scalar == "/src")
        #expect(a["command"]?.words == ["worker", "--kafka", "debug=all: yes"])
        #expect(a["environment"]?.mapping?.map(\.key) == ["JOBS_PORT", "EMPTY", "FLAG"])
        #expect(a["environment"]?["JOBS_PORT"]?.scalar == "8080")
        #expect(a["environment"]?["EMPTY"]?.scalar == "")
        #expect(a["healthcheck"]?["test"]?.words == ["CMD-SHELL", "/bin/check --server localhost:9092 > /dev/null 2>&1"])
        #expect(a["ports"]?.list?.first?["target"]?.scalar == "8080")
        let b = try #require(root["services"]?["b"])
        #expect(b["command"]?.words == ["/bin/bash", "one two\nthree \"q\" four"])
        #expect(b["entrypoint"]?.words == ["run", "now"])
        #expect(root["volumes"]?["data"]?.mapping?.isEmpty == true)
        #expect(root["services"]?.mapping?.map(\.key) == ["a", "b"])
    }
}

// MARK: - The project and docker-compose

private enum ComposeProject {
    /// The package root: this file is Tests/IntegrationTests/ComposeFileTests.swift.
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let composeFile = root.appendingPathComponent("docker-compose.yml")

    struct Output { var status: Int32; var standardOutput: String; var standardError: String }

    /// `docker-compose -f docker-compose.yml config`: validates and prints the file normalised.
    static func config() throws -> Output {
        let compose = try #require(findOnPath("docker-compose"),
                                   "docker-compose is not installed: run scripts/install-deps.sh (it installs Debian's docker-compose, which validates the file offline)")
        try #require(FileManager.default.fileExists(atPath: composeFile.path), "\(composeFile.path) is missing")
        return try run(compose, ["-f", composeFile.path, "config"])
    }

    static func findOnPath(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").lazy
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    static func run(_ executable: URL, _ arguments: [String]) throws -> Output {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = root
        // The file requires an API key from the environment, as a real deployment must give one.
        var environment = ProcessInfo.processInfo.environment
        environment["JOBS_API_KEYS"] = "compose-test:read:0123456789abcdef"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Drain standard error on another thread, so neither pipe can fill up and stall the child.
        let errorData = ErrorBuffer()
        let drained = DispatchSemaphore(value: 0)
        let errorHandle = err.fileHandleForReading
        Thread.detachNewThread {
            errorData.set(errorHandle.readDataToEndOfFile())
            drained.signal()
        }
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        process.waitUntilExit()
        return Output(status: process.terminationStatus,
                      standardOutput: String(decoding: outputData, as: UTF8.self),
                      standardError: String(decoding: errorData.get(), as: UTF8.self))
    }

    final class ErrorBuffer: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func set(_ newValue: Data) { lock.withLock { data = newValue } }
        func get() -> Data { lock.withLock { data } }
    }

    static func resolve(_ path: String, against base: URL) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path).standardizedFileURL
    }

    /// Package.swift's executable products and their (first) target:
    /// `.executable(name: "gateway", targets: ["Gateway"])`.
    static func executableProducts() throws -> [String: String] {
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var products: [String: String] = [:]
        for match in manifest.matches(of: /\.executable\(\s*name:\s*"([^"]+)"\s*,\s*targets:\s*\[\s*"([^"]+)"/) {
            products[String(match.1)] = String(match.2)
        }
        try #require(!products.isEmpty, "found no .executable products in Package.swift")
        return products
    }

    /// All Swift source of a target, as one text.
    static func sources(ofTarget target: String) throws -> String {
        let folder = root.appendingPathComponent("Sources").appendingPathComponent(target)
        let files = try #require(FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil),
                                 "no folder Sources/\(target)")
        var text = ""
        for case let file as URL in files where file.pathExtension == "swift" {
            text += try String(contentsOf: file, encoding: .utf8)
        }
        try #require(!text.isEmpty, "no Swift sources in Sources/\(target)")
        return text
    }

    /// What a Dockerfile builds (every `--product X` of its RUN lines) and its last
    /// `CMD` (exec form, `CMD ["gateway"]`, or shell form).
    static func dockerfileFacts(_ dockerfile: URL) throws -> (builtProducts: Set<String>, defaultCommand: [String]) {
        let text = try String(contentsOf: dockerfile, encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix("#") }
        let products = lines.joined(separator: "\n").matches(of: /--product[ =]+([A-Za-z0-9_.-]+)/).map { String($0.1) }
        var command: [String] = []
        for line in lines where line.uppercased().hasPrefix("CMD ") {
            let argument = line.dropFirst(4).trimmingCharacters(in: .whitespaces)
            if argument.hasPrefix("["), let words = try? JSONDecoder().decode([String].self, from: Data(argument.utf8)) {
                command = words
            } else {
                command = argument.split(separator: " ").map(String.init)
            }
        }
        return (Set(products), command)
    }
}

// MARK: - A YAML reader for docker-compose's normalised output

/// Just enough YAML for what `docker-compose config` prints: block mappings and
/// sequences (indented or not), plain, single- and double-quoted scalars (folded
/// over several lines), block scalars (`|`, `>`), and empty `{}` / `[]`. No anchors,
/// tags or flow collections with content. The package has no YAML library, and the
/// test should not depend on which Python is on PATH.
private indirect enum MiniYAML: Equatable {
    case scalar(String)
    case list([MiniYAML])
    case map([(key: String, value: MiniYAML)])

    struct Error: Swift.Error, CustomStringConvertible { var description: String }

    static func == (a: MiniYAML, b: MiniYAML) -> Bool {
        switch (a, b) {
        case let (.scalar(x), .scalar(y)): x == y
        case let (.list(x), .list(y)): x == y
        case let (.map(x), .map(y)): x.map(\.key) == y.map(\.key) && x.map(\.value) == y.map(\.value)
        default: false
        }
    }

    var scalar: String? { if case let .scalar(s) = self { s } else { nil } }
    var list: [MiniYAML]? { if case let .list(l) = self { l } else { nil } }
    var mapping: [(key: String, value: MiniYAML)]? { if case let .map(m) = self { m } else { nil } }
    subscript(key: String) -> MiniYAML? { mapping?.first { $0.key == key }?.value }

    /// The names of an `environment:` mapping, or of a list of `NAME=value`.
    var variableNames: [String] {
        if let mapping { return mapping.map(\.key) }
        return (list ?? []).compactMap { $0.scalar?.split(separator: "=", maxSplits: 1).first.map(String.init) }
    }

    /// A command as its words: a list as it is, a string split at spaces (as compose does, roughly).
    var words: [String]? {
        if let list { return list.compactMap(\.scalar) }
        return scalar.map { $0.split(separator: " ").map(String.init) }
    }

    static func parse(_ text: String) throws -> MiniYAML {
        var reader = Reader(text)
        guard let first = reader.lines.first else { return .map([]) }
        let node = try reader.node(indent: first.indent)
        if reader.index < reader.lines.count {
            throw Error(description: "unexpected line \(reader.lines[reader.index].number): \(reader.lines[reader.index].text)")
        }
        return node
    }

    private struct Line { var indent: Int; var text: String; var number: Int }

    private struct Reader {
        var lines: [Line]
        var index = 0

        init(_ text: String) {
            lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { number, raw in
                let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
                let indent = line.prefix { $0 == " " }.count
                let content = String(line.dropFirst(indent))
                if content.isEmpty || content.hasPrefix("#") || content == "---" { return nil }
                return Line(indent: indent, text: content, number: number + 1)
            }
        }

        /// The node whose first line is the current one, at `indent`.
        mutating func node(indent: Int) throws -> MiniYAML {
            let line = lines[index]
            if line.text == "-" || line.text.hasPrefix("- ") { return try sequence(indent: line.indent) }
            if Self.keyAndRest(line.text) != nil { return try mapping(indent: line.indent) }
            return try scalarValue(line.text, ownerIndent: indent - 1)
        }

        mutating func sequence(indent: Int) throws -> MiniYAML {
            var items: [MiniYAML] = []
            while index < lines.count, lines[index].indent == indent,
                  lines[index].text == "-" || lines[index].text.hasPrefix("- ") {
                let rest = lines[index].text.dropFirst(1).drop { $0 == " " }
                if rest.isEmpty {
                    index += 1
                    items.append(try nested(under: indent, allowIndentless: false))
                } else {
                    // "- key: value" or "- scalar": read the rest as a line of its own, further in.
                    let shift = lines[index].text.count - rest.count
                    lines[index] = Line(indent: indent + shift, text: String(rest), number: lines[index].number)
                    items.append(try node(indent: indent + shift))
                }
            }
            return .list(items)
        }

        mutating func mapping(indent: Int) throws -> MiniYAML {
            var entries: [(key: String, value: MiniYAML)] = []
            while index < lines.count, lines[index].indent == indent, !lines[index].text.hasPrefix("- "),
                  case let (key, rest)? = Self.keyAndRest(lines[index].text) {
                if rest.isEmpty {
                    index += 1
                    entries.append((key, try nested(under: indent, allowIndentless: true)))
                } else {
                    entries.append((key, try scalarValue(rest, ownerIndent: indent)))
                }
            }
            if index < lines.count, lines[index].indent > indent {
                throw Error(description: "unexpected indentation at line \(lines[index].number): \(lines[index].text)")
            }
            return .map(entries)
        }

        /// The value after "key:" or "-" with nothing else on the line.
        mutating func nested(under indent: Int, allowIndentless: Bool) throws -> MiniYAML {
            guard index < lines.count else { return .scalar("") }
            let next = lines[index]
            if next.indent > indent { return try node(indent: next.indent) }
            if allowIndentless, next.indent == indent, next.text == "-" || next.text.hasPrefix("- ") {
                return try sequence(indent: indent)
            }
            return .scalar("")
        }

        /// A scalar starting with `text` on the current line; continuation lines are
        /// those indented further than `ownerIndent`.
        mutating func scalarValue(_ text: String, ownerIndent: Int) throws -> MiniYAML {
            index += 1
            if text == "{}" { return .map([]) }
            if text == "[]" { return .list([]) }
            var pieces = [text]
            func takeContinuation() -> Bool {
                guard index < lines.count, lines[index].indent > ownerIndent else { return false }
                pieces.append(lines[index].text)
                index += 1
                return true
            }
            if text.hasPrefix("\"") || text.hasPrefix("'") {
                let quote = text.first!
                while !Self.isClosed(pieces.joined(separator: "\n"), quote: quote) {
                    guard takeContinuation() else { throw Error(description: "unterminated \(quote)-quoted string: \(text)") }
                }
                return .scalar(try Self.unquote(pieces, quote: quote))
            }
            if text.hasPrefix("|") || text.hasPrefix(">") {
                var body: [String] = []
                var blockIndent: Int?
                while index < lines.count, lines[index].indent > ownerIndent {
                    let line = lines[index]
                    blockIndent = blockIndent ?? line.indent
                    body.append(String(repeating: " ", count: max(0, line.indent - blockIndent!)) + line.text)
                    index += 1
                }
                let joined = body.joined(separator: text.hasPrefix("|") ? "\n" : " ")
                return .scalar(text.hasSuffix("-") ? joined : joined + "\n")
            }
            while takeContinuation() {}
            return .scalar(pieces.joined(separator: " "))
        }

        /// `key: rest` or `key:`, with a plain or quoted key; nil if the line is no mapping entry.
        static func keyAndRest(_ text: String) -> (String, String)? {
            if let quote = text.first, quote == "\"" || quote == "'" {
                guard let close = text.dropFirst().firstIndex(of: quote) else { return nil }
                let after = text[text.index(after: close)...]
                guard after == ":" || after.hasPrefix(": ") else { return nil }
                return (String(text[text.index(after: text.startIndex)..<close]),
                        after.dropFirst().trimmingCharacters(in: .whitespaces))
            }
            if text.hasSuffix(":"), !text.contains(": ") { return (String(text.dropLast()), "") }
            guard let separator = text.range(of: ": ") else { return nil }
            return (String(text[..<separator.lowerBound]), text[separator.upperBound...].trimmingCharacters(in: .whitespaces))
        }

        static func isClosed(_ text: String, quote: Character) -> Bool {
            var characters = text.dropFirst()
            while let c = characters.first {
                characters = characters.dropFirst()
                if quote == "\"", c == "\\" { characters = characters.dropFirst(); continue }
                if c == quote {
                    if quote == "'", characters.first == "'" { characters = characters.dropFirst(); continue }
                    return true
                }
            }
            return false
        }

        /// Folds the lines of a quoted scalar (a line break is a space, unless escaped
        /// with `\` in double quotes) and decodes its escapes.
        static func unquote(_ pieces: [String], quote: Character) throws -> String {
            var folded = ""
            for (number, piece) in pieces.enumerated() {
                var part = number == 0 ? piece : piece.trimmingCharacters(in: .whitespaces)
                if number < pieces.count - 1 {
                    if quote == "\"", part.reversed().prefix(while: { $0 == "\\" }).count % 2 == 1 {
                        folded += part.dropLast()
                        continue
                    }
                    part = part.trimmingCharacters(in: .whitespaces)
                    folded += part + " "
                } else {
                    folded += part
                }
            }
            let trimmed = folded.trimmingCharacters(in: .whitespaces)
            guard trimmed.count >= 2, trimmed.last == quote else { throw Error(description: "text after a quoted string: \(trimmed)") }
            let body = trimmed.dropFirst().dropLast()
            if quote == "'" { return body.replacingOccurrences(of: "''", with: "'") }
            var result = ""
            var characters = Substring(body)
            while let c = characters.first {
                characters = characters.dropFirst()
                guard c == "\\", let escaped = characters.first else { result.append(c); continue }
                characters = characters.dropFirst()
                switch escaped {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                case "0": result.append("\0")
                case "\"", "\\", "/", " ": result.append(escaped)
                default: result.append("\\"); result.append(escaped)
                }
            }
            return result
        }
    }
}
