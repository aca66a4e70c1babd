/// A JSON grammar: what values may be generated, compiled from a JSON schema (or "any JSON
/// object" for OpenAI's `json_object` mode) into a table of nodes that ``JSONMatcher`` walks byte
/// by byte.
///
/// Objects list their properties in the schema's order and are generated in that order (as
/// llama.cpp's schema grammars do): every required property appears, optional ones may be left
/// out, none twice. Whitespace between tokens is allowed up to ``maxWhitespace`` bytes per gap, so
/// that a model can lay JSON out as it likes without looping on blank space.
public struct JSONGrammar: Sendable, Hashable {
    /// What a value may be.
    public enum Node: Sendable, Hashable {
        /// Any JSON value.
        case any
        /// An object with any keys and values of `values` (an index into ``nodes``).
        case freeObject(values: Int)
        /// An object with these properties, in order (``Property``).
        case object([Property])
        /// An array of `items` with `minItems...maxItems` elements.
        case array(items: Int, minItems: Int, maxItems: Int)
        /// Any string.
        case string
        /// Any number (`integer` only: no fraction and no exponent).
        case number(integer: Bool)
        /// Exactly one of these texts (JSON-encoded values: booleans, null, enums, consts), an
        /// index into ``literalSets``.
        case literal(set: Int)
        /// One of these nodes, told apart by the first character of the value.
        case union([Int])
        /// Exact texts and values one after another, with no whitespace between them (the text
        /// around a tool call).
        case sequence([Part])
        /// One of the texts of literal set `set` (none a prefix of another), then the value of
        /// node `next[k]` for the text `k` it was (a tool's arguments after its name).
        case choice(set: Int, next: [Int])
    }

    /// A part of a ``Node/sequence(_:)``.
    public enum Part: Sendable, Hashable {
        /// These bytes exactly.
        case text([UInt8])
        /// A value of this node.
        case value(Int)
    }

    /// A property of an object node.
    public struct Property: Sendable, Hashable {
        /// The key as JSON text, quotes included.
        public var key: [UInt8]
        /// The value's node.
        public var value: Int
        /// Whether the object must have it.
        public var required: Bool
    }

    /// The nodes; ``root`` is the document's.
    public internal(set) var nodes: [Node]
    /// Texts of literal nodes (each set at most 64 texts).
    public internal(set) var literalSets: [[[UInt8]]]
    /// The document's node.
    public internal(set) var root: Int
    /// Most whitespace bytes between two tokens of the JSON text.
    public var maxWhitespace = 24

    /// For each node, the node a value starting with each byte is parsed as (-1: none): a union
    /// resolved to its member, every other node to itself.
    private(set) var starts: [[Int32]] = []

    /// The grammar of OpenAI's `json_object` mode: one JSON object, with anything inside.
    public static let anyObject = JSONGrammar(root: JSONGrammar.anyObjectNode)

    /// A grammar holding only the base nodes, its document `root`.
    init(root: Int) {
        nodes = [
            .any, .freeObject(values: JSONGrammar.anyNode),
            .array(items: JSONGrammar.anyNode, minItems: 0, maxItems: .max),
        ]
        literalSets = [JSONGrammar.keywords]
        self.root = root
        resolveStarts()
    }

    /// Node 0 is any value, node 1 an object of any values, node 2 an array of any values: what
    /// ``Node/any`` values open into.
    static let anyNode = 0
    static let anyObjectNode = 1
    static let anyArrayNode = 2
    /// The literal set `true`, `false`, `null` that ``Node/any`` values use: always set 0.
    static let keywords: [[UInt8]] = [Array("true".utf8), Array("false".utf8), Array("null".utf8)]

    /// Fills ``starts`` (after the nodes change).
    mutating func resolveStarts() {
        starts = nodes.indices.map { node in
            var table = [Int32](repeating: -1, count: 256)
            let members: [Int]
            if case .union(let list) = nodes[node] { members = list } else { members = [node] }
            for member in members.reversed() {
                for byte in startBytes(member) { table[Int(byte)] = Int32(member) }
            }
            return table
        }
    }

    /// The bytes a value of `node` may start with.
    func startBytes(_ node: Int, visiting: Set<Int> = []) -> Set<UInt8> {
        switch nodes[node] {
        case .any: return Set("{[\"-0123456789tfn".utf8)
        case .freeObject, .object: return [UInt8(ascii: "{")]
        case .array: return [UInt8(ascii: "[")]
        case .string: return [UInt8(ascii: "\"")]
        case .number: return Set("-0123456789".utf8)
        case .literal(let set): return Set(literalSets[set].compactMap(\.first))
        case .union(let members):
            guard !visiting.contains(node) else { return [] }
            return members.reduce(into: Set<UInt8>()) { $0.formUnion(startBytes($1, visiting: visiting.union([node]))) }
        case .sequence(let parts):
            switch parts.first {
            case .text(let bytes)?: return bytes.first.map { [$0] } ?? []
            case .value(let inner)?:
                return visiting.contains(node) ? [] : startBytes(inner, visiting: visiting.union([node]))
            case nil: return []
            }
        case .choice(let set, _): return Set(literalSets[set].compactMap(\.first))
        }
    }
}
