import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization

/// Withdraws the queued snapshots of refused jobs, retrying until each lands.
///
/// A submit sends its start command and its queued snapshot together. When the
/// command is refused, the snapshot may still land: it was acknowledged, or it
/// timed out on its way and is written once the broker is back. Either way it is
/// withdrawn (tombstoned), or every view would show a queued job that never runs,
/// and a repeat of the request would be told the job exists. The tombstone goes
/// through the same producer to the same partition, so it lands after the
/// snapshot if that lands at all. The request does not wait for it: its 503 is
/// due at the command timeout. Tried at once, then with backoff (0.1 s doubling
/// to 5 s) while the gateway runs.
final class Withdrawals: Service, Sendable {
    private let commands: JobCommands
    private let pending: AsyncStream<JobID>
    private let enqueue: AsyncStream<JobID>.Continuation
    private let recent = Mutex(RecentIDs())
    private let logger: Logger

    init(commands: JobCommands, logger: Logger) {
        self.commands = commands
        self.logger = logger
        (pending, enqueue) = AsyncStream.makeStream(of: JobID.self)
    }

    /// Withdraws the refused job's queued snapshot, in the background.
    func withdraw(_ id: JobID) {
        recent.withLock { $0.insert(id) }
        enqueue.yield(id)
    }

    /// Whether `job` is the queued snapshot of a job refused here, folded before
    /// its withdrawal: no such job exists.
    func isRefused(_ job: JobSnapshot) -> Bool {
        job.status == .queued && job.attempt == 1 && job.sequence == 0 && recent.withLock { $0.contains(job.id) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await id in self.pending {
                    group.addTask { await self.tombstone(id) }
                }
            }
        }
        enqueue.finish()
    }

    private func tombstone(_ id: JobID) async {
        var delay = Duration.milliseconds(100)
        while true {
            do throws(KafkaError) {
                try await commands.tombstone(id)
                logger.info("queued snapshot of a refused job withdrawn", metadata: ["job.id": "\(id)"])
                return
            } catch {
                logger.warning("queued snapshot of a refused job not withdrawn yet; retrying",
                               metadata: ["job.id": "\(id)", "error": "\(error)", "retryIn": "\(delay)"])
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                logger.error("queued snapshot of a refused job not withdrawn before shutdown; it stays queued in every view",
                             metadata: ["job.id": "\(id)"])
                return
            }
            delay = min(delay * 2, .seconds(5))
        }
    }
}

/// The ids of the latest refused jobs: enough to cover the moments between a
/// snapshot's arrival and its withdrawal's, bounded however many are refused.
private struct RecentIDs {
    private static let limit = 10_000
    private var ids: Set<JobID> = []
    private var order: [JobID] = []

    mutating func insert(_ id: JobID) {
        guard ids.insert(id).inserted else { return }
        order.append(id)
        if order.count > Self.limit { ids.remove(order.removeFirst()) }
    }

    func contains(_ id: JobID) -> Bool { ids.contains(id) }
}
