extension FixedWidthInteger {
    /// Reads plain decimal digits: no sign, no spaces, no `_`, not empty; nil
    /// when anything else is there or the value doesn't fit.
    ///
    /// Counts and positions that people type (`?limit=`, `Last-Event-ID`,
    /// `PROGRESS 3/10`, cursors) are written this way. `Int("+5")` is 5, and a
    /// typo accepted quietly is worse than a clear refusal.
    public init?(decimalDigits bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return nil }
        var value: Self = 0
        for byte in bytes {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (sum, carried) = shifted.addingReportingOverflow(Self(byte - UInt8(ascii: "0")))
            guard !overflowed, !carried else { return nil }
            value = sum
        }
        self = value
    }

    /// Reads plain decimal digits, as the byte form above.
    public init?(decimalDigits text: some StringProtocol) {
        self.init(decimalDigits: text.utf8)
    }
}
