import SpeculateCore

/// A vocabulary arranged for grammar masks: the text tokens sorted by their bytes, with each
/// token's common prefix with the one before it, so that one walk over the sorted list visits
/// every distinct prefix once (a token trie, flattened) and skips every token that shares a
/// prefix the grammar already refused.
public struct GrammarVocabulary: Sendable {
    /// Tokens in the model's vocabulary (masks cover this many).
    public let size: Int
    /// Tokens that end generation: allowed exactly where the document is complete.
    public let endTokens: Set<Token>
    let sortedTokens: [Int32]
    /// Sorted token `i`'s bytes are `storage[offsets[i]..<offsets[i + 1]]`.
    let offsets: [Int32]
    let storage: [UInt8]
    /// Bytes sorted token `i` shares with sorted token `i - 1`.
    let sharedPrefix: [Int32]
    /// Each token id's place in the sorted list (-1: not text).
    let positions: [Int32]

    /// Arranges a vocabulary of `size` tokens; `text` gives a token's bytes, or nil for tokens
    /// that are not text (control tokens), which grammars never allow. With `spellsEveryByte`
    /// (what a real tokenizer's vocabulary must do), throws when some printable ASCII byte has no
    /// token of its own: a grammar state needing it would leave no token allowed. Throws when no
    /// end token is given.
    public init(size: Int, endTokens: Set<Token>, spellsEveryByte: Bool = true, text: (Token) -> [UInt8]?)
        throws(JSONSchemaError)
    {
        guard !endTokens.isEmpty else {
            throw JSONSchemaError("the model has no end-of-text token to end a document with")
        }
        var entries: [(token: Int32, bytes: [UInt8])] = []
        var singles = Set<UInt8>()
        for id in 0..<size {
            guard !endTokens.contains(Token(id)), let bytes = text(Token(id)), !bytes.isEmpty else { continue }
            if bytes.count == 1 { singles.insert(bytes[0]) }
            entries.append((Int32(id), bytes))
        }
        if spellsEveryByte, let missing = (0x20...0x7E).first(where: { !singles.contains(UInt8($0)) }) {
            throw JSONSchemaError("the vocabulary has no token for the byte 0x\(String(missing, radix: 16)) alone")
        }
        entries.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        var offsets: [Int32] = [0]
        var storage: [UInt8] = []
        var shared: [Int32] = []
        var previous: [UInt8] = []
        for entry in entries {
            var common = 0
            while common < previous.count, common < entry.bytes.count, previous[common] == entry.bytes[common] {
                common += 1
            }
            shared.append(Int32(common))
            storage += entry.bytes
            offsets.append(Int32(storage.count))
            previous = entry.bytes
        }
        var positions = [Int32](repeating: -1, count: size)
        for (index, entry) in entries.enumerated() { positions[Int(entry.token)] = Int32(index) }
        self.positions = positions
        self.size = size
        self.endTokens = endTokens
        sortedTokens = entries.map(\.token)
        self.offsets = offsets
        self.storage = storage
        sharedPrefix = shared
    }

    /// The bytes of text token `token`, or nil for an end token, a token that is not text or an id
    /// outside the vocabulary.
    func bytes(of token: Token) -> ArraySlice<UInt8>? {
        guard token >= 0, Int(token) < size, case let position = Int(positions[Int(token)]), position >= 0 else {
            return nil
        }
        return storage[Int(offsets[position])..<Int(offsets[position + 1])]
    }

    /// The tokens allowed after `state`, as a bit set over the vocabulary: text tokens whose bytes
    /// `state` takes whole, and the end tokens when the document is complete.
    func mask(after state: JSONMatcher, grammar: JSONGrammar) -> [UInt64] {
        var mask = [UInt64](repeating: 0, count: (size + 63) / 64)
        if state.isComplete {
            for token in endTokens where Int(token) < size { mask[Int(token) >> 6] |= 1 << UInt64(token & 63) }
        }
        guard !state.failed else { return mask }
        // states[d]: the state after the current token's first d bytes (valid up to `known`).
        var states = [state]
        states.reserveCapacity(64)
        var known = 0
        var refusedAt = Int.max
        storage.withUnsafeBufferPointer { bytes in
            for index in sortedTokens.indices {
                let shared = Int(sharedPrefix[index])
                // It shares the bytes up to a refused one with the token before: refused too.
                if shared > refusedAt { continue }
                refusedAt = .max
                var depth = min(shared, known)
                var current = states[depth]
                let start = Int(offsets[index])
                let length = Int(offsets[index + 1]) - start
                var taken = true
                while depth < length {
                    if !current.feed(bytes[start + depth], grammar: grammar) {
                        refusedAt = depth
                        taken = false
                        break
                    }
                    depth += 1
                    if depth < states.count { states[depth] = current } else { states.append(current) }
                }
                known = depth
                if taken {
                    let token = Int(sortedTokens[index])
                    mask[token >> 6] |= 1 << UInt64(token & 63)
                }
            }
        }
        return mask
    }
}
