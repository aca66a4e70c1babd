/// How text is cut into pieces before byte-level BPE runs on each piece.
///
/// GGUF names the scheme in `tokenizer.ggml.pre`. The splitting rules are the published
/// regular expressions of each model family, implemented as hand-written scanners over
/// Unicode scalars (faster than a regex engine and free of its differences).
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// Qwen2 / Qwen2.5: the cl100k-style expression with single digits and NFC normalization.
    case qwen2
    /// Llama 3 (`llama-bpe`): the same expression with runs of up to three digits, no
    /// normalization, and a piece that is itself a token taken whole (its tokenizer's
    /// `ignore_merges`, which tiktoken also does).
    case llama3
    /// SmolLM: every digit on its own, then the GPT-2 expression.
    case smollm
    /// GPT-2: the original expression.
    case gpt2

    /// The scheme named by `tokenizer.ggml.pre`, or nil when Speculate does not implement it.
    public init?(ggmlName: String) {
        switch ggmlName {
        case "qwen2": self = .qwen2
        case "llama-bpe": self = .llama3
        case "smollm": self = .smollm
        case "gpt2", "default": self = .gpt2
        default: return nil
        }
    }

    /// Whether the text is brought to Unicode NFC before splitting (the Hugging Face
    /// tokenizer of Qwen2 declares an NFC normalizer).
    public var normalizesToNFC: Bool { self == .qwen2 }

    /// Whether a piece that is a token of its own is taken whole, without merging.
    public var takesWholeTokens: Bool { self == .llama3 }

    /// Splits `scalars` into consecutive pieces, returned as ranges that cover it exactly.
    public func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        switch self {
        case .qwen2, .llama3:
            let digits = self == .qwen2 ? 1 : 3
            var i = 0
            while i < scalars.count {
                let end = Self.qwen2Piece(scalars, from: i, digits: digits)
                pieces.append(i..<end)
                i = end
            }
        case .gpt2:
            Self.gpt2Pieces(scalars, in: 0..<scalars.count, into: &pieces)
        case .smollm:
            var start = 0
            for i in scalars.indices where CharacterClass.isNumber(scalars[i]) {
                if start < i { Self.gpt2Pieces(scalars, in: start..<i, into: &pieces) }
                pieces.append(i..<i + 1)
                start = i + 1
            }
            if start < scalars.count { Self.gpt2Pieces(scalars, in: start..<scalars.count, into: &pieces) }
        }
        return pieces
    }

    /// Length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `i`, or 0.
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int, end: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == "'", i + 1 < end else { return 0 }
        func lower(_ k: Int) -> Unicode.Scalar? {
            guard k < end else { return nil }
            let c = s[k]
            if caseInsensitive, c.value >= 65, c.value <= 90 { return Unicode.Scalar(c.value + 32) }
            return c
        }
        switch lower(i + 1) {
        case "s", "t", "m", "d": return 2
        case "r": return lower(i + 2) == "e" ? 3 : 0
        case "v": return lower(i + 2) == "e" ? 3 : 0
        case "l": return lower(i + 2) == "l" ? 3 : 0
        default: return 0
        }
    }

    /// End of the whitespace run starting at `i`.
    private static func whitespaceEnd(_ s: [Unicode.Scalar], _ i: Int, end: Int) -> Int {
        var j = i
        while j < end, CharacterClass.isWhitespace(s[j]) { j += 1 }
        return j
    }

    /// Whitespace handling shared by both expressions: `\s+(?!\S)|\s+`.
    private static func trailingWhitespace(_ i: Int, runEnd: Int, end: Int) -> Int {
        if runEnd == end || runEnd - i == 1 { return runEnd }
        return runEnd - 1
    }

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    static func qwen2Piece(_ s: [Unicode.Scalar], from i: Int, digits: Int) -> Int {
        let n = s.count
        let c = s[i]
        let apostrophe = contraction(s, i, end: n, caseInsensitive: true)
        if apostrophe > 0 { return i + apostrophe }
        let isNewline = c == "\r" || c == "\n"
        if CharacterClass.isLetter(c)
            || (!isNewline && !CharacterClass.isNumber(c) && i + 1 < n && CharacterClass.isLetter(s[i + 1]))
        {
            var j = i + 1
            while j < n, CharacterClass.isLetter(s[j]) { j += 1 }
            return j
        }
        if CharacterClass.isNumber(c) {
            var j = i + 1
            while j < n, j - i < digits, CharacterClass.isNumber(s[j]) { j += 1 }
            return j
        }
        var j = c == " " ? i + 1 : i
        if j < n, CharacterClass.isSymbol(s[j]) {
            while j < n, CharacterClass.isSymbol(s[j]) { j += 1 }
            while j < n, s[j] == "\r" || s[j] == "\n" { j += 1 }
            return j
        }
        let runEnd = whitespaceEnd(s, i, end: n)
        if let lastNewline = (i..<runEnd).last(where: { s[$0] == "\r" || s[$0] == "\n" }) {
            return lastNewline + 1
        }
        return trailingWhitespace(i, runEnd: runEnd, end: n)
    }

    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    static func gpt2Pieces(_ s: [Unicode.Scalar], in range: Range<Int>, into pieces: inout [Range<Int>]) {
        var i = range.lowerBound
        let n = range.upperBound
        while i < n {
            let start = i
            let apostrophe = contraction(s, i, end: n, caseInsensitive: false)
            if apostrophe > 0 {
                i += apostrophe
            } else {
                var j = s[i] == " " ? i + 1 : i
                if j < n,
                    let run = [CharacterClass.isLetter, CharacterClass.isNumber, CharacterClass.isSymbol]
                        .first(where: { $0(s[j]) })
                {
                    while j < n, run(s[j]) { j += 1 }
                    i = j
                } else {
                    let runEnd = whitespaceEnd(s, i, end: n)
                    i = trailingWhitespace(i, runEnd: runEnd, end: n)
                }
            }
            pieces.append(start..<i)
        }
    }
}

/// The Unicode classes the split expressions use: `\p{L}`, `\p{N}`, `\s`.
enum CharacterClass {
    @inline(__always)
    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (c.value | 0x20) >= 97 && (c.value | 0x20) <= 122 }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    @inline(__always)
    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value >= 48 && c.value <= 57 }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    @inline(__always)
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value == 32 || (c.value >= 9 && c.value <= 13) }
        return c.properties.isWhitespace
    }

    /// `[^\s\p{L}\p{N}]`
    @inline(__always)
    static func isSymbol(_ c: Unicode.Scalar) -> Bool { !isWhitespace(c) && !isLetter(c) && !isNumber(c) }
}
