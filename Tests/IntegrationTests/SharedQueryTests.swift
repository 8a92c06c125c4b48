import Synchronization
import Testing
@testable import JobsGateway

@Suite("A query shared by concurrent callers", .timeLimit(.minutes(1)))
struct SharedQueryTests {
    /// Numbers the query's runs and holds each one until the test releases it.
    final class Runs: Sendable {
        private let state = Mutex((started: 0, released: Set<Int>()))

        var started: Int { state.withLock { $0.started } }

        func run() async throws -> Int {
            let number = state.withLock { state in
                state.started += 1
                return state.started
            }
            while !state.withLock({ $0.released.contains(number) }) { try await Task.sleep(for: .milliseconds(5)) }
            return number
        }

        func release(_ number: Int) { _ = state.withLock { $0.released.insert(number) } }

        func waitUntilStarted(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while started < count {
                try #require(ContinuousClock.now < deadline, "run \(count) did not start")
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    @Test("a caller that asks while a query runs gets the next one, which starts after it asked; callers that wait together share it")
    func answersAreNeverOlderThanTheQuestion() async throws {
        let runs = Runs()
        let query = SharedQuery { try await runs.run() }
        let first = Task { try await query.value() }
        try await runs.waitUntilStarted(1)
        // These ask while run 1 may already have read what they are looking for: not theirs.
        let second = Task { try await query.value() }
        let third = Task { try await query.value() }
        try await Task.sleep(for: .milliseconds(100))
        #expect(runs.started == 1, "the next run waits for the running one")
        runs.release(1)
        #expect(try await first.value == 1)
        try await runs.waitUntilStarted(2)
        runs.release(2)
        #expect(try await second.value == 2)
        #expect(try await third.value == 2)
        #expect(runs.started == 2, "the two callers that waited together shared one run")
        // With nothing running, a caller starts a run at once.
        let fourth = Task { try await query.value() }
        try await runs.waitUntilStarted(3)
        runs.release(3)
        #expect(try await fourth.value == 3)
    }

    @Test("a failed run answers every caller of its round with the error, and the next round runs again")
    func failuresReachTheirRound() async throws {
        struct Refused: Error {}
        let calls = Atomic<Int>(0)
        let query = SharedQuery { () async throws -> Int in
            if calls.add(1, ordering: .relaxed).newValue == 1 { throw Refused() }
            return 7
        }
        await #expect(throws: Refused.self) { try await query.value() }
        #expect(try await query.value() == 7)
    }
}
