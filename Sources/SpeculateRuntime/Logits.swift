/// Logits for some rows of an evaluated batch.
public struct Logits: Sendable {
    /// The batch indices the rows belong to, in order.
    public let rows: [Int]
    /// Vocabulary size (values per row).
    public let vocabularySize: Int
    /// Row-major values.
    public let values: [Float]

    /// The logits of batch index `index` (which must be one of ``rows``).
    public func row(for index: Int) -> ArraySlice<Float> {
        guard let position = rows.firstIndex(of: index) else { return [] }
        return values[position * vocabularySize..<(position + 1) * vocabularySize]
    }
}

/// Which rows of a batch need logits.
public enum LogitRows: Sendable, Equatable {
    /// Every node (tree verification).
    case all
    /// Only the last node (prefill).
    case last
    /// The given batch indices.
    case selected([Int])
    /// None (a prefill chunk that is not the last).
    case none
}
