import JobsCore

/// Thrown by a handler for a failure another attempt can't mend (the thing to
/// work on is gone, the input can never be processed): the job ends `failed`
/// with this error at once, whatever attempts it has left.
///
/// ```swift
/// guard response.status != .notFound else {
///     throw NonRetryableError(code: "not_found", message: "no image at \(params.url)")
/// }
/// ```
public struct NonRetryableError: Error, Sendable, Hashable {
    /// What the job's snapshot shows.
    public var error: JobError

    public init(_ error: JobError) {
        self.error = error
    }

    public init(code: String, message: String) {
        self.error = JobError(code: code, message: message)
    }
}
