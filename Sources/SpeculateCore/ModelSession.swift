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
    /// Tokens other sessions are expected to add to this session's next forward (a session whose
    /// forwards are shared; 0 for one that runs alone).
    var concurrentTokens: Int { get }
    /// Of ``concurrentTokens``, those the others would send decoding plainly: one per decoding
    /// session, and the chunks of prompts being read (0 for a session that runs alone).
    var concurrentPlainTokens: Int { get }
    /// Tokens of a long input to evaluate per forward now (see ``append(_:chunk:)``).
    var promptChunk: Int { get }
}

extension ModelSession {
    /// A session that runs its forwards alone.
    public var concurrentTokens: Int { 0 }
    /// A session that runs its forwards alone.
    public var concurrentPlainTokens: Int { 0 }
    /// 64 tokens: large enough that the weights' reading is a small part of each forward.
    public var promptChunk: Int { 64 }
}

extension ModelSession {
    /// Evaluates `tokens` as a chain after the prefix, commits them, and returns the last logits.
    /// Long inputs go in chunks of `chunk` tokens (``promptChunk`` when nil, asked before each
    /// chunk): a draft model that `auto` left idle for thousands of steps catches up in one call,
    /// and one batch of that size grew the session's scratch memory by ~200 MB for the rest of
    /// the run (seen in the 8,000-token soak). Tokens that do not fit are refused before any is
    /// evaluated.
    public func append(_ tokens: [Token], chunk: Int? = nil) throws -> [Float] {
        guard !tokens.isEmpty else { return [] }
        guard committedLength + tokens.count <= capacity else {
            throw ModelSessionError.contextFull(needed: committedLength + tokens.count, capacity: capacity)
        }
        var start = 0
        var last: [Float] = []
        while start < tokens.count {
            let end = min(tokens.count, start + max(1, chunk ?? promptChunk))
            let part = Array(tokens[start..<end])
            let logits = try evaluate(
                tokens: part, parents: (0..<part.count).map { $0 - 1 },
                logitRows: end == tokens.count ? [part.count - 1] : [])
            try commit(Array(0..<part.count))
            if end == tokens.count { last = logits[0] }
            start = end
        }
        return last
    }
}

/// Errors of the session operations the core defines over ``ModelSession``.
public enum ModelSessionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The tokens do not fit in the session's context.
    case contextFull(needed: Int, capacity: Int)

    public var description: String {
        switch self {
        case .contextFull(let needed, let capacity): "the session holds \(capacity) tokens but \(needed) are needed"
        }
    }
}
