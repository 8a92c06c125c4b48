import Foundation
import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization

/// The gateway's view of every job: the status topic, folded from the beginning.
///
/// Every replica folds the whole topic, so any replica answers any query, and a
/// restarted gateway rebuilds the view from the topic alone. It is `ready` once
/// it has caught up with the topic's end as it was at start-up.
public final class JobView: Service {
    private let table = Mutex(JobTable())
    private let offsets = ConsumedOffsets()
    private let ready = Atomic<Bool>(false)
    private let reader: KafkaTopicReader
    private let logger: Logger

    public init(configuration: KafkaConfiguration, topic: String, logger: Logger) throws(KafkaError) {
        self.reader = try KafkaTopicReader(configuration: configuration, topic: topic, from: .beginning, logger: logger)
        self.logger = logger
    }

    public var isReady: Bool { ready.load(ordering: .acquiring) }

    public var count: Int { table.withLock { $0.count } }

    public subscript(id: JobID) -> JobSnapshot? { table.withLock { $0[id] } }

    /// Folds a snapshot this gateway just published, so its own client reads it at once.
    public func apply(_ snapshot: JobSnapshot) {
        table.withLock { _ = $0.apply(snapshot) }
    }

    /// The job, waiting (bounded) for the view to reach the topic's current end if
    /// it is not known yet: a job accepted by another replica an instant ago is
    /// found rather than reported missing.
    public func snapshot(_ id: JobID, catchUpTimeout: Duration) async -> JobSnapshot? {
        if let known = self[id] { return known }
        guard let ends = try? await reader.endOffsets(timeout: catchUpTimeout) else { return nil }
        _ = await offsets.wait(until: ends, timeout: catchUpTimeout)
        return self[id]
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.follow() }
                group.addTask { await self.becomeReady() }
            }
        }
        await reader.close()
    }

    private func follow() async {
        let decoder = WireFormat.decoder()
        for await message in reader {
            if let value = message.value {
                do {
                    let snapshot = try decoder.decode(JobSnapshot.self, from: Data(value))
                    table.withLock { _ = $0.apply(snapshot) }
                } catch {
                    logger.warning("skipping undecodable status event", metadata: ["offset": "\(message.offset)", "error": "\(error)"])
                }
            }
            offsets.advance(past: message)
        }
    }

    private func becomeReady() async {
        let started = ContinuousClock.now
        while !Task.isCancelled {
            do {
                let ends = try await reader.endOffsets()
                if await offsets.wait(until: ends, timeout: .seconds(30)) {
                    ready.store(true, ordering: .releasing)
                    logger.info("job view caught up", metadata: ["jobs": "\(count)", "took": "\(ContinuousClock.now - started)"])
                    return
                }
            } catch {
                logger.warning("cannot read the status topic's end yet", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
