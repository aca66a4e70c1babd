/// A parsed JSON value that keeps what schemas need and Foundation's parser drops: the order
/// of an object's keys (properties are generated in the schema's order) and numbers' own text.
public indirect enum JSONValue: Sendable, Hashable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, as written.
    case number(String)
    /// A string (escapes resolved).
    case string(String)
    /// An array.
    case array([JSONValue])
    /// Members in the order written.
    case object([(key: String, value: JSONValue)])

    /// The member named `key`, if this is an object that has one.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The value as compact JSON text (keys in their order, numbers as written).
    public var text: String {
        switch self {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .number(let text): text
        case .string(let string): JSONValue.quoted(string)
        case .array(let items): "[" + items.map(\.text).joined(separator: ",") + "]"
        case .object(let members):
            "{" + members.map { JSONValue.quoted($0.key) + ":" + $0.value.text }.joined(separator: ",") + "}"
        }
    }

    /// The value as Python's `json.dumps` writes it by default (what chat templates' `tojson`
    /// gives): `", "` between items, `": "` after keys, keys in order, non-ASCII as it is.
    public var spacedText: String {
        switch self {
        case .array(let items): "[" + items.map(\.spacedText).joined(separator: ", ") + "]"
        case .object(let members):
            "{" + members.map { JSONValue.quoted($0.key) + ": " + $0.value.spacedText }.joined(separator: ", ") + "}"
        default: text
        }
    }

    /// `string` as a JSON string literal, quotes included (the shortest escapes).
    public static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Values are equal when their compact texts are (key order and number spelling count).
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool { lhs.text == rhs.text }
    /// Hashes the compact text.
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }

    /// Parses `bytes` (UTF-8 JSON text, one value, whitespace around it allowed).
    public init<Bytes: Collection<UInt8>>(parsing bytes: Bytes) throws(JSONSchemaError) {
        var parser = Parser(bytes: Array(bytes))
        parser.skipWhitespace()
        self = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.error("text after the JSON value") }
    }
}

/// A recursive-descent parser of strict JSON (RFC 8259), nesting at most 256 deep.
private struct Parser {
    let bytes: [UInt8]
    var index = 0

    func error(_ message: String) -> JSONSchemaError {
        JSONSchemaError("not valid JSON at byte \(index): \(message)")
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
    }

    mutating func expect(_ text: String) throws(JSONSchemaError) {
        for byte in text.utf8 {
            guard index < bytes.count, bytes[index] == byte else { throw error("expected '\(text)'") }
            index += 1
        }
    }

    mutating func value(depth: Int) throws(JSONSchemaError) -> JSONValue {
        guard depth < 256 else { throw error("nested more than 256 deep") }
        guard index < bytes.count else { throw error("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "["):
            index += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw error("unterminated array") }
                index += 1
                if bytes[index - 1] == UInt8(ascii: "]") { return .array(items) }
                guard bytes[index - 1] == UInt8(ascii: ",") else { throw error("expected ',' or ']'") }
            }
        case UInt8(ascii: "{"):
            index += 1
            var members: [(key: String, value: JSONValue)] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key") }
                let key = try string()
                skipWhitespace()
                try expect(":")
                skipWhitespace()
                members.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                guard index < bytes.count else { throw error("unterminated object") }
                index += 1
                if bytes[index - 1] == UInt8(ascii: "}") { return .object(members) }
                guard bytes[index - 1] == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
            }
        default: return .number(try number())
        }
    }

    mutating func number() throws(JSONSchemaError) -> String {
        let start = index
        while index < bytes.count, Array("+-.eE0123456789".utf8).contains(bytes[index]) { index += 1 }
        var matcher = JSONMatcher(Parser.anyValue)
        guard index > start, matcher.feed(bytes[start..<index], grammar: Parser.anyValue), matcher.isComplete else {
            index = start
            throw error("not a value")
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    static let anyValue = JSONGrammar(root: JSONGrammar.anyNode)

    mutating func string() throws(JSONSchemaError) -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        var pendingHigh: UInt32?
        while true {
            guard index < bytes.count else { throw error("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return String(scalars)
            }
            guard byte >= 0x20 else { throw error("control character in a string") }
            if byte != UInt8(ascii: "\\") {
                // A run of plain bytes, decoded as UTF-8 (invalid UTF-8 is refused).
                var end = index
                while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"),
                    bytes[end] >= 0x20
                {
                    end += 1
                }
                guard let piece = String(validating: bytes[index..<end], as: UTF8.self) else {
                    throw error("invalid UTF-8 in a string")
                }
                scalars.append(contentsOf: piece.unicodeScalars)
                index = end
                continue
            }
            index += 1
            guard index < bytes.count else { throw error("unterminated escape") }
            let escape = bytes[index]
            index += 1
            let simple: [UInt8: Unicode.Scalar] = [
                0x22: "\"", 0x5C: "\\", 0x2F: "/", 0x62: "\u{08}", 0x66: "\u{0C}", 0x6E: "\n", 0x72: "\r", 0x74: "\t",
            ]
            if let scalar = simple[escape] {
                scalars.append(scalar)
                continue
            }
            guard escape == UInt8(ascii: "u"), index + 4 <= bytes.count,
                bytes[index..<index + 4].allSatisfy({
                    ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66)
                }),
                let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
            else { throw error("bad escape") }
            index += 4
            if (0xD800..<0xDC00).contains(code) {
                pendingHigh = code
                continue
            }
            if (0xDC00..<0xE000).contains(code), let high = pendingHigh {
                pendingHigh = nil
                scalars.append(Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))!)
                continue
            }
            guard let scalar = Unicode.Scalar(code) else { throw error("a lone surrogate escape") }
            scalars.append(scalar)
        }
    }
}
