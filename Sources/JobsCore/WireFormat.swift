import Foundation

/// The JSON encoding shared by every topic and the HTTP API: ISO 8601 times with
/// milliseconds, sorted keys off (speed), and the same decoder everywhere.
public enum WireFormat {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestampText(date))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            if let date = parseTimestamp(text) { return date }
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an ISO 8601 time, got \(text)")
        }
        return decoder
    }

    /// An RFC 3339 time (the `date-time` of JSON Schema and OpenAPI), with or
    /// without fractional seconds and with any offset, to the millisecond.
    ///
    /// Only instants from year 1 to 9999 in UTC: `9999-12-31T23:30:00-01:00` is
    /// year 10000 there, which no four-digit RFC 3339 text can carry, so a
    /// snapshot holding it could not be written back for other readers.
    public static func parseTimestamp(_ text: String) -> Date? {
        guard let date = RFC3339.parse(text).map(wholeMilliseconds),
              writableMilliseconds.contains(Int64((date.timeIntervalSince1970 * 1000).rounded())) else { return nil }
        return date
    }

    /// 0001-01-01T00:00:00.000Z through 9999-12-31T23:59:59.999Z.
    static let writableMilliseconds: ClosedRange<Int64> = -62_135_596_800_000...253_402_300_799_999

    private static let secondsStyle = Date.ISO8601FormatStyle()

    /// `date` rounded to the millisecond, as `2023-11-14T22:13:20.123Z`.
    ///
    /// Written by hand (``RFC3339``), in the proleptic Gregorian calendar that
    /// ``parseTimestamp(_:)`` reads; Foundation writes years before 1 or after 9999.
    public static func timestampText(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        return RFC3339.text(milliseconds: milliseconds) ?? foundationTimestampText(milliseconds: milliseconds)
    }

    /// The milliseconds are added by hand: `ISO8601FormatStyle` truncates the
    /// fraction, and a time such as .123 s is held as .12299999… in a `Date`, so
    /// half of all decoded times would be re-encoded one millisecond earlier.
    static func foundationTimestampText(milliseconds: Int64) -> String {
        var (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        if fraction < 0 { seconds -= 1; fraction += 1000 }
        let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(secondsStyle)  // "…:20Z"
        let digits = String(fraction)
        return whole.dropLast() + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }

    /// The same instant as `Date(timeIntervalSince1970: ms / 1000)`, so that a
    /// decoded time equals the one that was encoded.
    static func wholeMilliseconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder().encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) throws -> T {
        try decoder().decode(type, from: Data(bytes))
    }
}
