import Foundation
import JobsCore
import KafkaClient
import Testing

@Suite("Retention of ended jobs", .timeLimit(.minutes(2)))
struct RetentionTests {
    @Test("an ended job leaves the view after the retention age, and its tombstone is the topic's last record for it")
    func endedJobsExpire() async throws {
        let system = try TestCluster(partitions: 1)
        try await system.withGateway(configure: {
            $0.jobRetention = .seconds(2)
            $0.retentionSweepInterval = .milliseconds(100)
        }) { client in
            let job = try await client.submit(#"{"type":"sleep","params":{"steps":1,"stepMs":10}}"#)
            // Not first waiting to see it succeeded: on a loaded machine the next poll
            // may come after the 2 s are over. The topic's records below show it did.
            let deadline = ContinuousClock.now + .seconds(20)
            var reply = try await client.request(.get, "/jobs/\(job.id)")
            while reply.status == .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                reply = try await client.request(.get, "/jobs/\(job.id)")
            }
            #expect(reply.status == .notFound)

            let reader = try KafkaTopicReader(configuration: system.kafka, topic: system.topics.status, from: .beginning, logger: .quiet)
            var records: [KafkaMessage] = []
            let ends = try await reader.endOffsets()
            for await message in reader {
                records.append(message)
                if message.offset + 1 >= ends[message.partition] ?? 0 { break }
            }
            await reader.close()
            let forJob = records.filter { $0.key == Array(job.id.rawValue.utf8) }
            #expect(forJob.count >= 4, "queued, running, progress, succeeded, tombstone: \(forJob.count) records")
            #expect(forJob.last?.value == nil, "the last record is a tombstone")
            let statuses = try forJob.compactMap { try $0.value.map { try WireFormat.decodeSnapshot($0).status } }
            #expect(statuses.last == .succeeded, "it expired after it succeeded: \(statuses)")
        }
    }
}
