/// A strong validator for a response body (RFC 9110 §8.8.3): a poller that sends
/// it back in `If-None-Match` gets `304 Not Modified`, without the body, until
/// the job changes. A browser's `fetch` does that by itself for a response marked
/// `Cache-Control: no-cache`.
///
/// The tag is a hash of the body's bytes (64-bit FNV-1a), so it changes exactly
/// when the body does, whichever gateway replica answers.
struct EntityTag: Hashable, Sendable, CustomStringConvertible {
    /// The opaque tag, without its quotes.
    let opaque: String

    init(of body: [UInt8]) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in body {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        opaque = String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The field value: `"…"`.
    var description: String { "\"\(opaque)\"" }

    /// Whether an `If-None-Match` field's values name this tag or `*`, by weak
    /// comparison, as §13.1.2 asks of a GET: `W/"x"` matches `"x"`. Values that are
    /// not entity tags match nothing (the request is then answered in full).
    func isMatched(byIfNoneMatch values: [String]) -> Bool {
        values.contains { value in
            var rest = Substring(value)
            while true {
                rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "," }
                if rest.isEmpty { return false }
                if rest.hasPrefix("*") { return true }
                if rest.hasPrefix("W/") { rest = rest.dropFirst(2) }
                guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else { return false }
                if rest[rest.index(after: rest.startIndex)..<close] == opaque { return true }
                rest = rest[rest.index(after: close)...]
            }
        }
    }
}
