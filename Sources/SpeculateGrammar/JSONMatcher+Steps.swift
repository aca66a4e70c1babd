/// The matcher's steps by construct: sequences and choices, objects, arrays, strings, numbers
/// and literals.
extension JSONMatcher {
    // MARK: Sequences and choices

    /// At a part boundary of a sequence: start its next part with `byte`, or end it.
    mutating func sequenceStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
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
    mutating func choiceStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
        guard case .choice(let set, let next) = grammar.nodes[Int(top.node)] else { return .refused }
        let texts = grammar.literalSets[set]
        let (remaining, whole, _) = Self.narrow(top.mask, offset: Int(top.count), byte: byte) { texts[$0] }
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

    mutating func objectStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
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
    mutating func keyStep(_ byte: UInt8, properties: [JSONGrammar.Property]) -> Outcome {
        let (remaining, matched, _) = Self.narrow(top.mask, offset: Int(top.count), byte: byte) {
            properties[$0].key
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

    mutating func arrayStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
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

    mutating func stringStep(_ byte: UInt8) -> Outcome {
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
    static func utf8Lead(_ byte: UInt8) -> (UInt8, UInt8, UInt8)? {
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

    mutating func numberStart(_ byte: UInt8) -> Outcome {
        switch byte {
        case UInt8(ascii: "-"): top.count = NumberPhase.minus.rawValue
        case UInt8(ascii: "0"): top.count = NumberPhase.zero.rawValue
        case UInt8(ascii: "1")...UInt8(ascii: "9"): top.count = NumberPhase.integer.rawValue
        default: return .refused
        }
        return .taken
    }

    mutating func numberStep(_ byte: UInt8, grammar: JSONGrammar) -> Outcome {
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
    mutating func literalStep(_ byte: UInt8, texts: [[UInt8]]) -> Outcome {
        let (remaining, whole, longer) = Self.narrow(top.mask, offset: Int(top.count), byte: byte) { texts[$0] }
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
        top.ended = whole >= 0
        return .taken
    }
}

extension JSONMatcher {
    /// Of the texts in `candidates` (bits of indices into `text`), those whose byte at `offset` is
    /// `byte`; the one of them that ends there (-1: none); whether any of them goes on. Keys,
    /// literals and a choice's texts are all matched this way.
    @inline(__always)
    static func narrow(_ candidates: UInt64, offset: Int, byte: UInt8, text: (Int) -> [UInt8])
        -> (remaining: UInt64, whole: Int, longer: Bool)
    {
        var remaining: UInt64 = 0
        var whole = -1
        var longer = false
        var rest = candidates
        while rest != 0 {
            let index = rest.trailingZeroBitCount
            rest &= rest - 1
            let bytes = text(index)
            guard offset < bytes.count, bytes[offset] == byte else { continue }
            remaining |= 1 << UInt64(index)
            if offset + 1 == bytes.count { whole = index } else { longer = true }
        }
        return (remaining, whole, longer)
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (0x30...0x39).contains(self) || (0x41...0x46).contains(self) || (0x61...0x66).contains(self)
    }
}
