import Logging

extension JobRegistry {
    /// The built-in job types plus the command job types declared in `path`, if
    /// given: what the `worker` and `gateway --embedded` executables serve.
    ///
    /// A bad file throws before the worker joins its group: serving only some of
    /// a group's types would fail every job of the others (`unknown_type`).
    public static func builtin(commandJobsFile path: String?, environment: [String: String], logger: Logger) throws -> JobRegistry {
        var registry = JobRegistry.builtin
        guard let path, !path.isEmpty else { return registry }
        let commands = try CommandJobsConfiguration.load(contentsOf: path, environment: environment)
        try registry.register(commandJobs: commands)
        for job in commands.jobs {
            logger.info("serving command job type", metadata: ["type": "\(job.name)", "executable": "\(job.executable)", "file": "\(path)"])
        }
        return registry
    }
}
