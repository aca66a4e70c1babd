import Foundation
import HeapModule

/// Why a tokenizer could not be built from a model's metadata.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `tokenizer.ggml.model` names a tokenizer family Speculate does not implement.
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer Speculate does not implement.
    case unknownPreTokenizer(String)
    /// Metadata needed to build the tokenizer is absent or malformed.
    case badMetadata(String)
    /// A merge rule whose parts or result are not in the vocabulary.
    case badMerge(index: Int, rule: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let name):
            return "tokenizer model '\(name)' is not supported (Speculate implements byte-level BPE, 'gpt2')"
        case .unknownPreTokenizer(let name):
            let known = PreTokenizer.allCases.map(\.rawValue).joined(separator: ", ")
            return "pre-tokenizer '\(name)' is not supported (known: \(known))"
        case .badMetadata(let reason):
            return "bad tokenizer metadata: \(reason)"
        case .badMerge(let index, let rule):
            return "merge rule #\(index) '\(rule)' refers to tokens that are not in the vocabulary"
        }
    }
}

/// The role of a vocabulary entry (`tokenizer.ggml.token_type`).
public enum TokenKind: Int32, Sendable {
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// A token id. Vocabularies here have well under 2^31 entries.
public typealias TokenID = Int32

/// Byte-level BPE tokenizer built from GGUF metadata (the scheme of GPT-2, Qwen2, SmolLM).
///
/// Encoding: special tokens are cut out first (user-defined ones always, control tokens such
/// as `<|im_start|>` only when asked to), the rest is NFC-normalized where the model family
/// does so, split by the ``PreTokenizer``, mapped to byte-level characters and merged by rank.
public struct Tokenizer: Sendable {
    /// Token strings by id.
    public let tokens: [String]
    /// Token kinds by id.
    public let kinds: [TokenKind]
    /// The pre-tokenizer.
    public let preTokenizer: PreTokenizer
    /// Beginning-of-sequence token, if the model declares one.
    public let bosID: TokenID?
    /// End-of-sequence token, if the model declares one.
    public let eosID: TokenID?
    /// Padding token, if the model declares one.
    public let padID: TokenID?
    /// Ids that end a turn or a text (EOS plus `<|im_end|>`, `<|endoftext|>` when present).
    public let stopIDs: Set<TokenID>

    private let idForToken: [String: TokenID]
    private let tokenBytes: [[UInt8]]
    private let byteTokenIDs: [TokenID]
    /// `(left << 32 | right)` to `(rank << 32 | merged)`.
    private let merges: [UInt64: UInt64]
    /// Special tokens, longest first, for whole-token matching in text.
    private let specials: [(id: TokenID, bytes: [UInt8], isControl: Bool)]

    /// Number of entries in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// Builds the tokenizer described by `file`'s `tokenizer.ggml.*` metadata.
    public init(gguf file: GGUFFile) throws {
        let model = try file.string("tokenizer.ggml.model")
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        let preName = (try? file.string("tokenizer.ggml.pre")) ?? "default"
        guard let pre = PreTokenizer(ggmlName: preName) else { throw TokenizerError.unknownPreTokenizer(preName) }
        let tokens = try file.stringArray("tokenizer.ggml.tokens")
        let merges = try file.stringArray("tokenizer.ggml.merges")
        var kinds = [TokenKind](repeating: .normal, count: tokens.count)
        if file.metadata["tokenizer.ggml.token_type"] != nil {
            let raw = try file.integerArray("tokenizer.ggml.token_type")
            guard raw.count == tokens.count else {
                throw TokenizerError.badMetadata("\(raw.count) token types for \(tokens.count) tokens")
            }
            kinds = raw.map { TokenKind(rawValue: Int32(clamping: $0)) ?? .normal }
        }
        func optionalID(_ key: String) throws -> TokenID? {
            guard file.metadata[key] != nil else { return nil }
            let id = try file.integer(key)
            guard id >= 0, id < tokens.count else {
                throw TokenizerError.badMetadata("\(key) = \(id) is outside the vocabulary of \(tokens.count)")
            }
            return TokenID(id)
        }
        try self.init(
            tokens: tokens, kinds: kinds, merges: merges, preTokenizer: pre,
            bos: optionalID("tokenizer.ggml.bos_token_id"),
            eos: optionalID("tokenizer.ggml.eos_token_id"),
            pad: optionalID("tokenizer.ggml.padding_token_id"))
    }

    /// Builds a tokenizer from a vocabulary and merge rules (`"left right"` strings).
    public init(
        tokens: [String], kinds: [TokenKind], merges mergeRules: [String], preTokenizer: PreTokenizer,
        bos: TokenID? = nil, eos: TokenID? = nil, pad: TokenID? = nil
    ) throws {
        guard !tokens.isEmpty, tokens.count < Int(Int32.max) else {
            throw TokenizerError.badMetadata("empty vocabulary")
        }
        guard kinds.count == tokens.count else {
            throw TokenizerError.badMetadata("\(kinds.count) token kinds for \(tokens.count) tokens")
        }
        self.tokens = tokens
        self.kinds = kinds
        self.preTokenizer = preTokenizer
        bosID = bos
        eosID = eos
        padID = pad

        var index: [String: TokenID] = [:]
        index.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where index[token] == nil { index[token] = TokenID(id) }
        idForToken = index

        var bytes: [[UInt8]] = []
        bytes.reserveCapacity(tokens.count)
        var specials: [(TokenID, [UInt8], Bool)] = []
        for (id, token) in tokens.enumerated() {
            switch kinds[id] {
            case .control, .userDefined:
                bytes.append(Array(token.utf8))
                if !token.isEmpty { specials.append((TokenID(id), Array(token.utf8), kinds[id] == .control)) }
            default:
                bytes.append(ByteLevel.bytes(of: token) ?? Array(token.utf8))
            }
        }
        tokenBytes = bytes
        self.specials = specials.sorted { $0.1.count > $1.1.count }.map { (id: $0.0, bytes: $0.1, isControl: $0.2) }

        // A vocabulary may lack some rare byte (SmolLM2 has no token for most ASCII control
        // bytes); like the reference BPE without byte fallback, such bytes are dropped.
        var byteIDs = [TokenID](repeating: -1, count: 256)
        for byte in 0..<256 {
            byteIDs[byte] = index[String(Character(ByteLevel.characterForByte[byte]))] ?? -1
        }
        guard byteIDs.filter({ $0 >= 0 }).count >= 188 else {
            throw TokenizerError.badMetadata(
                "the vocabulary lacks most byte-level tokens; is this a byte-level BPE model?")
        }
        byteTokenIDs = byteIDs

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(mergeRules.count)
        for (rank, rule) in mergeRules.enumerated() {
            let parts = rule.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let left = index[String(parts[0])], let right = index[String(parts[1])],
                let merged = index[String(parts[0]) + String(parts[1])]
            else {
                throw TokenizerError.badMerge(index: rank, rule: rule)
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(merged)) }
        }
        merges = table

        var stops: Set<TokenID> = []
        if let eos { stops.insert(eos) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let id = index[name], kinds[Int(id)] == .control { stops.insert(id) }
        }
        stopIDs = stops
    }

    /// The id of the token spelled exactly `text`, if any.
    public func id(of text: String) -> TokenID? { idForToken[text] }

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
        let candidates = specials.filter { parseSpecial || !$0.isControl }
        while i < utf8.count {
            if !candidates.isEmpty, let match = specialMatch(utf8, at: i, among: candidates) {
                if segmentStart < i { encodeSegment(utf8[segmentStart..<i], into: &output) }
                output.append(match.id)
                i += match.length
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < utf8.count { encodeSegment(utf8[segmentStart..<utf8.count], into: &output) }
        return output
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

    private func encodeSegment(_ bytes: ArraySlice<UInt8>, into output: inout [TokenID]) {
        var text = String(decoding: bytes, as: UTF8.self)
        if preTokenizer.normalizesToNFC, !bytes.allSatisfy({ $0 < 0x80 }) {
            text = text.precomposedStringWithCanonicalMapping
        }
        let scalars = Array(text.unicodeScalars)
        var pieceBytes: [UInt8] = []
        for piece in preTokenizer.split(scalars) {
            pieceBytes.removeAll(keepingCapacity: true)
            for scalar in scalars[piece] { pieceBytes.append(contentsOf: UTF8.encode(scalar)!) }
            mergePiece(pieceBytes, into: &output)
        }
    }

    /// Byte-level BPE over one piece: repeatedly merges the adjacent pair of lowest rank
    /// (leftmost first on ties), with a heap so long pieces stay O(n log n).
    private func mergePiece(_ bytes: [UInt8], into output: inout [TokenID]) {
        var ids = bytes.map { byteTokenIDs[Int($0)] }.filter { $0 >= 0 }
        if ids.count <= 1 {
            output.append(contentsOf: ids)
            return
        }
        let n = ids.count
        var next = Array(1...n)
        var previous = Array(-1..<(n - 1))
        var heap = Heap<UInt64>()
        func rankOfPair(_ left: Int) -> UInt64? {
            let right = next[left]
            guard right < n else { return nil }
            return merges[UInt64(UInt32(ids[left])) << 32 | UInt64(UInt32(ids[right]))]
        }
        func push(_ left: Int) {
            if let entry = rankOfPair(left) { heap.insert(entry & 0xFFFF_FFFF_0000_0000 | UInt64(left)) }
        }
        for left in 0..<(n - 1) { push(left) }
        while let top = heap.popMin() {
            let left = Int(top & 0xFFFF_FFFF)
            // Skip entries made stale by earlier merges.
            guard ids[left] >= 0, let entry = rankOfPair(left), entry >> 32 == top >> 32 else { continue }
            let right = next[left]
            ids[left] = TokenID(truncatingIfNeeded: entry & 0xFFFF_FFFF)
            ids[right] = -1
            next[left] = next[right]
            if next[right] < n { previous[next[right]] = left }
            if previous[left] >= 0 { push(previous[left]) }
            push(left)
        }
        for id in ids where id >= 0 { output.append(id) }
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
    /// SpeculateCore's `OutputText` streams text token by token without that.
    public func decode(_ ids: [TokenID], skipControl: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids where contains(id) {
            if skipControl, kinds[Int(id)] == .control { continue }
            bytes.append(contentsOf: tokenBytes[Int(id)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
