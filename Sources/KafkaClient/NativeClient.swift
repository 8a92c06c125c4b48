internal import CKafka
import Foundation
import Logging
import Synchronization

/// The one owner of a librdkafka `rd_kafka_t` handle.
///
/// `@unchecked Sendable` is safe because librdkafka's handle is thread-safe for
/// every call this module makes on it, and the pointer never leaves this module.
/// The handle is destroyed in `deinit`, after the client's own thread is done.
final class NativeClient: @unchecked Sendable {
    let pointer: OpaquePointer
    let logger: Logger

    enum Kind { case producer, consumer }

    /// Creates the handle; `opaque` is handed to every callback set on `conf`.
    init(kind: Kind, properties: [String: String], context box: CallbackContext,
         configure: (OpaquePointer) -> Void = { _ in }) throws(KafkaError) {
        let conf = try makeNativeConfiguration(properties)
        configure(conf)
        // Route librdkafka's logs into swift-log instead of stderr.
        rd_kafka_conf_set_log_cb(conf, nativeLogCallback)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passRetained(box).toOpaque())
        var errorText = [CChar](repeating: 0, count: 512)
        let type = kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            Unmanaged<CallbackContext>.passUnretained(box).release()
            let reason = string(fromCBuffer: errorText)
            throw .invalidConfiguration(reason)
        }
        self.pointer = handle
        self.logger = box.logger
        self.context = Unmanaged.passUnretained(box)
    }

    private let context: Unmanaged<CallbackContext>
    private let kept = Atomic<Bool>(false)

    /// Leaves the handle (and what its callbacks use) alive for the rest of the
    /// process: for the one case where destroying it would abort the process
    /// (see `ConsumerEngine.awaitFirstAssignment`).
    func keepHandle() { kept.store(true, ordering: .releasing) }

    /// Whether the group coordinator has given this consumer a member id.
    var hasMemberID: Bool {
        guard let id = rd_kafka_memberid(pointer) else { return false }
        defer { rd_kafka_mem_free(pointer, id) }
        return id.pointee != 0
    }

    /// Makes a thread blocked in `rd_kafka_poll` on this handle return now. A
    /// wake-up that finds no thread polling is kept for the next poll.
    func wakePoll() {
        guard let queue = rd_kafka_queue_get_main(pointer) else { return }
        rd_kafka_queue_yield(queue)
        rd_kafka_queue_destroy(queue)
    }

    deinit {
        guard !kept.load(ordering: .acquiring) else { return }
        rd_kafka_destroy(pointer)
        context.release()
    }
}

/// What the C callbacks need, reached through the handle's opaque pointer: the
/// logger, and the client's own state for delivery reports or rebalances.
final class CallbackContext: Sendable {
    let logger: Logger
    let handler: (any Sendable & AnyObject)?
    init(logger: Logger, handler: (any Sendable & AnyObject)? = nil) {
        self.logger = logger
        self.handler = handler
    }

    static func from(_ opaque: UnsafeMutableRawPointer) -> CallbackContext {
        Unmanaged<CallbackContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

private let nativeLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = { handle, level, facility, message in
    guard let handle, let opaque = rd_kafka_opaque(handle), let message else { return }
    let box = CallbackContext.from(opaque)
    // syslog levels: 0-3 error, 4 warning, 5 notice, 6 info (connection churn), 7 debug
    let swiftLevel: Logger.Level = switch level {
    case ...3: .error
    case 4: .warning
    case 5: .info
    default: .debug
    }
    box.logger.log(level: swiftLevel, "\(String(cString: message))",
                   metadata: ["rdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")"])
}

/// Runs `body` on a thread of its own, so a blocking librdkafka call never ties up
/// the cooperative pool. For rare calls (metadata, watermarks, admin requests).
///
/// If the calling task is cancelled first, this returns `cancelled` at once and
/// the thread's late result is dropped: librdkafka can block past its own timeout
/// when the broker is gone for good, and a shutdown must not wait for it.
func onDedicatedThread<T: Sendable>(_ name: String, cancelled: T, _ body: @escaping @Sendable () -> T) async -> T {
    let outcome = OnceContinuation<T>()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            outcome.attach(continuation)
            let thread = Thread { outcome.resume(body()) }
            thread.name = name
            thread.start()
        }
    } onCancel: {
        outcome.resume(cancelled)
    }
}

/// A continuation resumed by whichever comes first, the result or a cancel.
private final class OnceContinuation<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, Never>?
        var value: T?
        var resumed = false
    }
    private let state = Mutex(State())

    func attach(_ continuation: CheckedContinuation<T, Never>) {
        let ready = state.withLock { state -> T? in
            if let value = state.value {
                state.resumed = true
                return value
            }
            state.continuation = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    func resume(_ value: T) {
        let continuation = state.withLock { state -> CheckedContinuation<T, Never>? in
            guard !state.resumed, state.value == nil else { return nil }
            guard let continuation = state.continuation else {
                state.value = value
                return nil
            }
            state.resumed = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}
