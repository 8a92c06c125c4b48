import Foundation
import JobsCore
import KafkaClient
import Logging
import ServiceLifecycle
import Synchronization

/// The workers, as their heartbeats describe them; and the watch that marks the
/// jobs of a silent worker `stalled`, so a killed worker's jobs don't look like
/// they are still running until the group re-assigns them.
final class WorkerDirectory: Service {
    private let workers = Mutex<[String: WorkerHeartbeat]>([:])
    /// Job types workers announce, with the params schema of the latest announcement.
    private let announced = Mutex<[String: JobTypeDescriptor]>([:])
    /// Worker and type pairs whose unreadable schema was logged: once, not every heartbeat.
    private let unreadable = Mutex<Set<String>>([])
    private let reader: KafkaTopicReader
    private let view: JobView
    private let commands: JobCommands
    /// A worker silent this long (by its own clock) is presumed lost.
    let silenceTimeout: Duration
    /// A worker stopped or silent this long is forgotten: every host restart
    /// brings new worker ids, and the list must not grow without end.
    let retention: Duration
    private let logger: Logger

    init(configuration: KafkaConfiguration, topics: TopicNames, view: JobView, commands: JobCommands,
         silenceTimeout: Duration, retention: Duration, logger: Logger) throws(KafkaError) {
        reader = try KafkaTopicReader(configuration: configuration, topic: topics.workers, from: .beginning, logger: logger)
        self.view = view
        self.commands = commands
        self.silenceTimeout = silenceTimeout
        self.retention = retention
        self.logger = logger
    }

    /// Every worker heard from, with whether it is alive now.
    func list(now: Date = Date()) -> [(heartbeat: WorkerHeartbeat, alive: Bool)] {
        workers.withLock { Array($0.values) }
            .sorted { $0.workerID < $1.workerID }
            .map { ($0, isAlive($0, now: now)) }
    }

    private func isAlive(_ heartbeat: WorkerHeartbeat, now: Date) -> Bool {
        !heartbeat.stopped && now.timeIntervalSince(heartbeat.sentAt) < silenceTimeout.timeInterval
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.follow() }
                group.addTask { await self.watchForSilence() }
            }
        }
        await reader.close()
    }

    private func follow() async {
        let decoder = WireFormat.decoder()
        for await message in reader {
            guard let value = message.value else {
                // A tombstone: some gateway forgot this worker. One that beats again since stays.
                let id = message.key.map { String(decoding: $0, as: UTF8.self) }
                workers.withLock { workers in
                    if let id, let known = workers[id], !isAlive(known, now: Date()) { workers.removeValue(forKey: id) }
                }
                continue
            }
            guard let heartbeat = try? decoder.decode(WorkerHeartbeat.self, from: Data(value)) else { continue }
            let isNewest = workers.withLock { workers in
                if let known = workers[heartbeat.workerID], known.sentAt > heartbeat.sentAt { return false }
                workers[heartbeat.workerID] = heartbeat
                return true
            }
            if isNewest { learnTypes(from: heartbeat) }
        }
    }

    /// Job types any worker has announced: jobs of these types are accepted even
    /// while no worker runs, since they wait safely in Kafka.
    var announcedTypes: [String: JobTypeDescriptor] { announced.withLock { $0 } }

    /// The live workers that serve each job type.
    func liveWorkersByType(now: Date = Date()) -> [String: [String]] {
        var byType: [String: [String]] = [:]
        for (heartbeat, alive) in list(now: now) where alive {
            for type in heartbeat.jobTypes { byType[type.name, default: []].append(heartbeat.workerID) }
        }
        return byType
    }

    private func learnTypes(from heartbeat: WorkerHeartbeat) {
        let types = heartbeat.jobTypes.compactMap { info -> JobTypeDescriptor? in
            guard let schema = ParamsSchema(jsonSchema: info.paramsSchema) else {
                if unreadable.withLock({ $0.insert("\(heartbeat.workerID)\u{0}\(info.name)").inserted }) {
                    logger.warning("ignoring a job type whose params schema can't be read (an invalid pattern?)",
                                   metadata: ["type": "\(info.name)", "worker.id": "\(heartbeat.workerID)"])
                }
                return nil
            }
            return JobTypeDescriptor(name: info.name, summary: info.summary, params: schema)
        }
        announced.withLock { announced in
            for type in types where announced[type.name] != type { announced[type.name] = type }
        }
    }

    private func watchForSilence() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard view.isReady else { continue }
            let now = Date()
            let silent = workers.withLock { $0.filter { !$0.value.stopped && !self.isAlive($0.value, now: now) } }
            if !silent.isEmpty {
                await markStalled(view.unstalledJobs(runningOn: Set(silent.keys)), silent: silent, now: now)
            }
            await forgetWorkers(gone: now.addingTimeInterval(-retention.timeInterval))
        }
    }

    private func markStalled(_ jobs: [JobSnapshot], silent: [String: WorkerHeartbeat], now: Date) async {
        for job in jobs {
            guard let marked = try? job.markedStalled(at: now), let worker = job.workerID else { continue }
            logger.warning("job stalled: its worker is silent", metadata: [
                "job.id": "\(job.id)", "worker.id": "\(worker)",
                "silentFor": "\(silent[worker].map { now.timeIntervalSince($0.sentAt) } ?? 0)",
            ])
            view.apply(marked)
            do {
                try await commands.publishStatus(marked)
            } catch {
                logger.warning("stall mark not published", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
            }
        }
    }

    /// Drops the workers last heard from before `cutoff`, and tombstones them so
    /// the compacted workers topic forgets them too. Every replica does this;
    /// duplicate tombstones are harmless.
    private func forgetWorkers(gone cutoff: Date) async {
        let gone = workers.withLock { workers in
            let gone = workers.values.filter { $0.sentAt < cutoff }.map(\.workerID)
            for id in gone { workers.removeValue(forKey: id) }
            return gone
        }
        guard !gone.isEmpty else { return }
        unreadable.withLock { pairs in pairs = pairs.filter { pair in !gone.contains { pair.hasPrefix("\($0)\u{0}") } } }
        logger.info("forgot workers not heard from since \(cutoff)", metadata: ["workers": "\(gone.sorted())"])
        for id in gone {
            do {
                try await commands.forgetWorker(id)
            } catch {
                logger.warning("worker tombstone not published", metadata: ["worker.id": "\(id)", "error": "\(error)"])
            }
        }
    }
}
