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
              let sequence = UInt64(decimalDigits: text[text.index(after: dash)...]) else { return nil }
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
/// Each subscriber has a buffer bounded both in changes and in bytes: a change
/// holds the job's whole state before and after, and jobs with large params or
/// results would let a client that reads nothing pin a great deal of memory in
/// a thousand of them. One that falls that far behind is ended rather than
/// slowing the view or growing without bound; it reconnects with its last event
/// id and is sent what it missed (see `JobView.changes(since:)`).
final class JobChangeFeed: Sendable {
    struct Subscriber: Sendable {
        let matches: @Sendable (JobChange) -> Bool
        let continuation: AsyncStream<Buffered>.Continuation
        let buffered: ByteCount
    }

    private let subscribers = Mutex<(next: Int, all: [Int: Subscriber])>((0, [:]))
    let bufferSize: Int
    let bufferBytes: Int

    init(bufferSize: Int = 1024, bufferBytes: Int = 2 << 20) {
        self.bufferSize = bufferSize
        self.bufferBytes = bufferBytes
    }

    /// A stream of the changes `matches` accepts, from now on.
    func subscribe(matching matches: @escaping @Sendable (JobChange) -> Bool) -> Subscription {
        // Oldest kept: on overflow the newest change is the one not delivered, and
        // the stream ends, so the client's last event id is before it and a resume
        // sends it (dropping the oldest would put the client's id past a lost change).
        let (stream, continuation) = AsyncStream<Buffered>.makeStream(bufferingPolicy: .bufferingOldest(bufferSize))
        let buffered = ByteCount()
        let id = subscribers.withLock { state in
            defer { state.next += 1 }
            state.all[state.next] = Subscriber(matches: matches, continuation: continuation, buffered: buffered)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.all.removeValue(forKey: id) }
        }
        return Subscription(stream: stream, continuation: continuation, buffered: buffered)
    }

    var subscriberCount: Int { subscribers.withLock { $0.all.count } }

    /// Called in the view's order of changes.
    func publish(_ change: JobChange) {
        let overflowed = subscribers.withLock { state in
            var overflowed: [Subscriber] = []
            var size: Int?
            for (id, subscriber) in state.all where subscriber.matches(change) {
                let bytes = size ?? change.approximateBytes
                size = bytes
                let total = subscriber.buffered.add(bytes)
                // One change always fits, however large: alone it can't grow.
                guard total <= bufferBytes || total == bytes,
                      case .enqueued = subscriber.continuation.yield(Buffered(item: .change(change), bytes: bytes)) else {
                    state.all.removeValue(forKey: id)
                    overflowed.append(subscriber)
                    continue
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

    /// An item with the bytes it was counted as, given back when it is read.
    struct Buffered: Sendable {
        let item: FeedItem
        let bytes: Int
    }

    /// The bytes a subscriber's unread changes hold, as ``JobChange/approximateBytes`` counts them.
    final class ByteCount: Sendable {
        private let bytes = Atomic(0)

        /// Adds `count`; returns the new total.
        func add(_ count: Int) -> Int { bytes.add(count, ordering: .relaxed).newValue }
    }

    struct Subscription: Sendable {
        fileprivate let stream: AsyncStream<Buffered>
        let continuation: AsyncStream<Buffered>.Continuation
        fileprivate let buffered: ByteCount

        /// The changes and keep-alives, in order; each change read frees its bytes.
        var items: Items { Items(stream: stream, buffered: buffered) }

        func keepAlive() { continuation.yield(Buffered(item: .keepAlive, bytes: 0)) }
    }

    struct Items: AsyncSequence {
        fileprivate let stream: AsyncStream<Buffered>
        fileprivate let buffered: ByteCount

        func makeAsyncIterator() -> Iterator { Iterator(base: stream.makeAsyncIterator(), buffered: buffered) }

        struct Iterator: AsyncIteratorProtocol {
            fileprivate var base: AsyncStream<Buffered>.Iterator
            fileprivate let buffered: ByteCount

            mutating func next() async -> FeedItem? {
                guard let next = await base.next() else { return nil }
                _ = buffered.add(-next.bytes)
                return next.item
            }
        }
    }
}

extension JobChange {
    /// About how many bytes of memory the change holds: its two snapshots, and
    /// their JSON payloads counted by their text. An estimate, for bounding a
    /// buffer; it walks the payloads, so it is computed once per change.
    var approximateBytes: Int {
        snapshot.approximateBytes + (previous?.approximateBytes ?? 0)
    }
}

extension JobSnapshot {
    /// The fixed fields (about 400 bytes with their strings), plus the payloads.
    fileprivate var approximateBytes: Int {
        400 + params.approximateBytes + (result?.approximateBytes ?? 0) + (error.map { $0.code.utf8.count + $0.message.utf8.count } ?? 0)
            + (progress?.message?.utf8.count ?? 0)
    }
}

extension JSONValue {
    fileprivate var approximateBytes: Int {
        switch self {
        case .null, .bool, .number: 16
        case .string(let text): 16 + text.utf8.count
        case .array(let elements): 16 + elements.reduce(0) { $0 + $1.approximateBytes }
        case .object(let members): 16 + members.reduce(0) { $0 + 16 + $1.key.utf8.count + $1.value.approximateBytes }
        }
    }
}
