internal import CKafka
import Foundation

/// How to reach a cluster, plus any librdkafka property passed through untouched,
/// so SASL/TLS clusters and tuning work without code changes.
public struct KafkaConfiguration: Sendable, Hashable {
    /// `host:port[,host:port...]`.
    public var bootstrapServers: String
    /// Any librdkafka property (`security.protocol`, `sasl.mechanism`, `linger.ms`, ...).
    /// These win over the client's own defaults.
    public var properties: [String: String]

    public init(bootstrapServers: String, properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }

    /// Properties for one client: its role's defaults, then the user's overrides.
    func merged(with defaults: [String: String]) -> [String: String] {
        var all = defaults
        all["bootstrap.servers"] = bootstrapServers
        for (key, value) in properties { all[key] = value }
        return all
    }
}

/// Builds a librdkafka configuration; every rejected property names its key.
/// The caller owns the returned pointer until it passes it to `rd_kafka_new`.
func makeNativeConfiguration(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var errorText = [CChar](repeating: 0, count: 512)
    for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
        let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
        if result != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let reason = string(fromCBuffer: errorText)
            throw .invalidConfiguration("property \(key)=\(value) was refused: \(reason)")
        }
    }
    return conf
}

/// The NUL-terminated text librdkafka wrote into an error buffer.
func string(fromCBuffer buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension KafkaConfiguration {
    /// librdkafka properties from `KAFKA_*` environment variables:
    /// `KAFKA_SECURITY_PROTOCOL=SASL_SSL` becomes `security.protocol=SASL_SSL`.
    /// `_` stands for `.`, `__` for `_` (`KAFKA_LOG__LEVEL` is `log_level`) and
    /// `___` for `-`. Variables of Kafka's own JVM tools (`KAFKA_HOME`,
    /// `KAFKA_OPTS`, ...) are not client properties and are left alone.
    public static func properties(fromEnvironment environment: [String: String]) -> [String: String] {
        var properties: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix("KAFKA_") && name.count > 6 {
            let suffix = String(name.dropFirst(6))
            if jvmToolVariables.contains(suffix) { continue }
            let key = suffix.lowercased()
                .replacingOccurrences(of: "___", with: "\u{1}")
                .replacingOccurrences(of: "__", with: "\u{2}")
                .replacingOccurrences(of: "_", with: ".")
                .replacingOccurrences(of: "\u{1}", with: "-")
                .replacingOccurrences(of: "\u{2}", with: "_")
            properties[key] = value
        }
        return properties
    }

    private static let jvmToolVariables: Set<String> = [
        "HOME", "OPTS", "HEAP_OPTS", "JVM_PERFORMANCE_OPTS", "LOG4J_OPTS", "JMX_OPTS", "GC_LOG_OPTS", "DEBUG", "VERSION",
    ]
}
