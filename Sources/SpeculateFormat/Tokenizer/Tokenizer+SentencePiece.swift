import HeapModule

/// SentencePiece BPE, as llama.cpp runs it on GGUF vocabularies (`tokenizer.ggml.model =
/// "llama"`): no normalization beyond spaces becoming `▁` (U+2581); the text is cut into UTF-8
/// characters, and the adjacent pair whose concatenation is the token of highest score is merged
/// (the leftmost on ties) until no pair makes a token; a piece no token spells becomes its bytes'
/// `<0xNN>` tokens (byte fallback), or the unknown token where the vocabulary has none.
extension Tokenizer {
    /// `▁`, which stands for a space in SentencePiece tokens.
    static let spaceMarker: [UInt8] = [0xE2, 0x96, 0x81]

    /// The bytes a SentencePiece token stands for: `▁` as a space; a byte token as its byte.
    static func sentencePieceBytes(_ token: String) -> [UInt8] {
        if let byte = byteFallbackValue(token) { return [byte] }
        let utf8 = Array(token.utf8)
        var result: [UInt8] = []
        result.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if utf8[i] == 0xE2, i + 2 < utf8.count, utf8[i + 1] == 0x96, utf8[i + 2] == 0x81 {
                result.append(0x20)
                i += 3
            } else {
                result.append(utf8[i])
                i += 1
            }
        }
        return result
    }

    /// The byte of a byte-fallback token (`<0x0A>`), or nil.
    static func byteFallbackValue(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"),
            utf8[2] == UInt8(ascii: "x"), utf8[5] == UInt8(ascii: ">")
        else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }

    /// One candidate merge: two adjacent symbols whose text is a token of `score`.
    private struct Bigram: Comparable {
        var score: Float
        var left: Int
        var right: Int
        var length: Int

        /// The heap's maximum is the highest score, then the leftmost pair.
        static func < (a: Bigram, b: Bigram) -> Bool {
            a.score < b.score || (a.score == b.score && a.left > b.left)
        }
    }

    /// SentencePiece BPE over text between special tokens; `spacePrefix` puts a space before it.
    func encodeSentencePiece(_ bytes: ArraySlice<UInt8>, spacePrefix: Bool, into output: inout [TokenID]) {
        var text: [UInt8] = spacePrefix ? Self.spaceMarker : []
        text.reserveCapacity(bytes.count + bytes.count / 4 + 3)
        for byte in bytes {
            if byte == 0x20 { text += Self.spaceMarker } else { text.append(byte) }
        }
        guard !text.isEmpty else { return }
        // Symbols: UTF-8 characters, as a linked list whose merged entries grow to the right.
        var starts: [Int] = []
        var lengths: [Int] = []
        var offset = 0
        while offset < text.count {
            let lead = text[offset]
            let length = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            starts.append(offset)
            lengths.append(min(length, text.count - offset))
            offset += lengths[lengths.count - 1]
        }
        let count = starts.count
        var previous = Array(-1..<(count - 1))
        var next = Array(1...count)
        next[count - 1] = -1
        var heap = Heap<Bigram>()
        func token(_ start: Int, _ length: Int) -> TokenID? {
            idForToken[Array(text[start..<start + length])]
        }
        func consider(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let length = lengths[left] + lengths[right]
            guard let id = token(starts[left], length) else { return }
            heap.insert(Bigram(score: scores[Int(id)], left: left, right: right, length: length))
        }
        for index in 1..<count { consider(index - 1, index) }
        while let best = heap.popMax() {
            // A pair one of whose symbols has merged since is stale.
            guard lengths[best.left] > 0, lengths[best.right] > 0,
                lengths[best.left] + lengths[best.right] == best.length
            else { continue }
            lengths[best.left] = best.length
            lengths[best.right] = 0
            next[best.left] = next[best.right]
            if next[best.right] >= 0 { previous[next[best.right]] = best.left }
            consider(previous[best.left], best.left)
            consider(best.left, next[best.left])
        }
        var index = 0
        while index >= 0 {
            if let id = token(starts[index], lengths[index]) {
                output.append(id)
            } else {
                for byte in text[starts[index]..<starts[index] + lengths[index]] {
                    let id = byteTokenIDs[Int(byte)]
                    if id >= 0 { output.append(id) }
                }
            }
            index = next[index]
        }
    }
}
