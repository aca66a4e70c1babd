/// A token id of the target's vocabulary.
public typealias Token = Int32

/// The model abstraction the verifier drives and the draft-model proposer reuses: a decoding
/// context with a KV cache that can evaluate a token tree in one forward.
///
/// Semantics: ``evaluate(tokens:parents:logitRows:)`` evaluates a batch of nodes after the
/// committed prefix; `parents[i]` is an earlier batch index or -1 (the node follows the prefix
/// directly). Node `i` attends to the prefix and its own ancestors only, at position
/// `committedLength + depth(i)`. ``commit(_:)`` keeps one root-to-node path of the last batch;
/// ``rollback(to:)`` truncates the committed prefix.
public protocol ModelSession: AnyObject, Sendable {
    /// Size of the output distribution.
    var vocabularySize: Int { get }
    /// Tokens in the committed prefix.
    var committedLength: Int { get }
    /// Most tokens the session holds (committed plus one pending batch).
    var capacity: Int { get }
    /// Evaluates the tree and returns logits for `logitRows` (all nodes when nil), in that order.
    func evaluate(tokens: [Token], parents: [Int], logitRows: [Int]?) throws -> [[Float]]
    /// Keeps the path `path` (batch indices from a root down) of the last batch.
    func commit(_ path: [Int]) throws
    /// Truncates the committed prefix to `length` tokens.
    func rollback(to length: Int) throws
}

extension ModelSession {
    /// Evaluates `tokens` as a chain after the prefix, commits them, and returns the last logits.
    public func append(_ tokens: [Token]) throws -> [Float] {
        guard !tokens.isEmpty else { return [] }
        let logits = try evaluate(tokens: tokens, parents: (0..<tokens.count).map { $0 - 1 }, logitRows: [tokens.count - 1])
        try commit(Array(0..<tokens.count))
        return logits[0]
    }
}
