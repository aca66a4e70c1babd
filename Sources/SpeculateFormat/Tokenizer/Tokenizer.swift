import Foundation
import HeapModule

/// A tokenizer built from GGUF metadata: byte-level BPE (GPT-2, Qwen2, SmolLM, Llama 3) or
/// SentencePiece BPE (Llama 2, Mistral, Gemma), as `tokenizer.ggml.model` says.
///
/// Encoding: special tokens are cut out first (user-defined ones always, control tokens such
/// as `<|im_start|>` only when asked to); the text between them goes to the ``Scheme``'s encoder.
/// ``encode(_:parseSpecial:)`` adds no beginning-of-sequence token; ``encodePrompt(_:parseSpecial:)``
/// adds one where the file asks for it.
public struct Tokenizer: Sendable {
    /// How the text between special tokens becomes tokens.
    public enum Scheme: Sendable, Equatable {
        /// Byte-level BPE: the text is NFC-normalized where the family does so, split by the
        /// ``PreTokenizer``, mapped to byte-level characters and merged by rank.
        case byteLevelBPE(PreTokenizer)
        /// SentencePiece BPE as llama.cpp runs it: spaces become `▁`, characters are merged by
        /// the score of the token they make (highest first), and characters no token spells fall
        /// back to `<0xNN>` byte tokens.
        case sentencePiece
    }

    /// Token strings by id.
    public let tokens: [String]
    /// Token kinds by id.
    public let kinds: [TokenKind]
    /// The encoding scheme.
    public let scheme: Scheme
    /// Beginning-of-sequence token, if the model declares one.
    public let bosID: TokenID?
    /// End-of-sequence token, if the model declares one.
    public let eosID: TokenID?
    /// Padding token, if the model declares one.
    public let padID: TokenID?
    /// Unknown token, if the model declares one.
    public let unknownID: TokenID?
    /// Whether prompts start with the beginning-of-sequence token (`tokenizer.ggml.add_bos_token`).
    public let addsBOS: Bool
    /// Whether SentencePiece text starts with a space (`tokenizer.ggml.add_space_prefix`), so that
    /// a first word is spelled as it is after a space.
    public let addsSpacePrefix: Bool
    /// Ids that end a turn or a text (EOS plus `<|im_end|>`, `<|endoftext|>`, `<|eot_id|>` and
    /// `<end_of_turn>` when present).
    public let stopIDs: Set<TokenID>
    /// The file's chat template (`tokenizer.chat_template`, a Jinja program), whose format
    /// ``chatFormat`` recognizes; set it to use another template's format.
    public var chatTemplateSource: String?

    /// Ids by the exact bytes of their token strings: a `String` key would match canonically
    /// equivalent spellings (`e` + U+0301 finding the token `é`), which tokenizers never do.
    let idForToken: [[UInt8]: TokenID]
    let tokenBytes: [[UInt8]]
    /// For each byte, the token that stands for it alone (-1: none).
    let byteTokenIDs: [TokenID]
    /// Byte-level BPE: `(left << 32 | right)` to `(rank << 32 | merged)`.
    let merges: [UInt64: UInt64]
    /// SentencePiece: each token's score (merges making higher scores first).
    let scores: [Float]
    /// Special tokens, longest first, for whole-token matching in text.
    private let specials: [(id: TokenID, bytes: [UInt8], isControl: Bool)]

    /// Number of entries in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// The pre-tokenizer of a byte-level BPE vocabulary.
    public var preTokenizer: PreTokenizer? {
        if case .byteLevelBPE(let pre) = scheme { return pre }
        return nil
    }

    /// Whether encoding brings the text to Unicode NFC first.
    public var normalizesToNFC: Bool { preTokenizer?.normalizesToNFC ?? false }

    /// A vocabulary's special ids.
    public struct SpecialIDs: Sendable {
        /// Beginning of sequence, end of sequence, padding, unknown.
        public var bos, eos, pad, unknown: TokenID?

        /// Special ids; any may be absent.
        public init(bos: TokenID? = nil, eos: TokenID? = nil, pad: TokenID? = nil, unknown: TokenID? = nil) {
            self.bos = bos
            self.eos = eos
            self.pad = pad
            self.unknown = unknown
        }
    }

    /// Builds a byte-level BPE tokenizer from a vocabulary and merge rules (`"left right"` strings).
    public init(
        tokens: [String], kinds: [TokenKind], merges mergeRules: [String], preTokenizer: PreTokenizer,
        bos: TokenID? = nil, eos: TokenID? = nil, pad: TokenID? = nil
    ) throws {
        try self.init(
            tokens: tokens, kinds: kinds, merges: mergeRules, preTokenizer: preTokenizer,
            special: SpecialIDs(bos: bos, eos: eos, pad: pad), addsBOS: false)
    }

    /// Builds a byte-level BPE tokenizer from a vocabulary and merge rules (`"left right"` strings).
    public init(
        tokens: [String], kinds: [TokenKind], merges mergeRules: [String], preTokenizer: PreTokenizer,
        special: SpecialIDs, addsBOS: Bool
    ) throws {
        let vocabulary = try Vocabulary(tokens: tokens, kinds: kinds) { ByteLevel.bytes(of: $0) ?? Array($0.utf8) }
        // A vocabulary may lack some rare byte (SmolLM2 has no token for most ASCII control
        // bytes); like the reference BPE without byte fallback, such bytes are dropped.
        let byteIDs = (0..<256).map {
            vocabulary.index[Array(String(Character(ByteLevel.characterForByte[$0])).utf8)] ?? -1
        }
        guard byteIDs.filter({ $0 >= 0 }).count >= 188 else {
            throw TokenizerError.badMetadata(
                "the vocabulary lacks most byte-level tokens; is this a byte-level BPE model?")
        }
        let merges = try Self.mergeTable(mergeRules, index: vocabulary.index)
        self.init(
            vocabulary, scheme: .byteLevelBPE(preTokenizer), special: special, addsBOS: addsBOS,
            addsSpacePrefix: false, byteTokenIDs: byteIDs, merges: merges, scores: [])
    }

    /// Builds a SentencePiece tokenizer from a vocabulary with its scores.
    public init(
        sentencePiece tokens: [String], scores: [Float], kinds: [TokenKind], special: SpecialIDs, addsBOS: Bool,
        addsSpacePrefix: Bool
    ) throws {
        guard scores.count == tokens.count else {
            throw TokenizerError.badMetadata("\(scores.count) scores for \(tokens.count) tokens")
        }
        let vocabulary = try Vocabulary(tokens: tokens, kinds: kinds) { Self.sentencePieceBytes($0) }
        var byteIDs = [TokenID](repeating: -1, count: 256)
        for (id, token) in tokens.enumerated() where kinds[id] == .byte {
            if let byte = Self.byteFallbackValue(token) { byteIDs[Int(byte)] = TokenID(id) }
        }
        for byte in 0..<128 where byteIDs[byte] < 0 {
            byteIDs[byte] = vocabulary.index[Array(String(UnicodeScalar(UInt8(byte))).utf8)] ?? special.unknown ?? -1
        }
        self.init(
            vocabulary, scheme: .sentencePiece, special: special, addsBOS: addsBOS, addsSpacePrefix: addsSpacePrefix,
            byteTokenIDs: byteIDs, merges: [:], scores: scores)
    }

    /// What both schemes share: the tokens, their kinds, their bytes and the lookup by text.
    struct Vocabulary {
        let tokens: [String]
        let kinds: [TokenKind]
        let index: [[UInt8]: TokenID]
        let bytes: [[UInt8]]

        init(tokens: [String], kinds: [TokenKind], spell: (String) -> [UInt8]) throws {
            guard !tokens.isEmpty, tokens.count < Int(Int32.max) else {
                throw TokenizerError.badMetadata("empty vocabulary")
            }
            guard kinds.count == tokens.count else {
                throw TokenizerError.badMetadata("\(kinds.count) token kinds for \(tokens.count) tokens")
            }
            self.tokens = tokens
            self.kinds = kinds
            var index: [[UInt8]: TokenID] = [:]
            index.reserveCapacity(tokens.count)
            for (id, token) in tokens.enumerated() where index[Array(token.utf8)] == nil {
                index[Array(token.utf8)] = TokenID(id)
            }
            self.index = index
            bytes = tokens.indices.map { id in
                // As llama.cpp spells them: special tokens as written, unused ones as nothing.
                switch kinds[id] {
                case .control, .userDefined, .unknown: Array(tokens[id].utf8)
                case .unused: []
                default: spell(tokens[id])
                }
            }
        }
    }

    private init(
        _ vocabulary: Vocabulary, scheme: Scheme, special: SpecialIDs, addsBOS: Bool, addsSpacePrefix: Bool,
        byteTokenIDs: [TokenID], merges: [UInt64: UInt64], scores: [Float]
    ) {
        let count = vocabulary.tokens.count
        func valid(_ id: TokenID?) -> TokenID? { id.flatMap { $0 >= 0 && Int($0) < count ? $0 : nil } }
        tokens = vocabulary.tokens
        kinds = vocabulary.kinds
        idForToken = vocabulary.index
        tokenBytes = vocabulary.bytes
        self.scheme = scheme
        bosID = valid(special.bos)
        eosID = valid(special.eos)
        padID = valid(special.pad)
        unknownID = valid(special.unknown)
        self.addsBOS = addsBOS && bosID != nil
        self.addsSpacePrefix = addsSpacePrefix
        self.byteTokenIDs = byteTokenIDs
        self.merges = merges
        self.scores = scores
        let kinds = vocabulary.kinds
        let tokens = vocabulary.tokens
        // The unknown token is matched like a control token: only when asked (llama.cpp).
        specials = tokens.indices
            .filter { [.control, .userDefined, .unknown].contains(kinds[$0]) && !tokens[$0].isEmpty }
            .map { (id: TokenID($0), bytes: Array(tokens[$0].utf8), isControl: kinds[$0] != .userDefined) }
            .sorted { $0.bytes.count > $1.bytes.count }
        var stops: Set<TokenID> = []
        if let eos = eosID { stops.insert(eos) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"] {
            if let id = vocabulary.index[Array(name.utf8)], vocabulary.kinds[Int(id)] == .control { stops.insert(id) }
        }
        stopIDs = stops
    }

    /// The id of the token spelled exactly `text`, if any.
    public func id(of text: String) -> TokenID? { idForToken[Array(text.utf8)] }

    /// Whether `id` is inside the vocabulary.
    public func contains(_ id: TokenID) -> Bool { id >= 0 && Int(id) < tokens.count }

    // MARK: Encoding

    /// Token ids for `text`. With `parseSpecial`, control tokens written in the text (for
    /// example `<|im_start|>`) become those tokens; otherwise they are encoded as plain text.
    /// User-defined added tokens are always matched, as in the reference tokenizers.
    public func encode(_ text: String, parseSpecial: Bool = false) -> [TokenID] {
        var output: [TokenID] = []
        let utf8 = Array(text.utf8)
        var segmentStart = 0
        var i = 0
        // SentencePiece text after a special token (or at the start) gets the space prefix, as
        // llama.cpp does.
        var afterSpecial = true
        let candidates = specials.filter { parseSpecial || !$0.isControl }
        while i < utf8.count {
            if !candidates.isEmpty, let match = specialMatch(utf8, at: i, among: candidates) {
                if segmentStart < i { encodeSegment(utf8[segmentStart..<i], afterSpecial: afterSpecial, into: &output) }
                output.append(match.id)
                i += match.length
                segmentStart = i
                afterSpecial = true
            } else {
                i += 1
            }
        }
        if segmentStart < utf8.count {
            encodeSegment(utf8[segmentStart..<utf8.count], afterSpecial: afterSpecial, into: &output)
        }
        return output
    }

    /// ``encode(_:parseSpecial:)`` after the beginning-of-sequence token where the file asks for
    /// one (Llama, Gemma): how a prompt is fed to the model.
    public func encodePrompt(_ text: String, parseSpecial: Bool = false) -> [TokenID] {
        (addsBOS ? [bosID!] : []) + encode(text, parseSpecial: parseSpecial)
    }

    private func specialMatch(
        _ bytes: [UInt8], at i: Int,
        among candidates: [(id: TokenID, bytes: [UInt8], isControl: Bool)]
    ) -> (id: TokenID, length: Int)? {
        for special in candidates where special.bytes[0] == bytes[i] && i + special.bytes.count <= bytes.count {
            if bytes[i..<i + special.bytes.count].elementsEqual(special.bytes) {
                return (special.id, special.bytes.count)
            }
        }
        return nil
    }

    private func encodeSegment(_ bytes: ArraySlice<UInt8>, afterSpecial: Bool, into output: inout [TokenID]) {
        switch scheme {
        case .byteLevelBPE(let pre): encodeBytePairs(bytes, preTokenizer: pre, into: &output)
        case .sentencePiece: encodeSentencePiece(bytes, spacePrefix: addsSpacePrefix && afterSpecial, into: &output)
        }
    }

    // MARK: Decoding

    /// The bytes token `id` stands for (empty for ids outside the vocabulary).
    public func bytes(of id: TokenID) -> [UInt8] {
        contains(id) ? tokenBytes[Int(id)] : []
    }

    /// The bytes token `id` stands for, or none for a control token such as `<|im_end|>` when
    /// `skipControl` is set (the per-token form of ``decode(_:skipControl:)``).
    public func bytes(of id: TokenID, skipControl: Bool) -> [UInt8] {
        guard contains(id), !(skipControl && kinds[Int(id)] == .control) else { return [] }
        return tokenBytes[Int(id)]
    }

    /// The text of `ids`. Invalid UTF-8 (a sequence cut in the middle) becomes U+FFFD;
    /// SpeculateCore's `OutputText` streams text token by token without that. Where the
    /// tokenizer adds a space prefix, the first token's leading space is that prefix and is left
    /// out (as llama.cpp's detokenizer does), so that text decodes to what was encoded.
    public func decode(_ ids: [TokenID], skipControl: Bool = false) -> String {
        var bytes: [UInt8] = []
        var first = addsSpacePrefix
        for id in ids where contains(id) {
            if skipControl, kinds[Int(id)] == .control { continue }
            let piece = tokenBytes[Int(id)]
            bytes.append(contentsOf: first && piece.first == 0x20 ? piece.dropFirst() : piece[...])
            first = false
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
