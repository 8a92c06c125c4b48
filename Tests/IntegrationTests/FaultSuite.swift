import Foundation
import HummingbirdTesting
import JobsCore
import KafkaClient
import Testing

/// The fault suite of issue 3: each scenario runs the built `gateway` and
/// `fault-worker` executables as separate processes against an embedded broker
/// hosted here, injects one fault, then checks from the status topic (read
/// independently of any gateway) that every accepted job reached exactly one
/// terminal state, and from the workers' execution logs that no job ran again
/// after it had completed. Each scenario prints one line:
///
///     FAULT <scenario> submitted=<n> lost=<n> executedAfterCompletion=<n> worstRecovery=<seconds>
///
/// The scenarios are in the extensions: FaultSuiteWorkers.swift (crash,
/// restart, long job, graceful shutdown, cancel during a drain),
/// FaultSuiteGateways.swift (gateway restart, two gateways) and
/// FaultSuiteBroker.swift (broker faults).
@Suite("Fault suite: crashes, restarts, shutdowns and broker faults across processes", .serialized, .timeLimit(.minutes(2)))
struct FaultSuite {}

extension FaultSuite {
    /// For each job a killed process held (started, not ended): whether a later
    /// attempt of it started in another process and ended it succeeded, and the
    /// longest time from the kill to such a start.
    static func reruns(of held: [JobID: Int], killedPID: Int32, killedAt: Date, lines: [ExecutionLine],
                       analysis: FaultAnalysis) -> (worstRecovery: Double, missing: [JobID]) {
        var worst = 0.0
        var missing: [JobID] = []
        for (id, attempt) in held {
            let rerun = lines.filter { $0.jobID == id && $0.event == .start && $0.pid != killedPID && $0.attempt > attempt }
                .min { $0.notAfter < $1.notAfter }
            guard let rerun, let final = analysis.finals[id], final.status == .succeeded, final.attempt > attempt else {
                missing.append(id)
                continue
            }
            worst = max(worst, rerun.notAfter.seconds(since: killedAt))
        }
        return (worst, missing)
    }
}
