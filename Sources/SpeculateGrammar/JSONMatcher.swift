/// Where a JSON text stands in a ``JSONGrammar``, byte by byte: a pushdown automaton whose
/// frames are small values, so that states copy cheaply and serve as keys of a mask cache.
///
/// ``feed(_:grammar:)`` takes one byte and says whether the text is still a prefix of some text
/// the grammar allows; ``isComplete`` says whether the text is a whole document. Strings must be
/// valid UTF-8 (no overlong forms or surrogates), numbers are JSON numbers (no leading zeros).
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

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D
    }

    /// Counts a whitespace byte in the current gap.
    private mutating func whitespace(_ grammar: JSONGrammar) -> Outcome {
        guard Int(top.whitespace) < grammar.maxWhitespace else { return .refused }
        top.whitespace += 1
        return .taken
    }

    /// The value ended: back to the frame that contains it (or the document is done).
    private mutating func complete() {
        top = stack.popLast() ?? Frame(kind: .done, node: -1)
    }

    private mutating func step(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
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
    private mutating func startValue(_ byte: UInt8, node: Int, grammar: JSONGrammar) -> Outcome {
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

    // MARK: Sequences and choices

    /// At a part boundary of a sequence: start its next part with `byte`, or end it.
    private mutating func sequenceStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        guard case .sequence(let parts) = grammar.nodes[Int(top.node)] else { return .refused }
        let index = Int(top.count)
        guard index < parts.count else { return .refused }
        switch parts[index] {
        case .text:
            top = Frame(kind: .sequenceText, node: top.node, count: 0, mask: UInt64(index))
        case .value(let node):
            // A last value ends the sequence when it ends: nothing to come back to.
            if index + 1 < parts.count { stack.append(Frame(kind: .sequence, node: top.node, count: Int32(index + 1))) }
            top = Frame(kind: .value, node: Int32(node))
        }
        return .handOn
    }

    /// A byte of a choice's texts; once one is whole, on to its value.
    private mutating func choiceStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        guard case .choice(let set, let next) = grammar.nodes[Int(top.node)] else { return .refused }
        let texts = grammar.literalSets[set]
        let offset = Int(top.count)
        var remaining: UInt64 = 0
        var whole = -1
        var candidates = top.mask
        while candidates != 0 {
            let index = candidates.trailingZeroBitCount
            candidates &= candidates - 1
            guard offset < texts[index].count, texts[index][offset] == byte else { continue }
            remaining |= 1 << UInt64(index)
            if offset + 1 == texts[index].count { whole = index }
        }
        guard remaining != 0 else { return .refused }
        if whole >= 0 {
            // No text is a prefix of another, so a whole one is the only one left.
            top = Frame(kind: .value, node: Int32(next[whole]))
        } else {
            top.count += 1
            top.mask = remaining
        }
        return .taken
    }

    // MARK: Objects

    private mutating func objectStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        if Self.isWhitespace(byte) { return whitespace(grammar) }
        let node = grammar.nodes[Int(top.node)]
        let next = Int(top.count)
        switch byte {
        case UInt8(ascii: "}") where top.kind != .objectComma:
            if case .object(let properties) = node, properties[next...].contains(where: \.required) { return .refused }
            complete()
            return .taken
        case UInt8(ascii: ",") where top.kind == .objectNext:
            if case .object(let properties) = node, next >= properties.count { return .refused }
            top = Frame(kind: .objectComma, node: top.node, count: top.count)
            return .taken
        case UInt8(ascii: "\"") where top.kind != .objectNext:
            switch node {
            case .object(let properties):
                // The keys that may come next: those from `next` up to the first required one.
                var mask: UInt64 = 0
                for index in next..<properties.count {
                    mask |= 1 << UInt64(index)
                    if properties[index].required { break }
                }
                guard mask != 0 else { return .refused }
                top = Frame(kind: .objectKey, node: top.node, count: 1, mask: mask)
            case .freeObject:
                stack.append(Frame(kind: .objectColon, node: top.node))
                top = Frame(kind: .string, node: -1)
            default: return .refused
            }
            return .taken
        default: return .refused
        }
    }

    /// A byte of a declared key (quotes included); at its closing quote, on to the colon.
    private mutating func keyStep(_ byte: UInt8, properties: [JSONGrammar.Property]) -> Outcome {
        let offset = Int(top.count)
        var remaining: UInt64 = 0
        var matched = -1
        var candidates = top.mask
        while candidates != 0 {
            let index = candidates.trailingZeroBitCount
            candidates &= candidates - 1
            let key = properties[index].key
            guard offset < key.count, key[offset] == byte else { continue }
            remaining |= 1 << UInt64(index)
            if offset + 1 == key.count { matched = index }
        }
        guard remaining != 0 else { return .refused }
        if matched >= 0 {
            // Keys end with a quote, so no other key continues past a whole one.
            top = Frame(kind: .objectColon, node: top.node, count: Int32(matched))
        } else {
            top.count += 1
            top.mask = remaining
        }
        return .taken
    }

    // MARK: Arrays

    private mutating func arrayStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        if Self.isWhitespace(byte) { return whitespace(grammar) }
        guard case .array(let items, let minItems, let maxItems) = grammar.nodes[Int(top.node)] else { return .refused }
        let count = Int(top.count)
        if byte == UInt8(ascii: "]"), top.kind != .arrayComma {
            guard count >= minItems else { return .refused }
            complete()
            return .taken
        }
        if byte == UInt8(ascii: ","), top.kind == .arrayNext {
            guard count < maxItems else { return .refused }
            top = Frame(kind: .arrayComma, node: top.node, count: top.count)
            return .taken
        }
        guard top.kind != .arrayNext, count < maxItems else { return .refused }
        stack.append(Frame(kind: .arrayNext, node: top.node, count: top.count + 1))
        top = Frame(kind: .value, node: Int32(items))
        return .handOn
    }

    // MARK: Strings, numbers, literals

    private mutating func stringStep(_ byte: UInt8) -> Outcome {
        if top.mask != 0 {
            // Inside a UTF-8 sequence: bits 0-7 the continuation bytes due, 8-15 and 16-23 the
            // range of the next one.
            let due = top.mask & 0xFF
            let low = UInt8((top.mask >> 8) & 0xFF)
            let high = UInt8((top.mask >> 16) & 0xFF)
            guard byte >= low, byte <= high else { return .refused }
            top.mask = due == 1 ? 0 : (due - 1) | (0x80 << 8) | (0xBF << 16)
            return .taken
        }
        switch top.count {
        case 0:
            switch byte {
            case UInt8(ascii: "\""):
                complete()
                return .taken
            case UInt8(ascii: "\\"):
                top.count = 1
                return .taken
            case 0..<0x20: return .refused
            case 0x20..<0x80: return .taken
            default:
                guard let (due, low, high) = Self.utf8Lead(byte) else { return .refused }
                top.mask = UInt64(due) | UInt64(low) << 8 | UInt64(high) << 16
                return .taken
            }
        case 1:
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                top.count = 0
            case UInt8(ascii: "u"): top.count = 2
            default: return .refused
            }
            return .taken
        default:
            guard byte.isHexDigit else { return .refused }
            top.count = top.count == 5 ? 0 : top.count + 1
            return .taken
        }
    }

    /// For a UTF-8 lead byte: the continuation bytes it needs and the range of the first one.
    private static func utf8Lead(_ byte: UInt8) -> (UInt8, UInt8, UInt8)? {
        switch byte {
        case 0xC2...0xDF: (1, 0x80, 0xBF)
        case 0xE0: (2, 0xA0, 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (2, 0x80, 0xBF)
        case 0xED: (2, 0x80, 0x9F)
        case 0xF0: (3, 0x90, 0xBF)
        case 0xF1...0xF3: (3, 0x80, 0xBF)
        case 0xF4: (3, 0x80, 0x8F)
        default: nil
        }
    }

    private mutating func numberStart(_ byte: UInt8) -> Outcome {
        switch byte {
        case UInt8(ascii: "-"): top.count = NumberPhase.minus.rawValue
        case UInt8(ascii: "0"): top.count = NumberPhase.zero.rawValue
        case UInt8(ascii: "1")...UInt8(ascii: "9"): top.count = NumberPhase.integer.rawValue
        default: return .refused
        }
        return .taken
    }

    private mutating func numberStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        guard let phase = NumberPhase(rawValue: top.count) else { return .refused }
        // A number of an `any` node may be any number.
        var integerOnly = false
        if case .number(let integer) = grammar.nodes[Int(top.node)] { integerOnly = integer }
        let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        let next: NumberPhase?
        switch (phase, byte) {
        case (.minus, UInt8(ascii: "0")): next = .zero
        case (.minus, _) where digit: next = .integer
        case (.integer, _) where digit: next = .integer
        case (.zero, UInt8(ascii: ".")), (.integer, UInt8(ascii: ".")): next = integerOnly ? nil : .dot
        case (.dot, _) where digit, (.fraction, _) where digit: next = .fraction
        case (.zero, UInt8(ascii: "e")), (.zero, UInt8(ascii: "E")), (.integer, UInt8(ascii: "e")),
            (.integer, UInt8(ascii: "E")), (.fraction, UInt8(ascii: "e")), (.fraction, UInt8(ascii: "E")):
            next = integerOnly ? nil : .exponentMark
        case (.exponentMark, UInt8(ascii: "+")), (.exponentMark, UInt8(ascii: "-")): next = .exponentSign
        case (.exponentMark, _) where digit, (.exponentSign, _) where digit, (.exponent, _) where digit:
            next = .exponent
        default: next = nil
        }
        if let next {
            top.count = next.rawValue
            return .taken
        }
        guard phase.canEnd, !digit else { return .refused }
        complete()
        return .handOn
    }

    /// A byte of a literal. A whole text may be matched while a longer one could go on (enum
    /// values 1 and 12): ``Frame/ended`` marks that, and a byte neither continues then ends it.
    private mutating func literalStep(_ byte: UInt8, texts: [[UInt8]]) -> Outcome {
        let offset = Int(top.count)
        var remaining: UInt64 = 0
        var longer = false
        var whole = false
        var candidates = top.mask
        while candidates != 0 {
            let index = candidates.trailingZeroBitCount
            candidates &= candidates - 1
            let text = texts[index]
            guard offset < text.count, text[offset] == byte else { continue }
            remaining |= 1 << UInt64(index)
            if offset + 1 < text.count { longer = true } else { whole = true }
        }
        guard remaining != 0 else {
            guard top.ended else { return .refused }
            complete()
            return .handOn
        }
        guard longer else {
            complete()
            return .taken
        }
        top.count += 1
        top.mask = remaining
        top.ended = whole
        return .taken
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
