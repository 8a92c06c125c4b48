import Foundation

/// A job's identity: always a string on the wire and in URLs, so that an id never
/// silently misses itself by being an integer in one place and a string in another.
public struct JobID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    /// A fresh, server-generated id (a lowercase UUID).
    public static func generate() -> JobID {
        JobID(rawValue: UUID().uuidString.lowercased())
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
