import JobsCore

/// One argv entry of a command job: literal text with `{param}` placeholders.
///
/// A placeholder fills part of this one entry and nothing else: the rendered
/// value becomes bytes inside a single argument, never a split point, a join
/// with a neighbour, or anything a shell would read (no shell ever runs).
/// `{{` and `}}` stand for literal braces.
public struct ArgumentTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Piece: Sendable, Hashable {
        case literal(String)
        case param(String)
    }

    let pieces: [Piece]
    /// The entry as written in the configuration.
    public let description: String

    /// Parses `text`; the error says what is wrong with it.
    public init(parsing text: String) throws(ArgumentTemplateError) {
        var pieces: [Piece] = []
        var literal = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            switch character {
            case "{" where next < text.endIndex && text[next] == "{", "}" where next < text.endIndex && text[next] == "}":
                literal.append(character)
                index = text.index(after: next)
            case "{":
                guard let close = text[next...].firstIndex(of: "}") else {
                    throw ArgumentTemplateError("an unclosed \"{\" (write \"{{\" for a literal brace)")
                }
                let name = String(text[next..<close])
                guard Self.isParamName(name) else {
                    throw ArgumentTemplateError("\"{\(name)}\" is not a placeholder: a param name is a letter or _ then letters, digits or _")
                }
                if !literal.isEmpty { pieces.append(.literal(literal)) }
                literal = ""
                pieces.append(.param(name))
                index = text.index(after: close)
            case "}":
                throw ArgumentTemplateError("a lone \"}\" (write \"}}\" for a literal brace)")
            default:
                literal.append(character)
                index = next
            }
        }
        if !literal.isEmpty || pieces.isEmpty { pieces.append(.literal(literal)) }
        self.pieces = pieces
        self.description = text
    }

    /// The params this entry mentions.
    public var paramNames: Set<String> {
        Set(pieces.compactMap { if case .param(let name) = $0 { name } else { nil } })
    }

    /// The entry with every placeholder replaced by its value; `nil` when a
    /// param it mentions has no value (an optional param left out), so the
    /// whole entry is left out of argv.
    func render(_ values: [String: String]) -> String? {
        var argument = ""
        for piece in pieces {
            switch piece {
            case .literal(let text):
                argument += text
            case .param(let name):
                guard let value = values[name] else { return nil }
                argument += value
            }
        }
        return argument
    }

    /// A letter or `_`, then letters, digits or `_` (ASCII).
    static func isParamName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first.properties.isAlphabetic && first.isASCII else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}

/// Why an argument template was refused.
public struct ArgumentTemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

extension JSONValue {
    /// How a param value is written into an argument: strings as they are,
    /// integral numbers without a fraction (`3`, not `3.0`), other numbers in
    /// Swift's shortest round-tripping form, booleans as `true` / `false`.
    /// `nil` for values no command param can hold (arrays, objects, null).
    var argumentText: String? {
        switch self {
        case .string(let text):
            return text
        case .number(let number):
            if number.rounded() == number, abs(number) < 9.007e15 { return String(Int64(number)) }
            return number.isFinite ? "\(number)" : nil
        case .bool(let flag):
            return flag ? "true" : "false"
        default:
            return nil
        }
    }
}
