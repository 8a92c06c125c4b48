import JobsCore
import Synchronization

/// One change to the view: a job's new state and its place in this view's order.
public struct JobChange: Sendable {
    public let position: ChangePosition
    public let snapshot: JobSnapshot
    /// The job's state before, when the view held one: a stream filtered by
    /// status is sent the change that moves a job out of its filter.
    public var previous: JobSnapshot? = nil
}

/// Where a change sits in one view's sequence of changes: the SSE event id.
///
/// `epoch` names the view instance (a restarted or different gateway has another
/// one), so a client resuming with a position from elsewhere is recognised and
/// sent the current state instead of a gap.
public struct ChangePosition: Sendable, Hashable, CustomStringConvertible {
    public let epoch: String
    public let sequence: UInt64

    public var description: String { "\(epoch)-\(sequence)" }

    public init(epoch: String, sequence: UInt64) {
        self.epoch = epoch
        self.sequence = sequence
    }

    /// Parses an event id such as `Last-Event-ID` carries back.
    public init?(_ text: String) {
        guard let dash = text.lastIndex(of: "-"), dash != text.startIndex,
              text[text.index(after: dash)...].allSatisfy({ $0.isASCII && $0.isNumber }), let sequence = UInt64(text[text.index(after: dash)...]) else { return nil }
        self.init(epoch: String(text[..<dash]), sequence: sequence)
    }
}

/// What a subscriber receives: changes, and the keep-alive ticks that its own
/// stream interleaves with them.
enum FeedItem: Sendable {
    case change(JobChange)
    case keepAlive
}

/// Fans the view's changes out to live subscribers (SSE streams).
///
/// Each subscriber has a bounded buffer. One that falls that far behind is ended
/// rather than slowing the view or growing without bound; it reconnects with its
/// last event id and is sent what it missed (see `JobView.changes(since:)`).
final class JobChangeFeed: Sendable {
    struct Subscriber: Sendable {
        let matches: @Sendable (JobChange) -> Bool
        let continuation: AsyncStream<FeedItem>.Continuation
    }

    private let subscribers = Mutex<(next: Int, all: [Int: Subscriber])>((0, [:]))
    let bufferSize: Int

    init(bufferSize: Int = 1024) {
        self.bufferSize = bufferSize
    }

    /// A stream of the changes `matches` accepts, from now on.
    func subscribe(matching matches: @escaping @Sendable (JobChange) -> Bool) -> Subscription {
        // Oldest kept: on overflow the newest change is the one not delivered, and
        // the stream ends, so the client's last event id is before it and a resume
        // sends it (dropping the oldest would put the client's id past a lost change).
        let (stream, continuation) = AsyncStream<FeedItem>.makeStream(bufferingPolicy: .bufferingOldest(bufferSize))
        let id = subscribers.withLock { state in
            defer { state.next += 1 }
            state.all[state.next] = Subscriber(matches: matches, continuation: continuation)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.all.removeValue(forKey: id) }
        }
        return Subscription(items: stream, continuation: continuation)
    }

    var subscriberCount: Int { subscribers.withLock { $0.all.count } }

    /// Called in the view's order of changes.
    func publish(_ change: JobChange) {
        let overflowed = subscribers.withLock { state in
            var overflowed: [Subscriber] = []
            for (id, subscriber) in state.all where subscriber.matches(change) {
                if case .dropped = subscriber.continuation.yield(.change(change)) {
                    state.all.removeValue(forKey: id)
                    overflowed.append(subscriber)
                }
            }
            return overflowed
        }
        // Outside the lock: finishing runs `onTermination`, which takes it.
        for subscriber in overflowed { subscriber.continuation.finish() }
    }

    /// Ends every stream (the view is stopping).
    func finishAll() {
        let ended = subscribers.withLock { state in
            defer { state.all.removeAll() }
            return Array(state.all.values)
        }
        for subscriber in ended { subscriber.continuation.finish() }
    }

    struct Subscription: Sendable {
        let items: AsyncStream<FeedItem>
        let continuation: AsyncStream<FeedItem>.Continuation

        func keepAlive() { continuation.yield(.keepAlive) }
    }
}
