import Dispatch
import Foundation
import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle

/// A worker: joins the group on the commands topic, runs jobs up to its
/// concurrency, stops them on cancel commands, and publishes a snapshot of every
/// change. Run it in a `ServiceGroup`; on graceful shutdown it drains.
///
/// Delivery, in short (docs/delivery.md has the whole argument): a command's
/// offset is committed only after its job's final snapshot is acknowledged, so a
/// crash re-delivers every unfinished job; before running a command the worker
/// consults the status topic, so a finished job is never run again.
public final class JobWorker: Service {
    private let configuration: WorkerConfiguration
    private let registry: JobRegistry
    private let logger: Logger
    /// Cuts a drain short (see ``endDrain()``); one request is enough.
    private let drainCut = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))

    public init(configuration: WorkerConfiguration, registry: JobRegistry = .builtin,
                logger: Logger = Logger(label: "jobs.worker")) {
        self.configuration = configuration
        self.registry = registry
        var logger = logger
        logger[metadataKey: "worker.id"] = "\(configuration.workerID)"
        self.logger = logger
    }

    public func run() async throws {
        let kafka = configuration.kafka
        let topics = configuration.topics
        let producer = try KafkaProducer(configuration: kafka, topics: [topics.status, topics.workers], logger: logger)
        let statusReader = try KafkaTopicReader(configuration: kafka, topic: topics.status, from: .beginning, logger: logger)
        // A cancel waits on this reader: it fetches more eagerly than the others.
        let controlReader = try KafkaTopicReader(configuration: kafka, topic: topics.control, from: .end,
                                                 maxFetchWait: .milliseconds(3), logger: logger)
        let ledger = StatusLedger(logger: logger)
        let running = RunningJobs()
        let tracker = OffsetTracker()
        let admission = Admission(concurrency: configuration.concurrency, maxWaiting: configuration.maxWaitingCommands,
                                  typeLimits: registry.concurrencyLimits)
        let publisher = StatusPublisher(producer: producer, topic: topics.status, ledger: ledger, logger: logger)

        var consumerKafka = kafka
        consumerKafka.properties = WorkerConfiguration.consumerDefaults.merging(kafka.properties) { _, user in user }
        let consumer = try KafkaConsumer(
            configuration: consumerKafka, groupID: configuration.groupID, topics: [topics.commands],
            listener: PartitionHandover(tracker: tracker, admission: admission, running: running,
                                        timeout: configuration.revokeTimeout, logger: logger),
            // At least 64 commands read ahead: each pause and resume of the
            // partitions drops what was fetched and costs a new fetch, and with a
            // buffer of a few commands a small worker did that for every job.
            bufferCapacity: max(configuration.concurrency * 2, 64), logger: logger
        )
        logger.info("worker started", metadata: [
            "group": "\(configuration.groupID)", "concurrency": "\(configuration.concurrency)",
            "types": "\(registry.descriptors.map(\.name).joined(separator: ","))",
        ])

        let heartbeats = Heartbeats(configuration: configuration, registry: registry, producer: producer,
                                    running: running, admission: admission, logger: logger)
        let runner = Runner(configuration: configuration, registry: registry, ledger: ledger, running: running,
                            tracker: tracker, admission: admission, publisher: publisher, consumer: consumer, logger: logger)
        let followers = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await ledger.follow(statusReader) }
                group.addTask { await Self.followCancels(controlReader, runner: runner, logger: self.logger) }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        consumer.commit()
                    }
                }
                group.addTask { await heartbeats.beat() }
            }
        }

        // Intake stops at graceful shutdown; jobs already running are drained below.
        await cancelWhenGracefulShutdown {
            await runner.takeCommands(from: consumer, statusReader: statusReader)
        }
        // Commands still waiting for their key or type never start here: their
        // offsets stay uncommitted, so the partitions' next owners run them, in order.
        admission.close()

        logger.info("draining", metadata: ["running": "\(running.count)", "timeout": "\(configuration.drainTimeout)"])
        if await !drain(running) {
            logger.warning("drain ended: handing running jobs back", metadata: ["running": "\(running.count)"])
            let stopped = running.all
            stopped.forEach { $0.stop(.handBack) }
            let grace = stopped.map(\.stopGracePeriod).max() ?? .zero
            if await !running.waitUntilEmpty(timeout: max(.seconds(10), grace)) {
                logger.warning("jobs still running past their stop grace period; the worker leaves all the same",
                               metadata: ["jobs": "\(running.all.map(\.jobID.rawValue))"])
            }
        }
        await consumer.close()
        followers.cancel()
        await statusReader.close()
        await controlReader.close()
        await followers.value
        heartbeats.sendFinal()
        // Jobs await their own final snapshots, and every job has ended or been
        // handed back by now: what may still be queued is heartbeats and progress,
        // best effort. So a broker that is gone holds the exit up for 3 s, not for
        // two message timeouts.
        await producer.shutdown(flushTimeout: .seconds(3))
        logger.info("worker stopped")
    }

    /// Ends a graceful shutdown's drain now: jobs still running are handed back
    /// to the group, as at the drain timeout, and run again elsewhere as new
    /// attempts. For an operator who will not wait (the worker command calls it
    /// on a second SIGTERM or SIGINT); before a shutdown it cuts the next drain.
    public func endDrain() {
        drainCut.continuation.yield()
    }

    /// Waits for the running jobs to end, until the drain timeout or ``endDrain()``;
    /// whether they all ended.
    private func drain(_ running: RunningJobs) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { [configuration] in await running.waitUntilEmpty(timeout: configuration.drainTimeout) }
            group.addTask { [drainCut] in
                for await _ in drainCut.stream { return false }
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
    }

    private static func followCancels(_ reader: KafkaTopicReader, runner: Runner, logger: Logger) async {
        let decoder = WireFormat.decoder()
        for await message in reader {
            guard let value = message.value, let command = try? decoder.decode(ControlCommand.self, from: Data(value)) else { continue }
            switch command.kind {
            case .cancel:
                logger.debug("cancel received", metadata: ["job.id": "\(command.jobID)"])
                runner.cancel(command.jobID)
            }
        }
    }
}

/// The worker's run loop: takes commands while slots are free, starts each when
/// its ``Admission`` allows, and runs each job to its final snapshot.
private struct Runner: Sendable {
    let configuration: WorkerConfiguration
    let registry: JobRegistry
    let ledger: StatusLedger
    let running: RunningJobs
    let tracker: OffsetTracker
    let admission: Admission
    let publisher: StatusPublisher
    let consumer: KafkaConsumer
    let logger: Logger

    func takeCommands(from consumer: KafkaConsumer, statusReader: KafkaTopicReader) async {
        for await event in consumer {
            switch event {
            case .assigned(let partitions):
                guard await catchUp(statusReader, before: partitions) else { return }
            case .revoked:
                // Their waiting commands were dropped; one may have held back a key shared with another partition.
                launch(admission.admitWaiting())
            case .message(let message):
                guard let generation = tracker.begin(message) else { continue }
                let command = message.value.flatMap { try? WireFormat.decodeStartCommand($0).checkedAsRecord() }
                let taken = TakenCommand(message: message, generation: generation, command: command)
                let started = admission.enqueue(taken)
                launch(started)
                // It waits for its key or type: a cancel that came before it needn't wait with it.
                if let job = command?.job, !started.contains(where: { $0.id == taken.id }),
                   running.cancelArrived(for: job.id) || ledger[job.id]?.cancelRequested == true {
                    endWaiting(job.id)
                }
                // The next message only once there is room: a full worker stops
                // reading, and its consumer pauses the partitions.
                guard await admission.waitForRoom() else { return }
            }
        }
    }

    /// Folds the status topic up to its end before acting on newly assigned
    /// partitions: a command past their committed offsets may be a job that has
    /// already ended, and only the ledger knows. No command is taken until then,
    /// however long it takes (the consumer's thread keeps the membership alive);
    /// `false` if the worker is stopping meanwhile.
    private func catchUp(_ statusReader: KafkaTopicReader, before partitions: [TopicPartition]) async -> Bool {
        let started = ContinuousClock.now
        while await !ledger.catchUp(with: statusReader, timeout: .seconds(30)) {
            guard !Task.isCancelled else { return false }
            logger.warning("not caught up with the status topic yet; the assigned partitions wait", metadata: [
                "partitions": "\(partitions)", "waited": "\(ContinuousClock.now - started)",
            ])
            try? await Task.sleep(for: .seconds(1))
        }
        logger.info("ready for assigned partitions", metadata: ["partitions": "\(partitions)", "took": "\(ContinuousClock.now - started)"])
        return !Task.isCancelled
    }

    /// Stops the job if it runs here; if its command waits for its key or type,
    /// ends it `cancelled` now rather than when its turn comes.
    ///
    /// The cancel is noted before the waiting list is searched, and the run loop
    /// searches for noted cancels after enqueueing a command: whichever of the
    /// two comes second finds the other, so no cancelled command keeps waiting.
    func cancel(_ id: JobID) {
        running.requestCancel(id)
        endWaiting(id)
    }

    private func endWaiting(_ id: JobID) {
        let (withdrawn, ready) = admission.withdraw(id)
        launch(withdrawn + ready)
    }

    /// Runs each admitted command in a task of its own, then starts what its end
    /// unblocked. Tracked in `running` and drained explicitly, so intake can stop
    /// at shutdown without cancelling the jobs themselves.
    private func launch(_ commands: [TakenCommand]) {
        for taken in commands {
            Task {
                await execute(taken)
                launch(admission.finished(taken))
            }
        }
    }

    /// Runs one command to its end. The offset is stored only once the final
    /// snapshot is acknowledged and the job is not being handed back.
    func execute(_ taken: TakenCommand) async {
        let message = taken.message
        guard let command = taken.command else {
            logger.error("skipping a command that is not a start command, or carries an impossible attempt or sequence", metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)"])
            finish(message, generation: taken.generation)
            return
        }
        var job = command.job
        var jobLogger = logger
        jobLogger[metadataKey: "job.id"] = "\(job.id)"
        jobLogger[metadataKey: "job.type"] = "\(job.type)"

        if let known = ledger[job.id] {
            if known.status.isTerminal {
                jobLogger.info("job already finished; not running it again", metadata: ["status": "\(known.status)"])
                finish(message, generation: taken.generation)
                return
            }
            // A job seen running before was interrupted (its worker died): this is the next attempt.
            job.attempt = known.status == .queued ? max(known.attempt, job.attempt) : known.attempt + 1
            job.cancelRequested = job.cancelRequested || known.cancelRequested
        }
        jobLogger[metadataKey: "job.attempt"] = "\(job.attempt)"

        let execution = JobExecution(taken: taken, snapshot: job, options: registry[job.type]?.options ?? JobOptions())
        let cancelledEarly: Bool
        switch running.insert(execution) {
        case .inserted(let cancelled):
            cancelledEarly = cancelled
        case .alreadyRunning(let earlier):
            // A second start command of a job running here: a copy someone wrote to
            // the topic. It waits for that run to end, then is judged like any other
            // command (the ledger will have the job finished, or the next attempt due).
            execution.markDone()
            jobLogger.warning("another command of this job runs here; this one waits for it to end",
                              metadata: ["offset": "\(message.offset)"])
            await earlier.ended()
            await execute(taken)
            return
        }
        defer {
            running.remove(execution)
            execution.markDone()
        }
        // Checked after `insert`: a revoke that begins later finds the job in
        // `running` and waits for it; one that began earlier is seen here.
        guard tracker.mayStart(message, generation: taken.generation) else {
            jobLogger.info("partition revoked before the job started; left to its next owner")
            return
        }

        if cancelledEarly || job.cancelRequested {
            jobLogger.info("job cancelled before it started")
            await conclude(execution, logger: jobLogger) { try $0.cancelled() }
            return
        }
        let handler: RegisteredJob
        switch registry.handler(for: job.type, params: job.params) {
        case .success(let found):
            handler = found
        case .failure(let refusal):
            await conclude(execution, logger: jobLogger) { try $0.failed(refusal) }
            return
        }

        // Effective limits, shown in every snapshot from now on.
        let maxAttempts = job.maxAttempts ?? handler.options.maxAttempts
        let timeout = job.timeoutMs.map { Duration.milliseconds($0) } ?? handler.options.timeout
        var attempt = job.attempt
        while true {
            jobLogger[metadataKey: "job.attempt"] = "\(attempt)"
            let started: JobSnapshot
            do {
                started = try execution.advance { snapshot in
                    var next = try snapshot.started(attempt: attempt, by: configuration.workerID)
                    next.maxAttempts = maxAttempts
                    next.timeoutMs = timeout?.wholeMilliseconds
                    return next
                }
            } catch {
                jobLogger.error("cannot start job", metadata: ["error": "\(error)"])
                finish(message, generation: taken.generation)
                return
            }
            // Acknowledged before the handler runs: if this worker dies mid-run, the
            // next owner sees the job `running` and runs it as the next attempt.
            // Queued without waiting, a SIGKILL could lose it, and the re-run would
            // wrongly repeat attempt 1.
            guard await publisher.publish(started) else {
                jobLogger.warning("running snapshot not published; the job will be delivered again")
                return
            }
            jobLogger.debug("job started")

            let throttle = ProgressThrottle(interval: configuration.progressInterval) { publisher.post(execution.snapshot) }
            let context = JobContext(jobID: job.id, type: job.type, attempt: attempt, logger: jobLogger,
                                     deadline: timeout.map { ContinuousClock.now + $0 }) { progress in
                _ = try execution.advance { try $0.reporting(progress) }
                throttle.reported()
            } cancelled: {
                execution.stopReason != nil
            }
            let outcome = await execution.run(handler, context: context, timeout: timeout)
            throttle.close()
            switch outcome {
            case .succeeded(let result):
                if let refusal = refusal(of: result) {
                    jobLogger.warning("result refused", metadata: ["error": "\(refusal.message)"])
                    await conclude(execution, logger: jobLogger) { try $0.failed(refusal) }
                } else {
                    await conclude(execution, logger: jobLogger) { try $0.succeeded(result: result) }
                }
                return
            case .cancelled:
                await conclude(execution, logger: jobLogger) { try $0.cancelled() }
                return
            case .timedOut(let limit):
                let error = JobError(code: "timeout", message: "attempt \(attempt) ran longer than \(limit)")
                await conclude(execution, logger: jobLogger) { try $0.failed(error) }
                return
            case .handedBack:
                await handBack(execution, logger: jobLogger)
                return
            case .failed(let error, retryable: true) where attempt < maxAttempts:
                // Retry: the job waits, visibly `queued` as the next attempt, then runs again here.
                guard let requeued = try? execution.advance({ try $0.requeued(error: error) }) else { return }
                guard await publisher.publish(requeued) else { return }
                let delay = handler.options.backoff(afterAttempt: attempt)
                jobLogger.info("attempt failed; retrying", metadata: ["error": "\(error.message)", "backoff": "\(delay)"])
                switch await execution.pause(for: delay) {
                case .cancelRequested?:
                    await conclude(execution, logger: jobLogger) { try $0.cancelled() }
                    return
                case .handBack?, .timeout?:
                    // Already published as the next attempt: another owner runs it.
                    return
                case nil:
                    attempt = requeued.attempt
                }
            case .failed(let error, _):
                await conclude(execution, logger: jobLogger) { try $0.failed(error) }
                return
            }
        }
    }

    /// Why a handler's result can't be stored in the job's snapshot, if it can't:
    /// over `maxResultBytes` of JSON (an oversize status event would be refused
    /// by the broker, or bloat every reader), or not encodable at all. Neither
    /// changes on a retry, so the job ends `failed`.
    private func refusal(of result: JSONValue?) -> JobError? {
        guard let result else { return nil }
        let size: Int
        do {
            size = try WireFormat.encode(result).count
        } catch {
            return JobError(code: "invalid_result", message: "the result cannot be encoded as JSON: \(error)")
        }
        let limit = configuration.maxResultBytes
        guard size > limit else { return nil }
        return JobError(code: "result_too_large",
                        message: "the result is \(size) bytes of JSON, over the limit of \(limit) bytes (maxResultBytes)")
    }

    /// Publishes the job as `queued`, next attempt, without storing its offset:
    /// the command is delivered again and the next owner runs that attempt.
    private func handBack(_ execution: JobExecution, logger: Logger) async {
        guard let requeued = try? execution.advance({ try $0.requeued() }) else { return }
        releaseSlot(execution)
        if await publisher.publish(requeued) {
            logger.info("job handed back", metadata: ["next.attempt": "\(requeued.attempt)"])
        } else {
            // Its command is still uncommitted: the next owner finds the job running and runs that attempt.
            logger.warning("job handed back unannounced: its queued snapshot was not published", metadata: ["next.attempt": "\(requeued.attempt)"])
        }
    }

    /// Publishes the job's final snapshot and, once acknowledged, lets its offset be committed.
    private func conclude(_ execution: JobExecution, logger: Logger, _ transition: (JobSnapshot) throws -> JobSnapshot) async {
        let final: JobSnapshot
        do {
            final = try execution.advance(transition)
        } catch {
            logger.error("invalid final transition", metadata: ["error": "\(error)"])
            return
        }
        releaseSlot(execution)
        switch await publisher.publishFinal(final) {
        case .acknowledged:
            logger.info("job finished", metadata: ["status": "\(final.status)"])
        case .notSent:
            logger.warning("final snapshot not published; the job will be delivered again")
            return
        case .tooLarge(let error):
            // Its result makes it more than the producer may send (`maxResultBytes` over
            // `message.max.bytes`): the job fails without it, as one over `maxResultBytes`
            // does, rather than holding its key and its partition's commits for good.
            let refusal = JobError(code: "status_too_large", message: """
                the job's \(final.status.rawValue) snapshot is \(error.code): lower the worker's \
                maxResultBytes below its message.max.bytes
                """)
            guard let failed = try? final.failedInstead(refusal), await publisher.publish(failed) else {
                logger.warning("final snapshot not published; the job will be delivered again")
                return
            }
            logger.warning("job failed: its final snapshot is too large to send", metadata: ["status": "\(final.status)"])
        }
        finish(execution.message, generation: execution.generation)
    }

    /// The job's handler is over: its slot goes to the next command while the
    /// final snapshot waits for the broker (about `linger.ms` and a round trip),
    /// so a worker's slots run handlers rather than waits.
    private func releaseSlot(_ execution: JobExecution) {
        launch(admission.releaseSlot(of: execution.taken))
    }

    private func finish(_ message: KafkaMessage, generation: UInt64) {
        if let offset = tracker.finish(message, generation: generation) {
            consumer.storeOffset(offset, for: message.topicPartition)
        }
    }
}

/// Handles rebalances on the consumer's thread: before partitions go to another
/// worker, their running jobs get a bounded time to finish, then are handed back,
/// so two workers never run the same job at once.
private struct PartitionHandover: RebalanceListener {
    let tracker: OffsetTracker
    let admission: Admission
    let running: RunningJobs
    let timeout: Duration
    let logger: Logger

    func partitionsAssigned(_ partitions: [TopicPartition]) {
        tracker.assigned(partitions)
    }

    func partitionsRevoked(_ partitions: [TopicPartition]) {
        tracker.startRevoking(partitions)
        // Commands still waiting for their key or type go with the partition, in order.
        admission.drop(in: Set(partitions))
        let affected = running.executions(in: Set(partitions))
        if !affected.isEmpty {
            let deadline = Self.deadline(after: timeout)
            let unfinished = affected.filter { !$0.waitDone(until: deadline) }
            if !unfinished.isEmpty {
                logger.info("handing back jobs of revoked partitions", metadata: ["jobs": "\(unfinished.count)"])
                unfinished.forEach { $0.stop(.handBack) }
                // Each gets its type's stop grace period, counted from now: a command's
                // kill grace period and more, so the next owner never meets it running.
                let stopped = DispatchTime.now()
                let stuck = unfinished.filter { !$0.waitDone(until: Self.deadline(after: $0.stopGracePeriod, from: stopped)) }
                if !stuck.isEmpty {
                    logger.warning("jobs still running past their stop grace period; their partitions go to another worker all the same",
                                   metadata: ["jobs": "\(stuck.map(\.jobID.rawValue))"])
                }
            }
        }
        tracker.removed(partitions)
    }

    private static func deadline(after duration: Duration, from start: DispatchTime = .now()) -> DispatchTime {
        start + .milliseconds(duration.wholeMilliseconds)
    }
}

/// Announces the worker on the workers topic: its job types, capacity and
/// running jobs, every `heartbeatInterval`, and once more when it stops.
private struct Heartbeats: Sendable {
    let configuration: WorkerConfiguration
    let registry: JobRegistry
    let producer: KafkaProducer
    let running: RunningJobs
    let admission: Admission
    let logger: Logger
    let startedAt = Date()

    func beat() async {
        while !Task.isCancelled {
            send(stopped: false)
            try? await Task.sleep(for: configuration.heartbeatInterval)
        }
    }

    /// Queued, not awaited: the producer's closing flush delivers it.
    func sendFinal() {
        send(stopped: true)
    }

    private func send(stopped: Bool) {
        do {
            try producer.post(topic: configuration.topics.workers, key: Array(configuration.workerID.utf8),
                              value: WireFormat.encode(heartbeat(stopped: stopped)))
        } catch {
            logger.warning("heartbeat not sent", metadata: ["error": "\(error)"])
        }
    }

    private func heartbeat(stopped: Bool) -> WorkerHeartbeat {
        WorkerHeartbeat(
            workerID: configuration.workerID, jobTypes: registry.descriptors.map(JobTypeInfo.init),
            concurrency: configuration.concurrency, runningJobs: running.all.filter { admission.holdsSlot($0.taken) }.map(\.jobID), startedAt: startedAt,
            stopped: stopped, intervalMs: configuration.heartbeatInterval.wholeMilliseconds
        )
    }
}
