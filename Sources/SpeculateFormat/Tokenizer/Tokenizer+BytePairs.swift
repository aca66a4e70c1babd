import HeapModule

/// Byte-level BPE: the merge table and the merging of one pre-tokenized piece.
extension Tokenizer {
    /// The merge rules (`"left right"`, by rank) as a table from a pair of ids to the rank and the
    /// merged id; the first rule for a pair wins.
    static func mergeTable(_ rules: [String], index: [[UInt8]: TokenID]) throws -> [UInt64: UInt64] {
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(rules.count)
        for (rank, rule) in rules.enumerated() {
            let parts = rule.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let left = index[Array(parts[0].utf8)], let right = index[Array(parts[1].utf8)],
                let merged = index[Array(parts[0].utf8) + Array(parts[1].utf8)]
            else {
                throw TokenizerError.badMerge(index: rank, rule: rule)
            }
            let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(merged)) }
        }
        return table
    }

    /// Byte-level BPE over text between special tokens.
    func encodeBytePairs(_ bytes: ArraySlice<UInt8>, preTokenizer: PreTokenizer, into output: inout [TokenID]) {
        var text = String(decoding: bytes, as: UTF8.self)
        if preTokenizer.normalizesToNFC, !bytes.allSatisfy({ $0 < 0x80 }) {
            text = text.precomposedStringWithCanonicalMapping
        }
        let scalars = Array(text.unicodeScalars)
        var pieceBytes: [UInt8] = []
        for piece in preTokenizer.split(scalars) {
            pieceBytes.removeAll(keepingCapacity: true)
            for scalar in scalars[piece] { pieceBytes.append(contentsOf: UTF8.encode(scalar)!) }
            if preTokenizer.takesWholeTokens, let whole = idForToken[Array(ByteLevel.string(of: pieceBytes).utf8)] {
                output.append(whole)
            } else {
                mergePiece(pieceBytes, into: &output)
            }
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
}
