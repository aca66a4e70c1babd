/// Turns tokens into text one at a time without ever emitting half a UTF-8 character.
///
/// A byte-level token can end in the middle of a multi-byte character (an emoji is often two
/// or three tokens). The decoder holds such a tail back until the character completes, and
/// replaces only sequences that can never become valid with U+FFFD.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private var pending: [UInt8] = []
    private let skipControl: Bool

    /// A decoder for `tokenizer`'s tokens; `skipControl` drops control tokens such as `<|im_end|>`.
    public init(tokenizer: Tokenizer, skipControl: Bool = false) {
        self.tokenizer = tokenizer
        self.skipControl = skipControl
    }

    /// Adds one token and returns the text that is now complete (possibly empty).
    public mutating func append(_ id: TokenID) -> String {
        if skipControl, tokenizer.contains(id), tokenizer.kinds[Int(id)] == .control { return "" }
        pending.append(contentsOf: tokenizer.bytes(of: id))
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Returns whatever is held back (an unfinished character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a character that may still complete.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // Look back at most 3 bytes for the start of a multi-byte sequence.
        var start = n - 1
        while start >= 0, start >= n - 4 {
            let byte = bytes[start]
            if byte & 0xC0 != 0x80 { break }  // not a continuation byte
            start -= 1
        }
        guard start >= 0, start >= n - 4 else { return n }  // only continuation bytes: invalid, flush
        let lead = bytes[start]
        let expected: Int
        switch lead {
        case 0xC2...0xDF: expected = 2
        case 0xE0...0xEF: expected = 3
        case 0xF0...0xF4: expected = 4
        default: return n  // ASCII or an invalid lead byte: nothing to wait for
        }
        let have = n - start
        return have < expected ? start : n
    }
}
