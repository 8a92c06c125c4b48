import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle

/// Withdraws the queued snapshots of refused jobs, retrying until each lands.
///
/// A submit sends its start command and its queued snapshot together. When the
/// command is refused but the snapshot landed, the snapshot must be withdrawn
/// (tombstoned), or every view shows a queued job that will never run. The
/// first try is made in the request; one the broker refuses too waits here and
/// is tried again with backoff (0.1 s, doubling to 5 s) while the gateway runs.
final class Withdrawals: Service, Sendable {
    private let commands: JobCommands
    private let pending: AsyncStream<JobID>
    private let enqueue: AsyncStream<JobID>.Continuation
    private let logger: Logger

    init(commands: JobCommands, logger: Logger) {
        self.commands = commands
        self.logger = logger
        (pending, enqueue) = AsyncStream.makeStream(of: JobID.self)
    }

    /// Tries once; if that fails, leaves the job to ``run()`` and returns.
    func withdraw(_ id: JobID) async {
        do throws(KafkaError) {
            try await commands.tombstone(id)
        } catch {
            logger.warning("queued snapshot of a refused job not withdrawn yet; retrying in the background",
                           metadata: ["job.id": "\(id)", "error": "\(error)"])
            enqueue.yield(id)
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await id in self.pending {
                    group.addTask { await self.retry(id) }
                }
            }
        }
        enqueue.finish()
    }

    private func retry(_ id: JobID) async {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await Task.sleep(for: delay)
            } catch {
                logger.error("queued snapshot of a refused job not withdrawn before shutdown; it stays queued in every view",
                             metadata: ["job.id": "\(id)"])
                return
            }
            do throws(KafkaError) {
                try await commands.tombstone(id)
                logger.info("queued snapshot of a refused job withdrawn", metadata: ["job.id": "\(id)"])
                return
            } catch {
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
