import Crypto
import Foundation

/// What a key may do. `admin` implies every other scope.
public enum Scope: String, Sendable, Codable, CaseIterable, Comparable {
    case read, submit, cancel, admin

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A bearer token the gateway accepts, with the scopes it grants.
///
/// Only the token's SHA-256 digest is kept, so a heap dump or a configuration
/// that gives `sha256:<hex>` never holds the secret itself.
public struct APIKey: Sendable, Equatable {
    public let name: String
    public let scopes: Set<Scope>
    let digest: [UInt8]

    public init(name: String, scopes: Set<Scope>, token: String) {
        self.init(name: name, scopes: scopes, digest: Array(SHA256.hash(data: Array(token.utf8))))
    }

    init(name: String, scopes: Set<Scope>, digest: [UInt8]) {
        self.name = name
        self.scopes = scopes
        self.digest = digest
    }

    /// The token's digest in hex: configure `NAME:SCOPES:sha256:<this>` to keep
    /// the token itself out of the configuration.
    public var digestHex: String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Parses `NAME:SCOPES:SECRET`, the form of `--api-key` and `JOBS_API_KEYS`:
    /// scopes joined by `+` (`read+submit`), and the secret either the token
    /// itself or `sha256:<64 hex digits>` of it.
    public init(parsing text: String) throws(APIKeyError) {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[2].isEmpty else {
            throw APIKeyError("an API key is NAME:SCOPES:SECRET, e.g. dashboard:read+submit:change-me-to-a-long-token")
        }
        let name = String(parts[0])
        var scopes: Set<Scope> = []
        for word in parts[1].split(separator: "+") {
            guard let scope = Scope(rawValue: String(word)) else {
                throw APIKeyError("API key \(name): unknown scope \(word); scopes are read, submit, cancel, admin")
            }
            scopes.insert(scope)
        }
        guard !scopes.isEmpty else { throw APIKeyError("API key \(name) has no scopes") }
        let secret = String(parts[2])
        if secret.hasPrefix("sha256:") {
            guard let digest = Self.bytes(hex: secret.dropFirst("sha256:".count)), digest.count == SHA256.byteCount else {
                throw APIKeyError("API key \(name): sha256: must be followed by 64 hex digits")
            }
            self.init(name: name, scopes: scopes, digest: digest)
        } else {
            guard secret.utf8.count >= 16 else {
                throw APIKeyError("API key \(name): a token must be at least 16 characters")
            }
            self.init(name: name, scopes: scopes, token: secret)
        }
    }

    private static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

public struct APIKeyError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Who made a request: a key, or anyone when authentication is off.
public struct Caller: Sendable, Equatable {
    /// The key's name; nil when authentication is off.
    public let keyName: String?
    public let scopes: Set<Scope>

    public func allows(_ scope: Scope) -> Bool {
        scopes.contains(.admin) || scopes.contains(scope)
    }

    static let anonymous = Caller(keyName: nil, scopes: Set(Scope.allCases))
}

/// The gateway's access policy.
public enum Authentication: Sendable {
    /// Every request may do everything. Only `gateway --embedded` allows this.
    case disabled
    /// Requests carry `Authorization: Bearer <token>` of one of these keys.
    case apiKeys([APIKey])

    /// The caller a request's `Authorization` header names, or nil when it names none.
    ///
    /// The presented token is hashed and compared with every key's digest in
    /// constant time, so how long the check takes says nothing about any key.
    func caller(authorization: String?) -> Caller? {
        guard case .apiKeys(let keys) = self else { return .anonymous }
        // By bytes, in place: this runs on every request, and the scheme and the
        // spaces around the token are ASCII.
        guard var authorization else { return nil }
        let presented: SHA256.Digest? = authorization.withUTF8 { bytes in
            guard bytes.count > 7, zip(bytes, "bearer".utf8).allSatisfy({ byte, letter in byte | 0x20 == letter }),
                  bytes[6] == UInt8(ascii: " ") else { return nil }
            let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
            guard let first = bytes[7...].firstIndex(where: { !isBlank($0) }),
                  let last = bytes.lastIndex(where: { !isBlank($0) }) else { return nil }
            return SHA256.hash(data: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[first...last])))
        }
        guard let presented else { return nil }
        var match: APIKey?
        presented.withUnsafeBytes { presented in
            for key in keys where Self.constantTimeEqual(key.digest, presented) {
                match = key
            }
        }
        return match.map { Caller(keyName: $0.name, scopes: $0.scopes) }
    }

    static func constantTimeEqual(_ lhs: [UInt8], _ rhs: UnsafeRawBufferPointer) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
