import Foundation

/// A job's identity: always a string on the wire and in URLs, so that an id never
/// silently misses itself by being an integer in one place and a string in another.
public struct JobID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    /// A fresh, server-generated id: a random (version 4) UUID, lowercase.
    ///
    /// Made here rather than by Foundation's `UUID()`, which on Linux opens
    /// `/dev/urandom` anew for every id: one system call (getrandom) instead of
    /// three, on every submit.
    public static func generate() -> JobID {
        var random = SystemRandomNumberGenerator()
        var high: UInt64 = random.next(), low: UInt64 = random.next()
        high = high & ~0xF000 | 0x4000  // version 4
        low = low & ~(0xC0 << 56) | (0x80 << 56)  // RFC 9562 variant
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for nibble in 0..<32 {
            if [8, 12, 16, 20].contains(nibble) { text.append(UInt8(ascii: "-")) }
            let word = nibble < 16 ? high : low
            text.append(hex[Int(word >> UInt64(60 - 4 * (nibble % 16)) & 0xF)])
        }
        return JobID(rawValue: String(decoding: text, as: UTF8.self))
    }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
