internal import CKafka

/// A failure reported by librdkafka or by this client, with librdkafka's error
/// name when there is one (`_MSG_TIMED_OUT`, `TOPIC_ALREADY_EXISTS`, ...).
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// librdkafka's symbolic error name, or a name of this client's own.
    public let code: String
    public let message: String
    /// librdkafka refused the message when it was handed over, before sending
    /// it (see ``isTooLargeToSend``).
    var refusedBeforeSending = false

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        code = String(cString: rd_kafka_err2name(err))
        let text = String(cString: rd_kafka_err2str(err))
        message = context.map { "\($0): \(text)" } ?? text
    }

    /// Consumes (destroys) a librdkafka error object.
    init(consuming error: OpaquePointer, context: String? = nil) {
        code = String(cString: rd_kafka_err2name(rd_kafka_error_code(error)))
        let text = String(cString: rd_kafka_error_string(error))
        message = context.map { "\($0): \(text)" } ?? text
        rd_kafka_error_destroy(error)
    }

    public var description: String { "\(code): \(message)" }

    /// The message was not acknowledged before `message.timeout.ms`.
    public var isTimeout: Bool { code == "_MSG_TIMED_OUT" || code == "_TIMED_OUT" }

    /// The producer refused the message itself, before sending it, as larger
    /// than its `message.max.bytes`: sending it again can never succeed. Not
    /// the broker's `MSG_SIZE_TOO_LARGE`, which refuses a whole batch, so may be
    /// for a message it shared one with.
    public var isTooLargeToSend: Bool { refusedBeforeSending && code == "MSG_SIZE_TOO_LARGE" }

    /// The client was shut down before the operation could complete.
    public var isClientClosed: Bool { code == Self.closed.code }

    static let cancelled = KafkaError(code: "_CANCELLED", message: "the caller stopped waiting for the broker")

    static let closed = KafkaError(code: "_CLIENT_CLOSED", message: "the Kafka client is shut down")
    static func invalidConfiguration(_ message: String) -> KafkaError {
        KafkaError(code: "_INVALID_CONFIG", message: message)
    }
}
