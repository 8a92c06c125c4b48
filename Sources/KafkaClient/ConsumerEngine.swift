internal import CKafka
import Foundation
import Logging
import Synchronization

/// The machinery behind ``KafkaConsumer`` and ``KafkaTopicReader``: a dedicated
/// thread that never stops calling `rd_kafka_consumer_poll` (so the group never
/// evicts us for exceeding `max.poll.interval.ms`), a bounded buffer of events,
/// and, for a group member, pause/resume of every assigned partition while the
/// buffer is full.
final class ConsumerEngine: Sendable {
    enum Mode: Sendable {
        /// Join `groupID` and subscribe: partitions come and go with rebalances.
        case group(topics: [String], listener: (any RebalanceListener)?)
        /// Assign every partition of `topic` ourselves, starting at either end.
        case broadcast(topic: String, fromBeginning: Bool)
    }

    /// How a broadcast reader learns a topic's partition count (the cluster's
    /// metadata; a test may stand in for it), and how often it asks again: a
    /// topic may gain partitions while it is read.
    struct PartitionWatch: Sendable {
        var count: @Sendable (NativeClient, String, Int32) -> Result<Int32, KafkaError> = { partitionCount(client: $0, topic: $1, timeoutMs: $2) }
        var interval: Duration = .seconds(10)
    }

    let client: NativeClient
    let buffer: EventBuffer
    let flow: FlowControl
    private let rebalance: RebalanceHandler
    private let mode: Mode
    private let partitionWatch: PartitionWatch
    private let consumerQueue: QueueHandle
    private let lifecycle = Mutex(Lifecycle.running)

    private enum Lifecycle {
        case running
        case closing(waiters: [CheckedContinuation<Void, Never>])
        case closed
    }

    init(mode: Mode, properties: [String: String], capacity: Int, partitionWatch: PartitionWatch = PartitionWatch(),
         logger: Logger) throws(KafkaError) {
        let flow = FlowControl(highWater: capacity)
        let rebalance = RebalanceHandler(listener: { if case .group(_, let l) = mode { l } else { nil } }(), flow: flow, logger: logger)
        let client = try NativeClient(kind: .consumer, properties: properties,
                                      context: CallbackContext(logger: logger, handler: rebalance)) { conf in
            if case .group = mode { rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback) }
        }
        rd_kafka_poll_set_consumer(client.pointer)
        // librdkafka has no consumer queue without a group.id (an empty one counts as none).
        guard let consumerQueue = rd_kafka_queue_get_consumer(client.pointer) else {
            throw .invalidConfiguration("a consumer needs a group.id that is not empty")
        }
        let queue = QueueHandle(consumerQueue, of: client)
        let buffer = EventBuffer(lowWater: capacity / 2) { [flow, weak queue] in
            // Wake the poll thread so it resumes the partitions without waiting out its timeout.
            if flow.isPaused { queue?.yield() }
        }
        rebalance.buffer = buffer
        self.client = client
        self.buffer = buffer
        self.flow = flow
        self.rebalance = rebalance
        self.mode = mode
        self.partitionWatch = partitionWatch
        self.consumerQueue = queue
    }

    /// Starts the consumer's thread. It holds the engine until `close()`.
    func start(threadName: String) {
        let thread = Thread { self.pollUntilClosed() }
        thread.name = threadName
        thread.start()
    }

    private var isClosing: Bool {
        lifecycle.withLock { if case .running = $0 { false } else { true } }
    }

    private func pollUntilClosed() {
        let logger = client.logger
        // Partitions 0..<this of a broadcast reader's topic are assigned.
        var assignedPartitions: Int32 = 0
        switch mode {
        case .group(let topics, _):
            let list = PartitionList(topics.map { TopicPartition(topic: $0, partition: -1) })
            let err = rd_kafka_subscribe(client.pointer, list.pointer)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.error("subscribe failed", metadata: ["error": "\(KafkaError(err))"])
            }
        case .broadcast(let topic, let fromBeginning):
            assignedPartitions = assignAllPartitions(of: topic, fromBeginning: fromBeginning)
        }

        var nextPartitionCheck = ContinuousClock.now + partitionWatch.interval
        while !isClosing {
            if case .broadcast(let topic, _) = mode, ContinuousClock.now >= nextPartitionCheck {
                assignedPartitions = assignNewPartitions(of: topic, assigned: assignedPartitions)
                nextPartitionCheck = ContinuousClock.now + partitionWatch.interval
            }
            if case .broadcast = mode, buffer.count >= flow.highWater {
                // A reader has no group to stay in, so it may simply stop polling
                // while its buffer is full: librdkafka keeps what it prefetched
                // and stops fetching at its own queue limit. Pausing would throw
                // the prefetched messages away (librdkafka purges a paused
                // partition's queue), and a replay would fetch each batch again.
                usleep(1_000)
                continue
            }
            if let message = rd_kafka_consumer_poll(client.pointer, 100) {
                deliver(message)
                rd_kafka_message_destroy(message)
            }
            if case .group = mode { applyFlowControl() }
        }

        if case .group = mode {
            let safeToDestroy = awaitFirstAssignment(unjoined: .seconds(6), joined: .seconds(20))
            // Serves the final revoke (the listener hands work back, offsets are committed).
            let err = rd_kafka_consumer_close(client.pointer)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.warning("consumer close reported an error", metadata: ["error": "\(KafkaError(err))"])
            }
            if !safeToDestroy {
                logger.warning("the consumer joined its group but got no assignment before it closed; its librdkafka handle is kept, not destroyed, since librdkafka 2.0.2 would abort the process")
                client.keepHandle()
            }
        }
        buffer.finish()
        let waiters = lifecycle.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state = .closed }
            if case .closing(let waiters) = state { return waiters }
            return []
        }
        waiters.forEach { $0.resume() }
    }

    /// librdkafka 2.0.2 (Debian's) aborts the process when a cooperative-sticky
    /// member that has joined its group is destroyed before its first assignment:
    /// the assignor's state is still NULL (confluentinc/librdkafka#4312, fixed in
    /// 2.3.0). The window opens with the JoinGroup answer, which also gives the
    /// member its id, and closes with the assignment. A consumer closed that early
    /// keeps serving the group until the assignment arrives: for up to `unjoined`
    /// while it has no member id, `joined` once it has one (the assignment is on
    /// its way unless the broker is gone). Returns whether destroying the handle
    /// is safe: assigned, or never joined. A JoinGroup answer handled once the
    /// close has begun is discarded; one handled in the instant between the last
    /// check here and the close is not seen, a window this narrows but can't shut.
    private func awaitFirstAssignment(unjoined: Duration, joined: Duration) -> Bool {
        let start = ContinuousClock.now
        while !rebalance.hasBeenAssigned {
            let waited = ContinuousClock.now - start
            if waited >= joined || (waited >= unjoined && !client.hasMemberID) { break }
            if let message = rd_kafka_consumer_poll(client.pointer, 100) { rd_kafka_message_destroy(message) }
        }
        return rebalance.hasBeenAssigned || !client.hasMemberID
    }

    private func deliver(_ message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let m = message.pointee
        guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            // Consumer errors (broker down, partition EOF) are transient: librdkafka retries.
            if m.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                client.logger.debug("consumer error", metadata: ["error": "\(KafkaError(m.err))"])
            }
            return
        }
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) }
        buffer.push(.message(KafkaMessage(
            topic: String(cString: rd_kafka_topic_name(m.rkt)),
            partition: m.partition, offset: m.offset, key: key, value: value
        )))
    }

    /// Pauses every assigned partition while the buffer is full, resumes it once
    /// the reader has drained it to half. Paused partitions keep their position.
    private func applyFlowControl() {
        let depth = buffer.count
        if !flow.isPaused, depth >= flow.highWater {
            flow.setPaused(true)
            withAssignment { rd_kafka_pause_partitions(client.pointer, $0) }
        } else if flow.isPaused, depth <= buffer.lowWater {
            flow.setPaused(false)
            withAssignment { rd_kafka_resume_partitions(client.pointer, $0) }
        }
    }

    private func withAssignment(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> rd_kafka_resp_err_t) {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(client.pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        _ = body(list)
        rd_kafka_topic_partition_list_destroy(list)
    }

    /// Returns how many partitions it assigned (none if closed first).
    private func assignAllPartitions(of topic: String, fromBeginning: Bool) -> Int32 {
        while !isClosing {
            switch partitionWatch.count(client, topic, 2000) {
            case .success(let count):
                let start = Int64(fromBeginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END)
                let list = PartitionList((0..<count).map { TopicPartition(topic: topic, partition: $0) }, offset: start)
                let err = rd_kafka_assign(client.pointer, list.pointer)
                if err == RD_KAFKA_RESP_ERR_NO_ERROR { return count }
                client.logger.warning("assign failed; retrying", metadata: ["topic": "\(topic)", "error": "\(KafkaError(err))"])
            case .failure(let error):
                client.logger.info("waiting for topic metadata", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return 0
    }

    /// Adds partitions the topic gained since they were assigned (an operator
    /// may add some at any time), each from its beginning: all they hold was
    /// written after this reader started. Without them the reader would miss
    /// their records, and never reach the end offsets its readers wait for.
    /// Returns how many partitions are assigned now.
    private func assignNewPartitions(of topic: String, assigned: Int32) -> Int32 {
        guard case .success(let count) = partitionWatch.count(client, topic, 1000), count > assigned else { return assigned }
        let added = (assigned..<count).map { TopicPartition(topic: topic, partition: $0) }
        let list = PartitionList(added, offset: Int64(RD_KAFKA_OFFSET_BEGINNING))
        if let error = rd_kafka_incremental_assign(client.pointer, list.pointer) {
            client.logger.warning("could not assign new partitions; retrying", metadata: ["topic": "\(topic)", "error": "\(KafkaError(consuming: error))"])
            return assigned
        }
        client.logger.info("the topic gained partitions; reading the new ones from their beginning",
                           metadata: ["topic": "\(topic)", "partitions": "\(assigned) → \(count)"])
        return count
    }

    /// Stops polling; for a group, leaves it after the final revoke. Idempotent.
    func close() async {
        await withCheckedContinuation { continuation in
            let done = lifecycle.withLock { state in
                switch state {
                case .running: state = .closing(waiters: [continuation])
                case .closing(let waiters): state = .closing(waiters: waiters + [continuation])
                case .closed: return true
                }
                return false
            }
            if done { continuation.resume() } else { consumerQueue.yield() }
        }
    }
}

/// Whether the partitions are paused; read by the buffer's drain hook on any thread.
final class FlowControl: Sendable {
    let highWater: Int
    private let paused = Atomic<Bool>(false)
    init(highWater: Int) { self.highWater = max(2, highWater) }
    var isPaused: Bool { paused.load(ordering: .acquiring) }
    func setPaused(_ value: Bool) { paused.store(value, ordering: .releasing) }
}

/// A `rd_kafka_queue_t` reference, destroyed with its owner.
///
/// It keeps its client alive: librdkafka wants every queue destroyed before
/// its handle, whatever order the owner's properties are released in. (The
/// buffer's wake-up holds it weakly: the client's callbacks hold the buffer.)
final class QueueHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let client: NativeClient
    init(_ pointer: OpaquePointer, of client: NativeClient) {
        self.pointer = pointer
        self.client = client
    }
    func yield() { rd_kafka_queue_yield(pointer) }
    deinit { rd_kafka_queue_destroy(pointer) }
}

/// State the rebalance callback needs; it does not reference the client, so there
/// is no cycle through the callback context.
final class RebalanceHandler: @unchecked Sendable {
    let listener: (any RebalanceListener)?
    let flow: FlowControl
    let logger: Logger
    /// Set once, right after init, before the consumer's thread starts.
    var buffer: EventBuffer?
    private let assigned = Atomic<Bool>(false)

    /// Partitions revoked while the consumer was paused: librdkafka still holds
    /// them paused, so they must be resumed if they come back while it isn't.
    private let stalePauses = Mutex(Set<TopicPartition>())

    /// Whether the group has handed this member an assignment yet (even an empty one).
    var hasBeenAssigned: Bool { assigned.load(ordering: .acquiring) }
    func noteAssignment() { assigned.store(true, ordering: .releasing) }

    func noteRevoked(_ partitions: [TopicPartition]) {
        guard flow.isPaused else { return }
        stalePauses.withLock { $0.formUnion(partitions) }
    }

    /// Those of `partitions` that were revoked while paused; they are forgotten,
    /// as the caller now gives them the current pause state.
    func takeStalePauses(among partitions: [TopicPartition]) -> [TopicPartition] {
        stalePauses.withLock { stale in partitions.filter { stale.remove($0) != nil } }
    }

    init(listener: (any RebalanceListener)?, flow: FlowControl, logger: Logger) {
        self.listener = listener
        self.flow = flow
        self.logger = logger
    }
}

private let rebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = { handle, err, list, opaque in
    guard let handle, let list, let opaque,
          let handler = CallbackContext.from(opaque).handler as? RebalanceHandler
    else { return }
    let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
    let partitions = PartitionList.read(list)
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        handler.noteAssignment()
        let failure = cooperative
            ? rd_kafka_incremental_assign(handle, list).map { KafkaError(consuming: $0) }
            : { let e = rd_kafka_assign(handle, list); return e == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(e) }()
        if let failure {
            handler.logger.error("assign failed", metadata: ["error": "\(failure)"])
            return
        }
        // librdkafka 2.0.2 keeps a partition's app pause flag through a revoke:
        // one paused here, revoked, and assigned again after a resume would stay
        // paused for good. So an assigned partition gets the current state, but
        // only one that may carry a stale pause is resumed: in 2.0.2 resuming a
        // partition that isn't paused still bumps its fetch version, which can
        // restart its fetch from an older position (librdkafka#4636, fixed in 2.3.1).
        let stale = handler.takeStalePauses(among: partitions)
        if handler.flow.isPaused {
            rd_kafka_pause_partitions(handle, list)
        } else if !stale.isEmpty {
            let resume = PartitionList(stale)
            rd_kafka_resume_partitions(handle, resume.pointer)
        }
        handler.logger.info("partitions assigned", metadata: ["partitions": "\(partitions)"])
        handler.listener?.partitionsAssigned(partitions)
        handler.buffer?.push(.assigned(partitions))
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        handler.noteRevoked(partitions)
        handler.buffer?.removeMessages(of: Set(partitions))
        handler.listener?.partitionsRevoked(partitions)
        if rd_kafka_assignment_lost(handle) == 0 {
            // Synchronous: the next owner starts from what we finished, not from older offsets.
            let commitErr = rd_kafka_commit(handle, nil, 0)
            if commitErr != RD_KAFKA_RESP_ERR_NO_ERROR, commitErr != RD_KAFKA_RESP_ERR__NO_OFFSET {
                handler.logger.warning("commit on revoke failed", metadata: ["error": "\(KafkaError(commitErr))"])
            }
        }
        if cooperative {
            if let error = rd_kafka_incremental_unassign(handle, list) {
                handler.logger.error("unassign failed", metadata: ["error": "\(KafkaError(consuming: error))"])
            }
        } else {
            rd_kafka_assign(handle, nil)
        }
        handler.logger.info("partitions revoked", metadata: ["partitions": "\(partitions)"])
        handler.buffer?.push(.revoked(partitions))
    default:
        handler.logger.error("rebalance error", metadata: ["error": "\(KafkaError(err))"])
        rd_kafka_assign(handle, nil)
    }
}

/// An owned `rd_kafka_topic_partition_list_t`, and reading one we don't own.
struct PartitionList: ~Copyable {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ partitions: [TopicPartition], offset: Int64? = nil) {
        pointer = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        for tp in partitions {
            let element = rd_kafka_topic_partition_list_add(pointer, tp.topic, tp.partition)!
            if let offset { element.pointee.offset = offset }
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(pointer) }

    static func read(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return TopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }
}

/// Asks the cluster how many partitions `topic` has. Blocking: call on a thread of our own.
func partitionCount(client: NativeClient, topic: String, timeoutMs: Int32) -> Result<Int32, KafkaError> {
    guard let topicHandle = rd_kafka_topic_new(client.pointer, topic, nil) else {
        return .failure(KafkaError(code: "_INVALID_ARG", message: "bad topic name \(topic)"))
    }
    defer { rd_kafka_topic_destroy(topicHandle) }
    var metadata: UnsafePointer<rd_kafka_metadata>?
    let err = rd_kafka_metadata(client.pointer, 0, topicHandle, &metadata, timeoutMs)
    guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
        return .failure(KafkaError(err, context: "metadata for \(topic)"))
    }
    defer { rd_kafka_metadata_destroy(metadata) }
    guard metadata.pointee.topic_cnt > 0 else {
        return .failure(KafkaError(code: "UNKNOWN_TOPIC_OR_PART", message: "no metadata for \(topic)"))
    }
    let info = metadata.pointee.topics[0]
    guard info.err == RD_KAFKA_RESP_ERR_NO_ERROR, info.partition_cnt > 0 else {
        return .failure(KafkaError(info.err, context: "topic \(topic)"))
    }
    return .success(info.partition_cnt)
}
