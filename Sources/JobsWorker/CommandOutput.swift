import JobsCore

/// Cuts a byte stream into lines: on `\n`, dropping a trailing `\r`, with every
/// line bounded, so a command that writes megabytes without a newline can't
/// make the worker hold them.
struct LineSplitter: Sendable {
    /// A line longer than this many bytes is cut here and marked with "…"; the
    /// rest of it, up to the next newline, is dropped.
    let maxLineBytes: Int
    private var pending: [UInt8] = []
    private var overflowed = false

    init(maxLineBytes: Int = 4096) {
        self.maxLineBytes = max(1, maxLineBytes)
    }

    /// The lines `bytes` completes.
    mutating func feed<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> [String] {
        var lines: [String] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lines.append(takeLine())
            } else if pending.count < maxLineBytes {
                pending.append(byte)
            } else {
                overflowed = true
            }
        }
        return lines
    }

    /// The last line, if the stream ended without a newline.
    mutating func finish() -> String? {
        pending.isEmpty && !overflowed ? nil : takeLine()
    }

    private mutating func takeLine() -> String {
        if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
        var line = Self.printable(String(decoding: pending, as: UTF8.self))
        if overflowed { line += "…" }
        pending.removeAll(keepingCapacity: true)
        overflowed = false
        return line
    }

    /// Drops control characters (terminal escapes, backspaces, NULs, and the C1
    /// controls of U+0080–U+009F) but tabs, so a line shows the same on a
    /// dashboard as in a log.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.filter { !isControl($0) })
        return String(scalars)
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
    }
}

/// The last lines of one output stream, bounded by count and by bytes, and how
/// many lines there were in all.
///
/// Bytes are counted as the lines take in the job's JSON result, where `"`,
/// `\`, `/` and a tab are escaped to two: counted raw, two tails of backslashes
/// came to twice their limit and the result of a command that succeeded was
/// refused as too large.
struct OutputTail: Sendable {
    let maxLines: Int
    let maxBytes: Int
    private(set) var lines: [String] = []
    private(set) var totalLines = 0
    private var bytes = 0

    init(maxLines: Int, maxBytes: Int) {
        self.maxLines = max(0, maxLines)
        self.maxBytes = max(0, maxBytes)
    }

    /// Counts a line without keeping it.
    mutating func countWithoutKeeping() {
        totalLines += 1
    }

    mutating func append(_ line: String) {
        totalLines += 1
        guard maxLines > 0, maxBytes > 0 else { return }
        let line = Self.jsonBytes(line.utf8) <= maxBytes
            ? line : String(line.prefix(fittingIn: maxBytes) { Self.jsonBytes($0.utf8) })
        lines.append(line)
        bytes += Self.jsonBytes(line.utf8)
        while lines.count > maxLines || bytes > maxBytes {
            bytes -= Self.jsonBytes(lines.removeFirst().utf8)
        }
    }

    /// The bytes of `utf8` inside a JSON string (control characters are gone already).
    private static func jsonBytes(_ utf8: some Sequence<UInt8>) -> Int {
        utf8.reduce(0) { $0 + (isEscaped($1) ? 2 : 1) }
    }

    private static func isEscaped(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\t")
    }
}

/// A line a command writes to report progress:
///
///     PROGRESS <current>[/<total>][ <message>]
///
/// `PROGRESS` in capitals at the very start of the line, one space, a
/// non-negative decimal `current`, optionally `/` and a non-negative decimal
/// `total` (no spaces around the slash), then optionally one space and a
/// message (the rest of the line). Anything else is an ordinary output line.
struct ProgressLine: Sendable, Hashable {
    var current: Int
    var total: Int?
    var message: String?

    init(current: Int, total: Int? = nil, message: String? = nil) {
        self.current = current
        self.total = total
        self.message = message
    }

    init?(parsing line: String) {
        guard line.hasPrefix("PROGRESS ") else { return nil }
        let rest = line.dropFirst("PROGRESS ".count)
        let counts = rest.prefix { $0 != " " }
        let parts = counts.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let currentText = parts.first, let current = Int(decimalDigits: currentText) else { return nil }
        var total: Int?
        if parts.count == 2 {
            guard let parsed = Int(decimalDigits: parts[1]) else { return nil }
            total = parsed
        }
        let message = rest.dropFirst(counts.count).dropFirst()
        self.init(current: current, total: total, message: message.isEmpty ? nil : String(message))
    }
}
