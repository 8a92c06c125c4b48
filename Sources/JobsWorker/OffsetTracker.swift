import KafkaClient
import Synchronization

/// Which commands of each owned partition are in flight, and so which offset
/// may be committed: never past the oldest job still running, so a crash
/// re-delivers every job that had not finished.
final class OffsetTracker: Sendable {
    private struct Partition {
        var inFlight: Set<Int64> = []
        var highestBegun: Int64 = -1
        /// Being given up: no new work starts, finished work still records its offset.
        var revoking = false

        var committable: Int64 { inFlight.min() ?? (highestBegun + 1) }
    }

    private let partitions = Mutex<[TopicPartition: Partition]>([:])

    func assigned(_ list: [TopicPartition]) {
        partitions.withLock { state in
            for tp in list { state[tp] = Partition() }
        }
    }

    func startRevoking(_ list: [TopicPartition]) {
        partitions.withLock { state in
            for tp in list { state[tp]?.revoking = true }
        }
    }

    func removed(_ list: [TopicPartition]) {
        partitions.withLock { state in
            for tp in list { state.removeValue(forKey: tp) }
        }
    }

    /// Registers a command as in flight; `false` when its partition is no longer ours.
    func begin(_ message: KafkaMessage) -> Bool {
        partitions.withLock { state in
            guard var partition = state[message.topicPartition], !partition.revoking else { return false }
            partition.inFlight.insert(message.offset)
            partition.highestBegun = max(partition.highestBegun, message.offset)
            state[message.topicPartition] = partition
            return true
        }
    }

    /// Marks a command done; returns the offset to store, if the partition is still ours.
    func finish(_ message: KafkaMessage) -> Int64? {
        partitions.withLock { state in
            guard var partition = state[message.topicPartition] else { return nil }
            partition.inFlight.remove(message.offset)
            state[message.topicPartition] = partition
            return partition.committable
        }
    }
}
