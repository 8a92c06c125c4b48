import Foundation
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

extension RequestContext {
    /// The `{id}` of a job route, percent-decoded: `%61` and `a` name the same
    /// job (RFC 3986, section 6.2.2.2); the router hands the segment over as sent.
    func jobIDParameter() throws -> String {
        let raw = try parameters.require("id")
        return raw.percentDecoded ?? raw
    }
}

extension StringProtocol {
    /// Foundation's `removingPercentEncoding`, asked only when there is a `%`:
    /// on Linux it goes through `CFString` even for text with nothing to decode,
    /// and that was 5 % of the gateway's CPU on `GET /jobs/{id}`.
    var percentDecoded: String? {
        utf8.contains(UInt8(ascii: "%")) ? removingPercentEncoding : String(self)
    }
}
