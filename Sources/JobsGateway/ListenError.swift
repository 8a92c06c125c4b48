import Foundation
import NIOCore

/// The gateway could not take its address: says which address, and why, in words.
///
/// NIO's own error reads `bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)`:
/// no address, and a stray parenthesis.
public struct ListenError: Error, CustomStringConvertible {
    public let description: String

    /// `error` as a failure to listen on `host:port`, or `nil` if it is some other error.
    public init?(_ error: any Error, host: String, port: Int) {
        let reason: String
        if let error = error as? IOError, error.description.hasPrefix("bind(") {
            let text = String(cString: strerror(error.errnoCode))
            reason = text.prefix(1).lowercased() + text.dropFirst()
        } else if let error = error as? SocketAddressError.UnknownHost {
            reason = "unknown host (\(error.errorDescription))"
        } else if case .failedToParseIPString = error as? SocketAddressError {
            reason = "not an address"
        } else {
            return nil
        }
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        description = "cannot listen on \(address): \(reason)"
    }
}
