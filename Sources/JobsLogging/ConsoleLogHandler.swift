import Logging

/// The processes' log output: swift-log's `StreamLogHandler` on standard error,
/// same lines, but a logger's metadata is formatted only when a line is written.
///
/// `StreamLogHandler` formats its metadata each time a key is set, so that it is
/// ready for the next line. Hummingbird sets a request ID on every request's
/// logger and the worker sets a job's ID, type and attempt on every job's, so
/// the processes formatted metadata thousands of times a second for lines that
/// were almost never written: about 2 % of the gateway's CPU when serving reads.
public struct ConsoleLogHandler: LogHandler {
    private var output: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    /// Sets this handler, at `level`, as every logger's (once per process).
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in ConsoleLogHandler(label: label, level: level) }
    }

    /// - Parameter stream: where lines go; standard error unless a test collects them.
    public init(label: String, level: Logger.Level, stream: (any TextOutputStream & Sendable)? = nil) {
        output = stream.map { StreamLogHandler(label: label, stream: $0) } ?? .standardError(label: label)
        output.logLevel = level
    }

    public var logLevel: Logger.Level {
        get { output.logLevel }
        set { output.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { output.metadataProvider }
        set { output.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The logger's metadata goes along as the line's own, under what the call
    /// site gave, which wins as it would with `StreamLogHandler`.
    public func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        }
        output.log(event: event)
    }
}
