/// What the system knows about one job type: its name and the params it accepts.
public struct JobTypeDescriptor: Sendable, Hashable {
    public var name: String
    public var summary: String
    public var params: ParamsSchema

    public init(name: String, summary: String = "", params: ParamsSchema = ParamsSchema()) {
        self.name = name
        self.summary = summary
        self.params = params
    }

    /// What a job type's name may be, in words.
    public static let nameRule = "1 to 100 of A-Z a-z 0-9 . _ : -, starting with a letter or digit"

    /// Whether `name` can name a job type (``nameRule``): text that stays one word
    /// in URLs, logs and metric labels.
    public static func isValidName(_ name: String) -> Bool {
        guard (1...100).contains(name.count), let first = name.unicodeScalars.first,
              first.isASCII, first.properties.isAlphabetic || ("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-_:".unicodeScalars.contains($0))
        }
    }
}

/// The job types every worker serves out of the box.
public enum BuiltinJobTypes {
    /// Finishes at once: the unit of the benchmarks.
    public static let noop = JobTypeDescriptor(name: "noop", summary: "Succeeds at once.")

    /// The classic background-task demo: `steps` steps of `stepMs` each, with
    /// progress after every step; cancellable at any moment.
    public static let sleep = JobTypeDescriptor(
        name: "sleep",
        summary: "Sleeps `steps` × `stepMs` milliseconds, reporting progress after each step.",
        params: ParamsSchema([
            .init("steps", .integer(minimum: 1, maximum: 100_000), summary: "Number of steps (default 10)."),
            .init("stepMs", .integer(minimum: 0, maximum: 3_600_000), summary: "Length of one step in milliseconds (default 1000)."),
        ])
    )

    public static let all = [noop, sleep]
}
