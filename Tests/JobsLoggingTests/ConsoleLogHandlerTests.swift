import JobsLogging
import Logging
import Synchronization
import Testing

@Suite struct ConsoleLogHandlerTests {
    @Test func metadataIsFormattedOnlyWhenALineIsWritten() {
        let lines = Lines()
        let formatted = FormattingCounter()
        var logger = Logger(label: "test") { ConsoleLogHandler(label: $0, level: .info, stream: lines) }
        logger[metadataKey: "request.id"] = .stringConvertible(formatted)
        logger[metadataKey: "job.id"] = "j-1"
        logger.debug("below the level")
        #expect(formatted.count == 0)

        logger.info("written")
        #expect(formatted.count == 1)
        #expect(lines.written.count == 1)
    }

    @Test func linesCarryTheLoggersMetadataUnderTheCallSites() throws {
        let lines = Lines()
        var logger = Logger(label: "jobs.test") { ConsoleLogHandler(label: $0, level: .info, stream: lines) }
        logger[metadataKey: "job.id"] = "j-1"
        logger[metadataKey: "job.type"] = "sleep"
        logger.warning("retrying", metadata: ["job.type": "noop", "error": "timeout"])
        logger.notice("plain")

        let written = lines.written
        try #require(written.count == 2)
        #expect(written[0].contains(" warning jobs.test: error=timeout job.id=j-1 job.type=noop [JobsLoggingTests] retrying"))
        #expect(written[1].contains(" notice jobs.test: job.id=j-1 job.type=sleep [JobsLoggingTests] plain"))
    }

    @Test func theLevelIsTheHandlers() {
        let lines = Lines()
        var logger = Logger(label: "test") { ConsoleLogHandler(label: $0, level: .error, stream: lines) }
        logger.warning("dropped")
        logger.logLevel = .warning
        logger.warning("kept")
        #expect(lines.written.count == 1)
        #expect(lines.written.first?.hasSuffix("kept\n") == true)
    }
}

/// A stream that keeps what it is given, one entry per write (a line each).
private final class Lines: TextOutputStream, Sendable {
    private let storage = Mutex<[String]>([])
    var written: [String] { storage.withLock { $0 } }
    func write(_ string: String) { storage.withLock { $0.append(string) } }
}

/// A metadata value that counts how often it is turned into text.
private final class FormattingCounter: CustomStringConvertible, Sendable {
    private let formatted = Atomic(0)
    var count: Int { formatted.load(ordering: .relaxed) }
    var description: String {
        formatted.add(1, ordering: .relaxed)
        return "r-1"
    }
}
