/// A piece of generated text and the token it belongs to.
public struct TextPiece: Sendable, Equatable {
    /// The text (never empty).
    public var text: String
    /// The index, among the generated tokens, of the token whose bytes complete this text (a
    /// character split across tokens belongs to the token that completes it).
    public var token: Int
    /// Who drafted that token (under `auto`, the member); empty when the target produced it.
    public var drafters: [String]

    /// A piece of `text` completed by generated token number `token`.
    public init(text: String, token: Int, drafters: [String] = []) {
        self.text = text
        self.token = token
        self.drafters = drafters
    }
}

/// The one incremental detokenizer and stop-string matcher: the decoder's events, the command
/// line and the server all get their text from it.
///
/// Each token's bytes are appended once; text is released in whole UTF-8 characters (a character
/// split across tokens waits for its last byte), and stop strings follow OpenAI's semantics: the
/// text ends before the first stop string, wherever it starts, and text that may still become a
/// stop string is held back until it cannot. Work per token is proportional to its bytes and the
/// stop strings' lengths, never to the output so far (re-decoding the whole output every step
/// made long generations quadratic).
public struct OutputText: Sendable {
    private let spell: @Sendable (Token) -> [UInt8]
    private let stops: [[UInt8]]
    /// The output's bytes, and the byte offset where each token's bytes end.
    private var bytes: [UInt8] = []
    private var tokenEnds: [Int] = []
    /// Bytes already released as text.
    private var released = 0
    /// Where the first stop string begins, once one is found: nothing from there on is released.
    private var stopStart: Int?

    /// A text for tokens spelled by `spell` (a token's UTF-8 bytes), ending at any of
    /// `stopStrings` (empty strings are ignored).
    public init(spell: @escaping @Sendable (Token) -> [UInt8], stopStrings: [String] = []) {
        self.spell = spell
        stops = stopStrings.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Tokens appended so far.
    public var tokenCount: Int { tokenEnds.count }

    /// Whether a stop string was found (no more text will be released).
    public var stopped: Bool { stopStart != nil }

    /// Appends tokens. Returns the index (among all tokens so far) of the token that completes
    /// the first stop string, when one of these tokens does; a match that began in earlier
    /// tokens' bytes is found too. The result is the same however the tokens are grouped into
    /// calls (a speculative step appends several, plain decoding one): the first token that
    /// completes any stop string ends the text, and among the matches it completes the one that
    /// starts first wins. Tokens after a stop are ignored.
    public mutating func append(_ tokens: [Token]) -> Int? {
        guard !stopped else { return nil }
        let searchFrom = bytes.count
        for token in tokens {
            bytes.append(contentsOf: spell(token))
            tokenEnds.append(bytes.count)
        }
        var first: (token: Int, start: Int)?
        for stop in stops {
            // A stop's earliest start is also its earliest end.
            var start = max(released, searchFrom - (stop.count - 1))
            while start + stop.count <= bytes.count {
                if bytes[start] == stop[0], bytes[start..<start + stop.count].elementsEqual(stop) {
                    let token = completingToken(end: start + stop.count, among: tokens.count)
                    if first.map({ (token, start) < ($0.token, $0.start) }) ?? true { first = (token, start) }
                    break
                }
                start += 1
            }
        }
        guard let match = first else { return nil }
        stopStart = match.start
        tokenEnds.removeLast(tokenEnds.count - match.token - 1)
        return match.token
    }

    /// The first of the last `count` tokens whose bytes reach `end`.
    private func completingToken(end: Int, among count: Int) -> Int {
        var low = tokenEnds.count - count
        var high = tokenEnds.count - 1
        while low < high {
            let middle = (low + high) / 2
            if tokenEnds[middle] >= end { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The text that can be released now, one piece per token it belongs to. With `final`, the
    /// generation has ended: held-back text is released too (a character that never completed
    /// becomes U+FFFD). `drafters(i)` names who drafted generated token `i`.
    public mutating func takePieces(final: Bool = false, drafters: (Int) -> [String] = { _ in [] }) -> [TextPiece] {
        let end: Int
        if let stopStart {
            end = max(released, stopStart)
        } else if final {
            end = bytes.count
        } else {
            let open = bytes.count - heldForStops()
            end = released + Self.completePrefixLength(bytes[released..<max(released, open)])
        }
        guard end > released else { return [] }
        defer { released = end }
        // Cut at token boundaries, each moved back to the start of the character it splits, so
        // that a character goes with the token that completes it.
        var pieces: [TextPiece] = []
        var start = released
        var token = tokenIndex(containing: released)
        while start < end {
            var cut = token < tokenEnds.count ? min(end, tokenEnds[token]) : end
            if cut < end {
                while cut > start, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
            }
            if cut > start {
                pieces.append(
                    TextPiece(
                        text: String(decoding: bytes[start..<cut], as: UTF8.self), token: token,
                        drafters: drafters(token)))
                start = cut
            }
            token += 1
        }
        return pieces
    }

    /// The index of the token whose bytes include byte `offset`.
    private func tokenIndex(containing offset: Int) -> Int {
        var low = 0
        var high = tokenEnds.count
        while low < high {
            let middle = (low + high) / 2
            if tokenEnds[middle] > offset { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// Bytes at the end that are the beginning of some stop string (held back until they are not).
    private func heldForStops() -> Int {
        var hold = 0
        let open = bytes.count - released
        for stop in stops {
            for length in stride(from: min(stop.count - 1, open), to: hold, by: -1)
            where bytes[(bytes.count - length)...].elementsEqual(stop.prefix(length)) {
                hold = length
                break
            }
        }
        return hold
    }

    /// Length of the longest prefix that does not end inside a character that may still complete.
    static func completePrefixLength(_ bytes: ArraySlice<UInt8>) -> Int {
        let n = bytes.count
        let base = bytes.startIndex
        var start = n - 1
        while start >= 0, start >= n - 4, bytes[base + start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0, start >= n - 4 else { return n }  // only continuation bytes: never valid
        let expected: Int
        switch bytes[base + start] {
        case 0xC2...0xDF: expected = 2
        case 0xE0...0xEF: expected = 3
        case 0xF0...0xF4: expected = 4
        default: return n  // ASCII or an invalid lead byte: nothing to wait for
        }
        return n - start < expected ? start : n
    }
}
