import Foundation
import GRDB
import JobsCore

/// One counted path, as stored in the `page_views` table.
public struct PageView: Codable, Sendable, Hashable, FetchableRecord, TableRecord {
    public static let databaseTableName = "page_views"

    public var path: String
    public var count: Int
    /// When the last job that counted this path wrote the row.
    public var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case path, count
        case updatedAt = "updated_at"
    }
}

/// The page-view counter: the database side of the `count-page-view` job.
///
/// **At-least-once.** A job may run more than once: its worker can die after
/// the write committed but before the job's final snapshot reached Kafka, and
/// the job's next owner then runs it again (docs/delivery.md in the main
/// repository). A bare `count = count + 1` would count that page view twice.
/// So every count records the job's id in `page_view_jobs`, in the same
/// transaction as the increment: a job id already there means this job was
/// counted, and the run changes nothing. The table grows by one row per job;
/// ``forgetCountedJobs(before:)`` prunes it once no re-run can come any more
/// (older than the commands topic's retention, 7 days by default).
public struct PageViewStore: Sendable {
    public let database: DatabaseQueue

    /// Brings the schema up to date (``migrator``).
    public init(database: DatabaseQueue) throws {
        self.database = database
        try Self.migrator.migrate(database)
    }

    /// The schema, as GRDB migrations: each runs once per database file.
    public static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: page views and counted jobs") { db in
            try db.create(table: "page_views") { table in
                table.primaryKey("path", .text)
                table.column("count", .integer).notNull()
                table.column("updated_at", .datetime).notNull()
            }
            try db.create(table: "page_view_jobs") { table in
                table.primaryKey("job_id", .text)
                table.column("path", .text).notNull()
                table.column("counted_at", .datetime).notNull().indexed()
            }
        }
        return migrator
    }

    /// What one run of a `count-page-view` job did; it becomes the job's result.
    public struct Outcome: Codable, Sendable, Hashable {
        public var path: String
        /// The path's count after this run.
        public var count: Int
        /// `false` when this job had been counted already (a re-run): nothing changed.
        public var counted: Bool

        public init(path: String, count: Int, counted: Bool) {
            self.path = path
            self.count = count
            self.counted = counted
        }
    }

    /// Counts one view of `path` for job `jobID`, at most once per job id: marks
    /// the job as counted and upserts the path's row, in one transaction.
    @discardableResult
    public func count(path: String, jobID: JobID, at now: Date = Date()) async throws -> Outcome {
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO page_view_jobs (job_id, path, counted_at) VALUES (?, ?, ?) ON CONFLICT(job_id) DO NOTHING",
                arguments: [jobID.rawValue, path, now]
            )
            let counted = db.changesCount == 1
            if counted {
                try db.execute(
                    sql: """
                        INSERT INTO page_views (path, count, updated_at) VALUES (?, 1, ?)
                        ON CONFLICT(path) DO UPDATE SET count = count + 1, updated_at = excluded.updated_at
                        """,
                    arguments: [path, now]
                )
            }
            let count = try Int.fetchOne(db, sql: "SELECT count FROM page_views WHERE path = ?", arguments: [path]) ?? 0
            return Outcome(path: path, count: count, counted: counted)
        }
    }

    /// The row of `path`, if any job counted it.
    public func pageView(_ path: String) async throws -> PageView? {
        try await database.read { db in try PageView.fetchOne(db, key: path) }
    }

    /// Forgets which jobs were counted before `date`; returns how many.
    /// Only safe for jobs that can no longer be re-run.
    @discardableResult
    public func forgetCountedJobs(before date: Date) async throws -> Int {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM page_view_jobs WHERE counted_at < ?", arguments: [date])
            return db.changesCount
        }
    }
}
