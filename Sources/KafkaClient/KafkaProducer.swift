internal import CKafka
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Where the broker stored an acknowledged message.
public struct DeliveryReport: Sendable, Hashable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
}

/// A producer whose `send` returns once the broker acknowledged the message
/// (acks=all, idempotence on, so retries never duplicate or reorder).
///
/// One dedicated thread serves librdkafka's delivery reports and resumes the
/// awaiting tasks directly: nothing on the send path sleeps or polls on the
/// cooperative pool.
///
/// - Important: Call ``shutdown(flushTimeout:)`` (or run it as a `Service`) so
///   queued messages are flushed before the process exits.
public final class KafkaProducer: Service, Sendable {
    private let client: NativeClient
    private let deliveries: PendingDeliveries
    private let lifecycle: Mutex<Lifecycle> = Mutex(.running)
    /// Set by an expedited send, taken by the poll thread.
    private let expediteRequested = Atomic<Bool>(false)
    private let logger: Logger
    private let knownTopics: [String]

    /// running → stopping (flush, then resume the waiters) → stopped.
    enum Lifecycle {
        case running
        case stopping(flushTimeout: Duration, waiters: [CheckedContinuation<Void, Never>])
        case stopped
    }

    /// The defaults a job system wants; any of them can be overridden.
    ///
    /// `linger.ms` is librdkafka's own default, 5 ms: under load it gathers each
    /// partition's messages into batches, which every broker, and above all the
    /// embedded one, serves far more cheaply than single messages (end-to-end
    /// throughput rose by a third over 1 ms; docs/operations.md). Messages a
    /// person waits on get a producer of their own with 0 (the gateway's cancels)
    /// or are sent `expedited` (a worker's `cancelled` snapshots, which share a
    /// key with lingering ones).
    public static let defaultProperties: [String: String] = [
        "enable.idempotence": "true",
        "acks": "all",
        "linger.ms": "5",
        "message.timeout.ms": "10000",
        "queue.buffering.max.messages": "1000000",
    ]

    /// - Parameter topics: the topics this producer will write; their metadata is
    ///   fetched up front so the first send to each is not held up by the lookup
    ///   (about a second otherwise).
    public init(configuration: KafkaConfiguration, topics: [String] = [],
                logger: Logger = Logger(label: "kafka.producer")) throws(KafkaError) {
        let deliveries = PendingDeliveries()
        let context = CallbackContext(logger: logger, handler: deliveries)
        self.client = try NativeClient(
            kind: .producer,
            properties: configuration.merged(with: Self.defaultProperties),
            context: context
        ) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback)
        }
        self.deliveries = deliveries
        self.logger = logger
        self.knownTopics = topics
        startPollThread()
    }

    private func startPollThread() {
        // The thread holds the producer until shutdown; then it lets go.
        let thread = Thread { self.pollUntilStopped() }
        thread.name = "kafka-producer"
        thread.start()
        guard !knownTopics.isEmpty else { return }
        // Beside the poll loop, not before it: with the broker unreachable these
        // lookups take 5 s each, and delivery reports (the failures a caller is
        // waiting for) would wait for all of them.
        let warmUp = Thread { [client, knownTopics, logger] in
            for topic in knownTopics {
                if case .failure(let error) = partitionCount(client: client, topic: topic, timeoutMs: 5000) {
                    logger.warning("no metadata for topic yet", metadata: ["topic": "\(topic)", "error": "\(error)"])
                }
            }
        }
        warmUp.name = "kafka-producer-metadata"
        warmUp.start()
    }

    private func pollUntilStopped() {
        while true {
            let flushTimeout: Duration? = lifecycle.withLock { state in
                if case .stopping(let timeout, _) = state { return timeout }
                return nil
            }
            if let flushTimeout {
                let flushed = rd_kafka_flush(client.pointer, Int32(flushTimeout.milliseconds))
                if flushed != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.warning("producer flush did not complete", metadata: ["error": "\(KafkaError(flushed))"])
                }
                deliveries.failAll(with: .closed)
                let waiters = lifecycle.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state = .stopped }
                    if case .stopping(_, let waiters) = state { return waiters }
                    return []
                }
                waiters.forEach { $0.resume() }
                return
            }
            rd_kafka_poll(client.pointer, 100)
            if expediteRequested.exchange(false, ordering: .acquiringAndReleasing) {
                // While a flush runs, librdkafka treats linger.ms as over and sends
                // what is queued at once; delivery reports are served meanwhile.
                // Long enough for the broker threads to wake and send, short
                // enough that batching under load pauses only briefly.
                _ = rd_kafka_flush(client.pointer, 20)
            }
        }
    }

    /// Sends one message and waits for the broker's acknowledgement.
    ///
    /// Throws ``KafkaError`` when the message could not be delivered within
    /// `message.timeout.ms` (code `_MSG_TIMED_OUT`), when the local queue is full
    /// (`_QUEUE_FULL`), or after shutdown. A send already handed to librdkafka is
    /// not withdrawn when the awaiting task is cancelled.
    ///
    /// - Parameter expedited: send it now rather than after `linger.ms`, with
    ///   whatever else is queued: for the rare message a person is waiting on.
    ///   Per-key order is kept, which a second producer with no linger would not.
    @discardableResult
    public func send(topic: String, key: [UInt8]?, value: [UInt8]?, expedited: Bool = false) async throws(KafkaError) -> DeliveryReport {
        try await send([OutgoingMessage(topic: topic, key: key, value: value)], expedited: expedited)[0].get()
    }

    /// Sends messages together and waits until each is acknowledged or has
    /// failed, as ``send(topic:key:value:)`` does for one: a single wait for all,
    /// where awaiting each in a task of its own costs a task and a wake-up per
    /// message. The results are in the order of `messages`; each may fail alone.
    public func send(_ messages: [OutgoingMessage], expedited: Bool = false) async -> [Result<DeliveryReport, KafkaError>] {
        guard !messages.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            // Registering under the lifecycle lock means shutdown's `failAll` sees
            // every send that got past this check: none is left waiting forever.
            let registered: Range<UInt>? = lifecycle.withLock { state in
                guard case .running = state else { return nil }
                return deliveries.register(messages.count, continuation)
            }
            guard let ids = registered else {
                continuation.resume(returning: Array(repeating: .failure(.closed), count: messages.count))
                return
            }
            for (id, message) in zip(ids, messages) {
                if let error = produce(topic: message.topic, key: message.key, value: message.value, id: id) {
                    deliveries.complete(id, with: .failure(error))
                }
            }
            if expedited {
                expediteRequested.store(true, ordering: .releasing)
                client.wakePoll()
            }
        }
    }

    /// Queues a message without waiting for its acknowledgement: for events whose
    /// loss a later, awaited send on the same key supersedes (progress reports).
    /// Ordering per key is kept; a delivery failure is logged.
    public func post(topic: String, key: [UInt8]?, value: [UInt8]?) throws(KafkaError) {
        guard lifecycle.withLock({ if case .running = $0 { true } else { false } }) else { throw .closed }
        if let error = produce(topic: topic, key: key, value: value, id: 0) { throw error }
    }

    /// Hands a message to librdkafka; returns the error when it refused it.
    /// `id` 0 means nobody awaits the delivery report.
    private func produce(topic: String, key: [UInt8]?, value: [UInt8]?, id: UInt) -> KafkaError? {
        topic.withCString { topicName in
            withOptionalBytes(key) { keyPointer, keyCount in
                withOptionalBytes(value) { valuePointer, valueCount in
                    var fields = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 5)
                    fields[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    fields[0].u.cstr = topicName
                    fields[1].vtype = RD_KAFKA_VTYPE_KEY
                    fields[1].u.mem.ptr = keyPointer
                    fields[1].u.mem.size = keyCount
                    fields[2].vtype = RD_KAFKA_VTYPE_VALUE
                    fields[2].u.mem.ptr = valuePointer
                    fields[2].u.mem.size = valueCount
                    fields[3].vtype = RD_KAFKA_VTYPE_OPAQUE
                    fields[3].u.ptr = UnsafeMutableRawPointer(bitPattern: id)
                    fields[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    fields[4].u.i = RD_KAFKA_MSG_F_COPY
                    guard let error = rd_kafka_produceva(client.pointer, &fields, fields.count) else { return nil }
                    var refusal = KafkaError(consuming: error, context: "produce to \(topic)")
                    refusal.refusedBeforeSending = true
                    return refusal
                }
            }
        }
    }

    /// Flushes what is queued (bounded by `flushTimeout`), fails whatever is still
    /// pending, and stops the client's thread. Later sends fail at once.
    public func shutdown(flushTimeout: Duration = .seconds(10)) async {
        await withCheckedContinuation { continuation in
            let alreadyStopped = lifecycle.withLock { state in
                switch state {
                case .running:
                    state = .stopping(flushTimeout: flushTimeout, waiters: [continuation])
                case .stopping(let timeout, let waiters):
                    state = .stopping(flushTimeout: timeout, waiters: waiters + [continuation])
                case .stopped:
                    return true
                }
                return false
            }
            if alreadyStopped { continuation.resume() }
        }
    }

    /// As a `Service`: idle until graceful shutdown, then flush. Put it before the
    /// services that send through it, so it stops after them.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}

/// One message for ``KafkaProducer/send(_:)``; a `nil` value is a tombstone.
public struct OutgoingMessage: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]?

    public init(topic: String, key: [UInt8]?, value: [UInt8]?) {
        self.topic = topic
        self.key = key
        self.value = value
    }
}

/// Sends awaiting their delivery reports, each message known by the id in its opaque.
final class PendingDeliveries: Sendable {
    typealias Results = [Result<DeliveryReport, KafkaError>]

    /// Messages sent together: answered together, once the last has its report.
    /// Only touched under the lock.
    private final class Batch {
        var results: Results
        var remaining: Int
        let continuation: CheckedContinuation<Results, Never>

        init(count: Int, continuation: CheckedContinuation<Results, Never>) {
            results = Array(repeating: .failure(.closed), count: count)
            remaining = count
            self.continuation = continuation
        }

        /// The continuation and its results once this was the last report.
        func record(_ result: Result<DeliveryReport, KafkaError>, at index: Int) -> (CheckedContinuation<Results, Never>, Results)? {
            results[index] = result
            remaining -= 1
            return remaining == 0 ? (continuation, results) : nil
        }
    }

    private struct State {
        var nextID: UInt = 1
        var waiting: [UInt: (batch: Batch, index: Int)] = [:]
    }
    private let state = Mutex(State())

    /// - Returns: the ids of the batch's messages, in order.
    func register(_ count: Int, _ continuation: CheckedContinuation<Results, Never>) -> Range<UInt> {
        state.withLock { state in
            let batch = Batch(count: count, continuation: continuation)
            let ids = state.nextID..<state.nextID + UInt(count)
            state.nextID = ids.upperBound
            for (index, id) in ids.enumerated() {
                state.waiting[id] = (batch, index)
            }
            return ids
        }
    }

    func complete(_ id: UInt, with result: Result<DeliveryReport, KafkaError>) {
        let finished = state.withLock { state in
            state.waiting.removeValue(forKey: id).flatMap { $0.batch.record(result, at: $0.index) }
        }
        if let (continuation, results) = finished { continuation.resume(returning: results) }
    }

    func failAll(with error: KafkaError) {
        let finished = state.withLock { state in
            defer { state.waiting.removeAll() }
            return state.waiting.values.compactMap { $0.batch.record(.failure(error), at: $0.index) }
        }
        for (continuation, results) in finished { continuation.resume(returning: results) }
    }
}

private let deliveryReportCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, message, opaque in
    guard let message, let opaque,
          let deliveries = CallbackContext.from(opaque).handler as? PendingDeliveries
    else { return }
    let id = UInt(bitPattern: message.pointee._private)
    guard id != 0 else {
        if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            CallbackContext.from(opaque).logger.warning("unawaited message not delivered",
                metadata: ["error": "\(KafkaError(message.pointee.err))"])
        }
        return
    }
    let result: Result<DeliveryReport, KafkaError>
    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        result = .success(DeliveryReport(
            topic: String(cString: rd_kafka_topic_name(message.pointee.rkt)),
            partition: message.pointee.partition,
            offset: message.pointee.offset
        ))
    } else {
        result = .failure(KafkaError(message.pointee.err, context: "delivery failed"))
    }
    deliveries.complete(id, with: result)
}

func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeMutableRawPointer?, Int) -> R) -> R {
    guard let bytes else { return body(nil, 0) }
    return bytes.withUnsafeBytes { buffer in
        body(UnsafeMutableRawPointer(mutating: buffer.baseAddress), buffer.count)
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
