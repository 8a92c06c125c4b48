import KafkaClient
import Synchronization

/// Which commands of each owned partition are in flight, and so which offset
/// may be committed: never past the oldest job still in flight (running, or
/// waiting on this worker for its ordering key or its type's limit), so a crash
/// re-delivers every job that had not finished.
///
/// Each assignment of a partition gets a new generation. A command is begun
/// under one, and only that generation may run or finish it: a command taken
/// before a partition was revoked and given back to this worker must not run
/// beside its re-delivered copy, nor finish that copy's offset.
final class OffsetTracker: Sendable {
    private struct Partition {
        let generation: UInt64
        var inFlight: Set<Int64> = []
        var highestBegun: Int64 = -1
        /// Being given up: no new work starts, finished work still records its offset.
        var revoking = false

        var committable: Int64 { inFlight.min() ?? (highestBegun + 1) }
    }

    private struct State {
        var partitions: [TopicPartition: Partition] = [:]
        var lastGeneration: UInt64 = 0
    }

    private let state = Mutex(State())

    func assigned(_ list: [TopicPartition]) {
        state.withLock { state in
            for tp in list {
                state.lastGeneration += 1
                state.partitions[tp] = Partition(generation: state.lastGeneration)
            }
        }
    }

    func startRevoking(_ list: [TopicPartition]) {
        state.withLock { state in
            for tp in list { state.partitions[tp]?.revoking = true }
        }
    }

    func removed(_ list: [TopicPartition]) {
        state.withLock { state in
            for tp in list { state.partitions.removeValue(forKey: tp) }
        }
    }

    /// Registers a command as in flight; returns the generation it belongs to,
    /// `nil` when its partition is no longer ours, or when this assignment has
    /// already taken the message: librdkafka 2.0.2 may fetch a partition again
    /// from an older position after a resume (librdkafka#4636), and a command
    /// taken twice would run its job twice at once.
    func begin(_ message: KafkaMessage) -> UInt64? {
        state.withLock { state in
            guard var partition = state.partitions[message.topicPartition], !partition.revoking,
                  message.offset > partition.highestBegun else { return nil }
            partition.inFlight.insert(message.offset)
            partition.highestBegun = max(partition.highestBegun, message.offset)
            state.partitions[message.topicPartition] = partition
            return partition.generation
        }
    }

    /// Whether a command begun under `generation` may still start: its partition
    /// is assigned to us in that generation and not being revoked.
    func mayStart(_ message: KafkaMessage, generation: UInt64) -> Bool {
        state.withLock { state in
            guard let partition = state.partitions[message.topicPartition] else { return false }
            return partition.generation == generation && !partition.revoking
        }
    }

    /// Marks a command done; returns the offset to store, if the partition is
    /// still ours in the generation the command was begun under.
    func finish(_ message: KafkaMessage, generation: UInt64) -> Int64? {
        state.withLock { state in
            guard var partition = state.partitions[message.topicPartition], partition.generation == generation else { return nil }
            partition.inFlight.remove(message.offset)
            state.partitions[message.topicPartition] = partition
            return partition.committable
        }
    }
}
