/// The generated text, kept incrementally: each token's bytes are appended once, new text is
/// decoded from the bytes not yet emitted, and stop strings are searched only where a new token
/// can complete them. Work per step is proportional to that step's tokens, not to the output so
/// far (re-decoding the whole output every step made an 8,000-token generation quadratic).
struct OutputText {
    private let spell: @Sendable (Token) -> [UInt8]
    private let stops: [[UInt8]]
    /// The output's bytes, and the byte offset where each token's bytes end.
    private(set) var bytes: [UInt8] = []
    private var tokenEnds: [Int] = []
    /// Bytes already handed out as text.
    private var emitted = 0

    init(spell: @escaping @Sendable (Token) -> [UInt8], stopStrings: [String]) {
        self.spell = spell
        stops = stopStrings.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    var tokenCount: Int { tokenEnds.count }

    /// Appends tokens; returns the index (in all tokens so far) of the first token that completes
    /// a stop string, if one does. Matches that began in earlier tokens' bytes are found too.
    mutating func append(_ tokens: [Token]) -> Int? {
        let searchFrom = bytes.count
        for token in tokens {
            bytes.append(contentsOf: spell(token))
            tokenEnds.append(bytes.count)
        }
        var earliestEnd: Int?
        for stop in stops {
            var start = max(0, searchFrom - (stop.count - 1))
            while start + stop.count <= bytes.count {
                if bytes[start] == stop[0], bytes[start..<start + stop.count].elementsEqual(stop) {
                    earliestEnd = min(earliestEnd ?? .max, start + stop.count)
                    break
                }
                start += 1
            }
        }
        guard let end = earliestEnd else { return nil }
        // The first token whose bytes reach the end of the match.
        var low = tokenEnds.count - tokens.count, high = tokenEnds.count - 1
        while low < high {
            let middle = (low + high) / 2
            if tokenEnds[middle] >= end { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// Drops the tokens after the first `count` (never below what was already emitted as text).
    mutating func truncate(toTokens count: Int) {
        guard count < tokenEnds.count else { return }
        let end = count == 0 ? 0 : tokenEnds[count - 1]
        tokenEnds.removeLast(tokenEnds.count - count)
        bytes.removeLast(bytes.count - max(end, emitted))
    }

    /// The text completed since the last call: whole UTF-8 characters only (a character split
    /// across tokens is held back until it is whole; bytes that can never form one become U+FFFD).
    mutating func takeText() -> String {
        let complete = Self.completePrefixLength(bytes[emitted...])
        guard complete > 0 else { return "" }
        defer { emitted += complete }
        return String(decoding: bytes[emitted..<emitted + complete], as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a character that may still complete.
    static func completePrefixLength(_ bytes: ArraySlice<UInt8>) -> Int {
        let n = bytes.count, base = bytes.startIndex
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
