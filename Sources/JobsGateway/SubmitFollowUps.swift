import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization

/// The status records a submit's answer counts on but does not wait for: each
/// is sent in the background, tried at once, then with backoff (0.1 s doubling
/// to 5 s) until it lands, while the gateway runs.
///
/// A submit sends its start command and its queued snapshot together, and
/// either may fail alone:
/// - The command refused (`503`), the snapshot may still land: it was
///   acknowledged, or it timed out on its way and is written once the broker is
///   back. It is **withdrawn** (tombstoned), or every view would show a queued
///   job that never runs, and a repeat of the request would be told the job
///   exists. The tombstone goes through the same producer to the same
///   partition, so it lands after the snapshot if that lands at all.
/// - The command acknowledged (`202`) but not the snapshot, the snapshot is
///   **announced** again: until a worker's first snapshot of the job, it is
///   what makes the job known to the other gateways, to this one after a
///   restart, and to a repeat under its `Idempotency-Key`. It is not sent once
///   the view holds a later snapshot of the job, which says more.
final class SubmitFollowUps: Service, Sendable {
    private enum FollowUp: Sendable {
        case withdraw(JobID)
        case announce(JobSnapshot)

        var id: JobID {
            switch self {
            case .withdraw(let id): id
            case .announce(let queued): queued.id
            }
        }

        var name: String {
            switch self {
            case .withdraw: "withdraw the queued snapshot of a refused job"
            case .announce: "publish the queued snapshot of an accepted job"
            }
        }

        var consequenceOfGivingUp: String {
            switch self {
            case .withdraw: "the refused job stays queued in every view"
            case .announce: "other gateways know the job only once a worker takes it"
            }
        }
    }

    private let commands: JobCommands
    private let view: JobView
    private let pending: AsyncStream<FollowUp>
    private let enqueue: AsyncStream<FollowUp>.Continuation
    private let recentlyRefused = Mutex(RecentIDs())
    private let logger: Logger

    init(commands: JobCommands, view: JobView, logger: Logger) {
        self.commands = commands
        self.view = view
        self.logger = logger
        (pending, enqueue) = AsyncStream.makeStream(of: FollowUp.self)
    }

    /// Withdraws the refused job's queued snapshot.
    func withdraw(_ id: JobID) {
        recentlyRefused.withLock { $0.insert(id) }
        enqueue.yield(.withdraw(id))
    }

    /// Sends again the queued snapshot of an accepted job, which the broker did not acknowledge.
    func announce(_ queued: JobSnapshot) {
        enqueue.yield(.announce(queued))
    }

    /// Whether `job` is the queued snapshot of a job refused here, folded before
    /// its withdrawal: no such job exists.
    func isRefused(_ job: JobSnapshot) -> Bool {
        job.status == .queued && job.attempt == 1 && job.sequence == 0 && recentlyRefused.withLock { $0.contains(job.id) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await followUp in self.pending {
                    group.addTask { await self.complete(followUp) }
                }
            }
        }
        enqueue.finish()
    }

    private func complete(_ followUp: FollowUp) async {
        var delay = Duration.milliseconds(100)
        let metadata: Logger.Metadata = ["job.id": "\(followUp.id)", "followUp": "\(followUp.name)"]
        while true {
            do throws(KafkaError) {
                switch followUp {
                case .withdraw(let id):
                    try await commands.tombstone(id)
                    logger.info("queued snapshot of a refused job withdrawn", metadata: metadata)
                case .announce(let queued):
                    guard view[queued.id] == queued else { return }
                    try await commands.publishStatus(queued)
                    logger.info("queued snapshot of an accepted job published on a later try", metadata: metadata)
                }
                return
            } catch {
                logger.warning("a submit's follow-up not published yet; retrying",
                               metadata: metadata.merging(["error": "\(error)", "retryIn": "\(delay)"]) { $1 })
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                logger.error("a submit's follow-up not published before shutdown: \(followUp.consequenceOfGivingUp)",
                             metadata: metadata)
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
