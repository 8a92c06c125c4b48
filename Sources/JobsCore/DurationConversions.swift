extension Duration {
    /// Whole milliseconds, rounded toward zero, and clamped rather than trapping
    /// for durations beyond `Int`'s range: what the `…Ms` fields of a snapshot or
    /// heartbeat and librdkafka's `….ms` settings hold.
    public var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        let (milliseconds, overflow) = Int(seconds).multipliedReportingOverflow(by: 1000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (sum, sumOverflow) = milliseconds.addingReportingOverflow(Int(attoseconds / 1_000_000_000_000_000))
        return sumOverflow ? (seconds < 0 ? .min : .max) : sum
    }

    /// In seconds, for `Date` arithmetic.
    public var timeInterval: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
