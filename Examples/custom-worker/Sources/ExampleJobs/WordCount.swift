import JobsWorker

/// Params of a `word-count` job, decoded after the gateway and the worker
/// checked them against ``ExampleJobTypes/wordCountSchema``.
public struct WordCountParams: Codable, Sendable, Hashable {
    public var text: String
    /// How many of the most frequent words the result lists (default 5).
    public var top: Int?
    /// Lines counted between two progress reports (default 1000).
    public var linesPerStep: Int?
    /// A pause after each step, standing in for a slow source (a paged API, a
    /// large file on a network share). Default 0.
    public var pauseMs: Int?

    public init(text: String, top: Int? = nil, linesPerStep: Int? = nil, pauseMs: Int? = nil) {
        self.text = text
        self.top = top
        self.linesPerStep = linesPerStep
        self.pauseMs = pauseMs
    }
}

/// The result of a `word-count` job: it is stored in the job's snapshot.
public struct WordCountResult: Codable, Sendable, Hashable {
    public var lines: Int
    public var words: Int
    public var characters: Int
    /// The most frequent words, most frequent first (ties in alphabetical order).
    public var top: [WordFrequency]

    public init(lines: Int, words: Int, characters: Int, top: [WordFrequency]) {
        self.lines = lines
        self.words = words
        self.characters = characters
        self.top = top
    }
}

public struct WordFrequency: Codable, Sendable, Hashable {
    public var word: String
    public var count: Int

    public init(word: String, count: Int) {
        self.word = word
        self.count = count
    }
}

/// Counts words line by line; pure, so it can be tested without a worker.
/// A word is a run of letters, digits and apostrophes, compared in lower case.
public struct WordTally: Sendable {
    public private(set) var lines = 0
    public private(set) var words = 0
    public private(set) var characters = 0
    private var frequencies: [String: Int] = [:]

    public init() {}

    public mutating func add(line: Substring) {
        lines += 1
        characters += line.count
        for word in line.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "'") }) {
            words += 1
            frequencies[word.lowercased(), default: 0] += 1
        }
    }

    public func result(top: Int) -> WordCountResult {
        let ranked = frequencies
            .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(max(0, top))
            .map { WordFrequency(word: $0.key, count: $0.value) }
        return WordCountResult(lines: lines, words: words, characters: characters, top: Array(ranked))
    }
}

enum WordCount {
    /// The `word-count` handler: counts `linesPerStep` lines at a time, reports
    /// progress after each step, and stops as soon as the job is cancelled.
    static func run(_ params: WordCountParams, context: JobContext) async throws -> WordCountResult {
        let lines = params.text.split(separator: "\n", omittingEmptySubsequences: false)
        let step = max(1, params.linesPerStep ?? 1000)
        let pause = max(0, params.pauseMs ?? 0)
        var tally = WordTally()
        var done = 0
        context.logger.info("counting words", metadata: ["lines": "\(lines.count)"])
        while done < lines.count {
            let end = min(done + step, lines.count)
            for line in lines[done..<end] {
                // A CPU-bound loop makes no cancellable call of its own: check.
                try context.checkCancellation()
                tally.add(line: line)
            }
            done = end
            // Publishes a snapshot with the progress; throws if the job was cancelled.
            try await context.progress(current: done, total: lines.count, message: "\(done) of \(lines.count) lines")
            if pause > 0, done < lines.count {
                try await Task.sleep(for: .milliseconds(pause))  // cancellable too
            }
        }
        return tally.result(top: params.top ?? 5)
    }
}
