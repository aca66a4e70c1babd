import SpeculateCore

extension InferenceSession: ModelSession {
    /// The model's vocabulary size.
    public var vocabularySize: Int { model.config.vocabularySize }

    /// Evaluates a tree and returns the logits of `logitRows` (all nodes when nil).
    public func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]] {
        let rows = logitRows ?? Array(tokens.indices)
        let result = try evaluate(tokens: tokens, parents: parents, logits: .selected(rows))
        return rows.map { Array(result.row(for: $0)) }
    }
}
