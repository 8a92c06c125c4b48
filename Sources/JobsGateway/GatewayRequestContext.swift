import Hummingbird
import NIOCore

/// The gateway's per-request context: who is calling (set once the route's scope
/// is checked) and from where, which is what per-client limits count by.
public struct GatewayRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    private let channel: any Channel
    /// Set by the route's scope check before its handler runs.
    public var caller: Caller?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Asked for only by the routes that limit per client: reading it takes the
    /// channel's lock, which every read paid for when it was taken up front.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// What per-client limits count by: the key when there is one, else the address.
    var clientIdentity: String {
        if let name = caller?.keyName { return "key:\(name)" }
        return "address:\(remoteAddress?.ipAddress ?? "unknown")"
    }
}
