import Foundation
import JobsCore
@testable import JobsWorker
import Testing

/// Command jobs without a broker: the file format, argument templates, output
/// handling. The runs themselves are in `CommandJobTests`.
@Suite("Command job configuration, templates and output")
struct CommandJobConfigTests {
    static let path = ["PATH": "/usr/bin:/bin"]

    static func parse(_ yaml: String, environment: [String: String] = path) throws(CommandJobsConfigurationError) -> CommandJobsConfiguration {
        try CommandJobsConfiguration.parse(yaml, format: .yaml, source: "jobs.yaml", environment: environment)
    }

    /// The message of the error `yaml` is refused with.
    static func refusal(_ yaml: String) -> String {
        do {
            let configuration = try parse(yaml)
            return "accepted: \(configuration.jobs.map(\.name))"
        } catch {
            return error.description
        }
    }

    @Test("a full entry is read: executable found on PATH, params with their constraints, limits, environment")
    func fullEntry() throws {
        let configuration = try Self.parse("""
            jobs:
              - name: report
                summary: Builds a report.
                executable: sh
                arguments: ["-c", 'echo "$1"', "--", "{title}", "--pages={pages}", "{verbose}"]
                params:
                  title: { type: string, pattern: '^[A-Za-z ]+$', maxLength: 40, required: true, description: The title. }
                  pages: { type: integer, minimum: 1, maximum: 500, default: 10 }
                  ratio: { type: number, minimum: 0, maximum: 1 }
                  mode: { type: string, enum: [fast, slow] }
                  verbose: { type: boolean }
                timeout: 10m
                killGracePeriod: 500ms
                workingDirectory: /tmp
                environment: { LANG: C.UTF-8 }
                inheritEnvironment: [HOME]
                maxConcurrent: 2
                maxAttempts: 3
                retryBackoff: 2s
                outputTailLines: 10
                outputTailBytes: 1000
            """, environment: ["PATH": "/usr/bin:/bin", "HOME": "/home/ops", "SECRET": "s3cr3t"])
        let job = try #require(configuration.jobs.first)
        #expect(job.name == "report")
        #expect(job.summary == "Builds a report.")
        #expect(job.executable.hasPrefix("/") && job.executable.hasSuffix("/sh"))
        #expect(job.arguments.map(\.description) == ["-c", #"echo "$1""#, "--", "{title}", "--pages={pages}", "{verbose}"])
        #expect(job.params.fields.first { $0.name == "title" } == .init("title", .string(maxLength: 40, pattern: "^[A-Za-z ]+$"),
                                                                    required: true, summary: "The title."))
        #expect(job.params.fields.first { $0.name == "pages" }?.type == .integer(minimum: 1, maximum: 500))
        #expect(job.params.fields.first { $0.name == "mode" }?.type == .string(allowed: ["fast", "slow"]))
        #expect(job.params.fields.first { $0.name == "ratio" }?.type == .number(minimum: 0, maximum: 1))
        #expect(job.defaults == ["pages": 10])
        #expect(job.options == JobOptions(maxAttempts: 3, initialBackoff: .seconds(2), timeout: .seconds(600), maxConcurrent: 2))
        #expect(job.killGracePeriod == .milliseconds(500))
        #expect(job.workingDirectory == "/tmp")
        #expect(job.environment == ["PATH": "/usr/bin:/bin", "HOME": "/home/ops", "LANG": "C.UTF-8"], "nothing else of the worker's")
        #expect(job.outputTailLines == 10 && job.outputTailBytes == 1000)

        // Placeholders fill one slot each; an absent optional param drops its slot; defaults apply.
        #expect(try job.argv(for: ["title": "Quarterly sales"]) == ["-c", #"echo "$1""#, "--", "Quarterly sales", "--pages=10"])
        #expect(try job.argv(for: ["title": "A", "pages": 2, "verbose": true]) == ["-c", #"echo "$1""#, "--", "A", "--pages=2", "true"])
    }

    @Test("the worker refuses params that don't fit before anything runs, naming the field")
    func workerChecksParams() throws {
        let job = try #require(try Self.parse("""
            jobs:
              - name: ping
                executable: /bin/echo
                arguments: ["{host}"]
                params: { host: { type: string, pattern: '^[a-z0-9.-]+$', required: true } }
            """).jobs.first)
        for params: JSONValue in [["host": "; touch /tmp/pwned"], ["host": "$(id)"], [:], ["host": 3], ["host": "a", "extra": 1]] {
            #expect(throws: JobError.self) { try job.argv(for: params) }
        }
        do {
            _ = try job.argv(for: ["host": "a;b"])
            Issue.record("accepted a;b")
        } catch {
            #expect(error.code == "invalid_params")
            #expect(error.message == "/params/host: must match the pattern ^[a-z0-9.-]+$")
        }
        let noPattern = try CommandJobSpec(name: "echo", executable: "/bin/echo", arguments: ["{text}"],
                                           params: ParamsSchema([.init("text", .string())]))
        #expect(throws: JobError.self, "a NUL would cut the argument short") { try noPattern.argv(for: ["text": "a\u{0}b"]) }
        // A string param with no limit of its own gets the default maxLength.
        let loaded = try #require(try Self.parse("""
            jobs: [{ name: t, executable: /bin/echo, arguments: ["{text}"], params: { text: { type: string } } }]
            """).jobs.first)
        #expect(loaded.params.fields.first?.type == .string(maxLength: CommandParamEntry.defaultMaxLength))
    }

    @Test("JSON works as well as YAML, and a file is read from disk by its extension")
    func jsonFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("command-jobs-\(UUID().uuidString).json")
        try #"{"jobs": [{"name": "hello", "executable": "/bin/echo", "arguments": ["hello", "{who}"], "params": {"who": {"type": "string", "required": true}}, "timeout": 30}]}"#
            .write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        let configuration = try CommandJobsConfiguration.load(contentsOf: url.path, environment: Self.path)
        #expect(configuration.jobs.map(\.name) == ["hello"])
        #expect(configuration.jobs.first?.options.timeout == .seconds(30))
        #expect(try configuration.jobs.first?.argv(for: ["who": "you"]) == ["hello", "you"])
        #expect {
            try CommandJobsConfiguration.parse(#"{"jobs": ["#, format: .json, source: "x.json")
        } throws: { error in
            "\(error)".hasPrefix("command jobs file x.json: is not valid JSON")
        }
        #expect {
            try CommandJobsConfiguration.load(contentsOf: "/no/such/command-jobs.yaml")
        } throws: { error in
            "\(error)" == "command jobs file /no/such/command-jobs.yaml: does not exist"
        }
    }

    @Test("loading errors name the file, the entry and the setting at fault", arguments: [
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    maxConcurent: 2",
         #"command jobs file jobs.yaml: jobs[0] "a": maxConcurent: unknown setting (known: name, summary, executable"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n  - name: b\n    executable: /bin/echo\n    arguments: [\"{widht}\"]\n    params: { width: { type: integer } }",
         #"command jobs file jobs.yaml: jobs[1] "b": arguments[0] "{widht}": {widht} is not a declared param (declared: width)"#),
        ("jobs:\n  - name: a\n    executable: no-such-tool-anywhere",
         #"command jobs file jobs.yaml: jobs[0] "a": executable: "no-such-tool-anywhere" was not found on PATH"#),
        ("jobs:\n  - name: a\n    executable: ./run.sh",
         #"jobs[0] "a": executable: "./run.sh" must be an absolute path or a bare name"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    params: { x: { type: int } }",
         #"jobs[0] "a": params.x.type: "int" is not a param type"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    params: { x: { type: string, pattern: '([a-z' } }",
         #"jobs[0] "a": params.x.pattern: ([a-z is not a valid regular expression"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    params: { x: { type: integer, pattern: '^1$' } }",
         #"jobs[0] "a": params.x.pattern: only a string param may have one"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    params: { x: { type: integer, maximum: 5, default: 9 } }",
         #"jobs[0] "a": params.x.default: must be at most 5"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    timeout: soon",
         #"jobs[0] "a": timeout: "soon" is not a duration"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    timeout: 99999999999999999999s",
         #"jobs[0] "a": timeout: "99999999999999999999s" is not a duration from 0 to a year"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    killGracePeriod: 1e300",
         #"jobs[0] "a": killGracePeriod: must be a number of seconds from 0 to a year"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    maxConcurrent: 0",
         #"jobs[0] "a": maxConcurrent: must be at least 1, not 0"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    arguments: [\"{x\"]",
         #"jobs[0] "a": arguments[0] "{x": an unclosed "{""#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    workingDirectory: /no/such/dir",
         #"jobs[0] "a": workingDirectory: "/no/such/dir" is not an existing directory"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n  - name: a\n    executable: /bin/true",
         #"jobs[1] "a": name: "a" is declared twice"#),
        ("jobs:\n  - name: a b\n    executable: /bin/echo",
         #"jobs[0] "a b": name: "a b" is not a job type name"#),
        ("jobs:\n  - executable: /bin/echo",
         #"command jobs file jobs.yaml: jobs[0]: name: is required"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    arguments: oops",
         #"jobs[0] "a": arguments: must be a list"#),
        ("jobs: [", "command jobs file jobs.yaml: is not valid YAML: "),
        ("jobs:\n  - name: a\n    executable: /bin/sh\n    arguments: [\"-ec\", \"tar czf {out} /data\"]\n    params: { out: { type: string } }",
         #"jobs[0] "a": arguments[1] "tar czf {out} /data": a placeholder inside code for sh to run would let a param inject commands"#),
        ("jobs:\n  - name: a\n    executable: perl\n    arguments: [\"-w\", \"-e\", \"print {x}\"]\n    params: { x: { type: string } }",
         #"jobs[0] "a": arguments[2] "print {x}": a placeholder inside code for perl to run"#),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    params: []", #"jobs[0] "a": params: must be a map"#),
        ("tasks: []", "command jobs file jobs.yaml: tasks: unknown setting (known: jobs)"),
        ("jobs:\n  - name: a\n    executable: /bin/echo\n    params: { x: { type: string, maxlength: 3 } }",
         #"jobs[0] "a": params.x.maxlength: unknown setting"#),
        ("{\"jobs\": [", "command jobs file jobs.yaml: is not valid YAML"),
    ])
    func loadingErrors(yaml: String, expected: String) {
        let message = Self.refusal(yaml)
        #expect(message.contains(expected), "\(message)")
    }

    /// The message a spec with these arguments and a string param `x` is
    /// refused with, or `nil` when it is accepted.
    static func inlineCodeRefusal(_ executable: String, _ arguments: [String]) -> String? {
        do {
            _ = try CommandJobSpec(name: "a", executable: executable, arguments: arguments,
                                   params: ParamsSchema([.init("x", .string(), required: true)]))
            return nil
        } catch {
            return error.description
        }
    }

    @Test("a placeholder in the code an interpreter runs is refused, however the option that gives the code is written",
          arguments: [
              ("/bin/sh", ["-c", "--", "echo hello {x}"], 2),
              ("/bin/sh", ["-c", "-e", "echo {x}"], 2),
              ("/bin/sh", ["+e", "-c", "+x", "echo {x}"], 3),
              ("/bin/bash", ["-c", "-o", "pipefail", "echo {x} | wc -c"], 3),
              ("/bin/bash", ["-co", "pipefail", "echo {x}"], 2),
              ("/bin/bash", ["-c", "--norc", "echo {x}"], 2),
              ("/usr/bin/perl", ["-le", "print qq({x})"], 1),
              ("/usr/bin/perl", ["-ne", "print if /{x}/"], 1),
              ("/usr/bin/perl", ["-pe", "s/a/{x}/"], 1),
              ("/usr/bin/perl", ["-e{x}"], 0),
              ("/usr/bin/python3", ["-uc", "print(\"{x}\")"], 1),
              ("/usr/bin/python3.12", ["-cprint('{x}')"], 0),
              ("/usr/bin/node", ["--eval", "console.log('{x}')"], 1),
              ("/usr/bin/node", ["--eval=console.log('{x}')"], 0),
              ("/usr/bin/node", ["--print", "'{x}'"], 1),
              ("/usr/bin/ruby", ["-we", "puts '{x}'"], 1),
              ("/usr/bin/php", ["--run", "echo '{x}';"], 1),
          ] as [(String, [String], Int)])
    func placeholderInInlineCodeRefused(executable: String, arguments: [String], refused: Int) {
        let name = (executable as NSString).lastPathComponent
        let message = Self.inlineCodeRefusal(executable, arguments) ?? "accepted"
        #expect(message.hasPrefix(#"arguments[\#(refused)] "\#(arguments[refused])": a placeholder inside code for \#(name) to run"#
                                  + " would let a param inject commands"), "\(message)")
    }

    @Test("a param beginning an argument after the code of an interpreter that reads options there is refused until --",
          arguments: [
              // `node -e 'console.log(1)' '--eval=…'` runs both; perl, ruby, php, lua take more -e alike.
              ("/usr/bin/node", ["-e", "console.log(process.argv[1])", "{x}"], 2),
              ("/usr/bin/perl", ["-le", "print $ARGV[0]", "{x}"], 2),
              ("/usr/bin/ruby", ["-e", "puts ARGV[0]", "-w", "{x}.txt"], 3),
              ("/usr/bin/php", ["-r", "echo $argv[1];", "{x}"], 2),
          ] as [(String, [String], Int)])
    func placeholderOptionAfterCodeRefused(executable: String, arguments: [String], refused: Int) {
        let name = (executable as NSString).lastPathComponent
        let message = Self.inlineCodeRefusal(executable, arguments) ?? "accepted"
        #expect(message.hasPrefix(#"arguments[\#(refused)] "\#(arguments[refused])": \#(name) reads options after its code"#), "\(message)")
    }

    @Test("placeholders after an interpreter's code stay allowed: they are its positional parameters, not code",
          arguments: [
              ("/bin/sh", [#"-c"#, #"echo "$1""#, "sh", "{x}"]),
              ("/bin/sh", ["-ec", "--", #"cp "$1" /srv/out"#, "sh", "{x}"]),
              ("/bin/bash", ["-o", "pipefail", "-c", #"echo "$1" | wc -c"#, "bash", "{x}"]),
              ("/usr/bin/python3", ["-uc", "import sys; print(sys.argv[1])", "{x}"]),
              ("/usr/bin/perl", ["-le", "print $ARGV[0]", "--", "{x}"]),
              ("/usr/bin/node", ["--eval", "console.log(process.argv[1])", "--", "{x}"]),
              ("/usr/bin/perl", ["-e", "print $ARGV[0]", "file-{x}"]),
              ("/usr/bin/tar", ["-czf", "/srv/{x}.tar.gz", "-C", "/srv/data", "{x}"]),
          ] as [(String, [String])])
    func placeholderAfterInlineCodeAllowed(executable: String, arguments: [String]) {
        #expect(Self.inlineCodeRefusal(executable, arguments) == nil)
    }

    @Test("a command job type may not take the name of a type the worker already serves")
    func nameClashWithBuiltin() throws {
        let configuration = try Self.parse("jobs:\n  - name: ok\n    executable: /bin/true\n  - name: sleep\n    executable: /bin/sleep")
        var registry = JobRegistry.builtin
        #expect {
            try registry.register(commandJobs: configuration)
        } throws: { error in
            "\(error)" == #"command jobs file jobs.yaml: jobs[1] "sleep": name: the job type "sleep" is already served by this worker"#
        }
        #expect(!registry.descriptors.contains { $0.name == "ok" }, "nothing is registered from a refused file")
        try registry.register(commandJobs: Self.parse("jobs:\n  - name: ok\n    executable: /bin/true"))
        #expect(registry.descriptors.contains { $0.name == "ok" })
    }

    @Test("argument templates: one slot per entry, literal braces, bad templates refused")
    func templates() throws {
        let template = try ArgumentTemplate(parsing: "--size={w}x{h}{{px}}")
        #expect(template.paramNames == ["w", "h"])
        #expect(template.render(["w": "3", "h": "4"]) == "--size=3x4{px}")
        #expect(template.render(["w": "3"]) == nil, "an absent param leaves the entry out")
        #expect(template.render(["w": "a b", "h": "\"; rm -rf / #"]) == "--size=a bx\"; rm -rf / #{px}")
        #expect(try ArgumentTemplate(parsing: "").render([:]) == "")
        for bad in ["{", "}", "{1x}", "{a-b}", "{}", "x}y"] {
            #expect(throws: ArgumentTemplateError.self, "\(bad)") { try ArgumentTemplate(parsing: bad) }
        }
        #expect(JSONValue.number(3).argumentText == "3")
        #expect(JSONValue.number(2.5).argumentText == "2.5")
        #expect(JSONValue.bool(false).argumentText == "false")
        #expect(JSONValue.array([]).argumentText == nil)
    }

    @Test("PROGRESS lines: the exact format, anything else is plain output")
    func progressLines() {
        #expect(ProgressLine(parsing: "PROGRESS 3/10 copying files") == ProgressLine(current: 3, total: 10, message: "copying files"))
        #expect(ProgressLine(parsing: "PROGRESS 3/10") == ProgressLine(current: 3, total: 10))
        #expect(ProgressLine(parsing: "PROGRESS 7 no total") == ProgressLine(current: 7, message: "no total"))
        #expect(ProgressLine(parsing: "PROGRESS 0/0") == ProgressLine(current: 0, total: 0))
        for plain in ["progress 3/10", "PROGRESS", "PROGRESS ", "PROGRESS x/10", "PROGRESS 3/", "PROGRESS -1/10",
                      "PROGRESS  3/10", " PROGRESS 3/10", "PROGRESS 3/ 10", "PROGRESS 99999999999999999999/1"] {
            #expect(ProgressLine(parsing: plain) == nil, "\(plain)")
        }
    }

    @Test("output is cut into bounded, printable lines and only a bounded tail is kept")
    func outputLines() {
        var splitter = LineSplitter(maxLineBytes: 9)
        #expect(splitter.feed(Array("one\r\ntw".utf8)) == ["one"])
        #expect(splitter.feed(Array("o\n\u{1B}[31mred\u{7}\n".utf8)) == ["two", "[31mred"])
        #expect(splitter.feed(Array("0123456789abc\nend".utf8)) == ["012345678…"])
        #expect(splitter.finish() == "end")
        #expect(splitter.finish() == nil)

        var tail = OutputTail(maxLines: 3, maxBytes: 10)
        for line in ["a", "bb", "ccc", "dddd", "eeeee"] { tail.append(line) }
        #expect(tail.lines == ["dddd", "eeeee"], "bounded by bytes")
        #expect(tail.totalLines == 5)
        var byCount = OutputTail(maxLines: 2, maxBytes: 100)
        for line in ["a", "b", "c"] { byCount.append(line) }
        #expect(byCount.lines == ["b", "c"])
        #expect(LineSplitter.printable("a\u{85}b\u{9B}c\u{A0}d") == "abc\u{A0}d", "C1 controls go, a no-break space stays")
    }

    @Test("a tail is bounded by its size in the JSON result, where backslashes, quotes and slashes take two bytes")
    func tailBoundedAsJSON() throws {
        let limit = CommandJobSpec.maxOutputTailBytes
        // Once: two such tails took 65,629 bytes of JSON, and a command that exited 0 failed result_too_large.
        var tail = OutputTail(maxLines: 50, maxBytes: limit)
        for _ in 0..<5 { tail.append(String(repeating: "\\", count: 4095)) }
        #expect(tail.lines.count == 2)
        var long = OutputTail(maxLines: 50, maxBytes: limit)
        long.append(String(repeating: "/\"", count: 10_000))
        for lines in [tail.lines, long.lines] {
            let json = try WireFormat.encode(JSONValue.array(lines.map { .string($0) }))
            // Less the brackets, and each line's quotes and comma.
            #expect(json.count - 2 - 3 * lines.count <= limit, "\(json.count) bytes of JSON for \(lines.count) lines")
        }
        #expect(long.lines.first?.count == limit / 2, "cut at whole characters within the limit")
    }
}
