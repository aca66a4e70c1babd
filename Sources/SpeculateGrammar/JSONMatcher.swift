/// Where a JSON text stands in a ``JSONGrammar``, byte by byte: a pushdown automaton whose
/// frames are small values, so that states copy cheaply and serve as keys of a mask cache.
///
/// ``feed(_:grammar:)`` takes one byte and says whether the text is still a prefix of some text
/// the grammar allows; ``isComplete`` says whether the text is a whole document. Strings must be
/// valid UTF-8 (no overlong forms or encoded surrogates; `\u` escapes are any four hex digits, as
/// RFC 8259's grammar allows), numbers are JSON numbers (no leading zeros).
public struct JSONMatcher: Sendable, Hashable {
    /// One level of the automaton.
    struct Frame: Sendable, Hashable {
        enum Kind: UInt8, Sendable {
            /// Before a value of `node` (whitespace allowed).
            case value
            /// After `{`: a key or `}`. `count` is the next property's index.
            case objectOpen
            /// Inside a declared key: `count` bytes matched, `mask` the properties still possible.
            case objectKey
            /// After a key: `:`. `count` is the property's index (free objects: unused).
            case objectColon
            /// After a member's value: `,` or `}`. `count` is the next property's index.
            case objectNext
            /// After `,`: a key. `count` is the next property's index.
            case objectComma
            /// After `[`: a value or `]`. `count` is the elements so far.
            case arrayOpen
            /// After an element: `,` or `]`.
            case arrayNext
            /// After `,`: an element.
            case arrayComma
            /// Inside a string: `count` is the escape state (0 none, 1 after `\`, 2...5 hex digits
            /// read + 2), `mask` the UTF-8 state (continuation bytes due, next byte's range).
            case string
            /// Inside a number: `count` is its ``NumberPhase``.
            case number
            /// Inside a literal of set `node`: `count` bytes matched, `mask` the texts still possible.
            case literal
            /// A sequence node: `count` parts done (the next one starts with the next byte).
            case sequence
            /// Inside a text of a sequence: `count` bytes of part `mask` matched.
            case sequenceText
            /// Inside a choice's texts (as ``literal``), then on to the chosen value.
            case choice
            /// The document is complete: nothing more may follow.
            case done
        }
        var kind: Kind
        var node: Int32
        var count: Int32 = 0
        var mask: UInt64 = 0
        var whitespace: UInt8 = 0
        /// A literal: a whole text is matched (a longer one may still go on).
        var ended = false
    }

    /// Number phases (``Frame/Kind/number``).
    enum NumberPhase: Int32 {
        case minus = 1
        case zero, integer, dot, fraction, exponentMark, exponentSign, exponent

        /// Whether a number may end here.
        var canEnd: Bool { self == .zero || self == .integer || self == .fraction || self == .exponent }
    }

    var stack: [Frame] = []
    var top: Frame
    /// Set once a byte was refused; the matcher then refuses everything.
    public private(set) var failed = false

    /// A matcher at the start of a document of `grammar`.
    public init(_ grammar: JSONGrammar) {
        top = Frame(kind: .value, node: Int32(grammar.root))
    }

    /// Whether the text so far is a whole document: generation may end here.
    public var isComplete: Bool {
        guard !failed else { return false }
        if top.kind == .done { return true }
        guard stack.isEmpty else { return false }
        switch top.kind {
        case .number: return NumberPhase(rawValue: top.count)?.canEnd ?? false
        case .literal: return top.ended
        default: return false
        }
    }

    /// Whether the matcher is inside a string with nothing pending (no escape, no partial
    /// character), where every plain printable ASCII byte but `"` and `\` keeps the state as it is.
    var isInPlainString: Bool { top.kind == .string && top.count == 0 && top.mask == 0 && !failed }

    /// Takes `bytes`; false (and failed from then on) when one of them is refused.
    @discardableResult
    public mutating func feed<Bytes: Sequence<UInt8>>(_ bytes: Bytes, grammar: JSONGrammar) -> Bool {
        for byte in bytes where !feed(byte, grammar: grammar) { return false }
        return true
    }

    /// Takes one byte; false (and failed from then on) when the grammar refuses it here.
    @discardableResult
    public mutating func feed(_ byte: UInt8, grammar: JSONGrammar) -> Bool {
        guard !failed else { return false }
        // A frame that ends at a byte belonging to its parent (a number, a literal that may go
        // on) completes and hands the byte on: the loop runs at most once more per level.
        while true {
            switch step(byte, grammar: grammar) {
            case .taken: return true
            case .refused:
                failed = true
                return false
            case .handOn: continue
            }
        }
    }

    enum Outcome { case taken, refused, handOn }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D
    }

    /// Counts a whitespace byte in the current gap.
    mutating func whitespace(_ grammar: JSONGrammar) -> Outcome {
        guard Int(top.whitespace) < grammar.maxWhitespace else { return .refused }
        top.whitespace += 1
        return .taken
    }

    /// The value ended: back to the frame that contains it (or the document is done).
    mutating func complete() {
        top = stack.popLast() ?? Frame(kind: .done, node: -1)
    }

    mutating func step(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        switch top.kind {
        case .value:
            if Self.isWhitespace(byte) { return whitespace(grammar) }
            return startValue(byte, node: Int(top.node), grammar: grammar)
        case .objectOpen, .objectComma, .objectNext:
            return objectStep(byte, grammar: grammar)
        case .objectKey:
            guard case .object(let properties) = grammar.nodes[Int(top.node)] else { return .refused }
            return keyStep(byte, properties: properties)
        case .objectColon:
            if Self.isWhitespace(byte) { return whitespace(grammar) }
            guard byte == UInt8(ascii: ":") else { return .refused }
            let node = Int(top.node)
            switch grammar.nodes[node] {
            case .object(let properties):
                let property = Int(top.count)
                stack.append(Frame(kind: .objectNext, node: top.node, count: Int32(property + 1)))
                top = Frame(kind: .value, node: Int32(properties[property].value))
            case .freeObject(let values):
                stack.append(Frame(kind: .objectNext, node: top.node))
                top = Frame(kind: .value, node: Int32(values))
            default: return .refused
            }
            return .taken
        case .arrayOpen, .arrayNext, .arrayComma:
            return arrayStep(byte, grammar: grammar)
        case .string: return stringStep(byte)
        case .number: return numberStep(byte, grammar: grammar)
        case .literal: return literalStep(byte, texts: grammar.literalSets[Int(top.node)])
        case .sequence: return sequenceStep(byte, grammar: grammar)
        case .sequenceText:
            guard case .sequence(let parts) = grammar.nodes[Int(top.node)],
                case .text(let bytes) = parts[Int(top.mask)], bytes[Int(top.count)] == byte
            else { return .refused }
            top.count += 1
            if Int(top.count) == bytes.count {
                // The last part ends the sequence here, so that a sequence never waits, whole,
                // for a byte to find out that it is.
                if Int(top.mask) + 1 == parts.count {
                    complete()
                } else {
                    top = Frame(kind: .sequence, node: top.node, count: Int32(top.mask) + 1)
                }
            }
            return .taken
        case .choice: return choiceStep(byte, grammar: grammar)
        case .done: return .refused
        }
    }

    /// The first byte of a value of `node`.
    mutating func startValue(_ byte: UInt8, node: Int, grammar: JSONGrammar) -> Outcome {
        var resolved = Int(grammar.starts[node][Int(byte)])
        while resolved >= 0, case .union = grammar.nodes[resolved] {
            resolved = Int(grammar.starts[resolved][Int(byte)])
        }
        guard resolved >= 0 else { return .refused }
        switch grammar.nodes[resolved] {
        case .any:
            switch byte {
            case UInt8(ascii: "{"): return startValue(byte, node: JSONGrammar.anyObjectNode, grammar: grammar)
            case UInt8(ascii: "["): return startValue(byte, node: JSONGrammar.anyArrayNode, grammar: grammar)
            case UInt8(ascii: "\""):
                top = Frame(kind: .string, node: Int32(resolved))
                return .taken
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                top = Frame(kind: .literal, node: 0, mask: 0b111)
                return literalStep(byte, texts: grammar.literalSets[0])
            default:
                top = Frame(kind: .number, node: Int32(resolved))
                return numberStart(byte)
            }
        case .freeObject, .object:
            top = Frame(kind: .objectOpen, node: Int32(resolved))
            return .taken
        case .array:
            top = Frame(kind: .arrayOpen, node: Int32(resolved))
            return .taken
        case .string:
            top = Frame(kind: .string, node: Int32(resolved))
            return .taken
        case .number:
            top = Frame(kind: .number, node: Int32(resolved))
            return numberStart(byte)
        case .literal(let set):
            let texts = grammar.literalSets[set]
            top = Frame(
                kind: .literal, node: Int32(set), mask: texts.count == 64 ? .max : (1 << UInt64(texts.count)) - 1)
            return literalStep(byte, texts: texts)
        case .sequence:
            top = Frame(kind: .sequence, node: Int32(resolved))
            return .handOn
        case .choice(let set, _):
            let texts = grammar.literalSets[set]
            top = Frame(
                kind: .choice, node: Int32(resolved), mask: texts.count == 64 ? .max : (1 << UInt64(texts.count)) - 1)
            return choiceStep(byte, grammar: grammar)
        case .union: return .refused
        }
    }
}
