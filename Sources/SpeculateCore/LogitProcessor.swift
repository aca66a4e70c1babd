/// The tokens that come before one position the target scores: the committed context (prompt
/// and output so far) followed by the drafted path from the step's root to that position.
public struct TokenHistory: Sendable {
    /// The prompt and the tokens generated before this step.
    public let committed: [Token]
    /// How many of `committed` are the prompt.
    public let promptLength: Int
    /// The drafted tokens between the committed context and this position (empty at the root).
    public let path: [Token]

    /// A history of `committed` (its first `promptLength` tokens the prompt) and then `path`.
    public init(committed: [Token], promptLength: Int, path: [Token] = []) {
        self.committed = committed
        self.promptLength = promptLength
        self.path = path
    }

    /// The generated tokens up to this position: the output so far, then the drafted path.
    public var generated: [Token] { Array(committed[promptLength...]) + path }
}

/// Changes the target's scores at one position before verification decides there: repetition
/// penalties, logit biases, grammar masks, or a capture of the log-probabilities.
///
/// Processors apply to the target's logits at the root and at every drafted node, each along that
/// node's own path (``TokenHistory``), before any verifier reads them. Verification then keeps
/// the *processed* distribution: greedy speculative output equals greedy plain output with the
/// same processors, and stochastic verification samples exactly what plain sampling from the
/// processed logits would. A processor must be a function of the history (no state that
/// depends on the order positions are visited in: sibling nodes are processed too).
public protocol LogitProcessor: Sendable {
    /// Adjusts `logits`, the target's scores for the token that follows `history`.
    func process(_ logits: inout [Float], history: TokenHistory)

    /// Whether `token` may follow `history` at all (a grammar's verdict); false means `process`
    /// would give it no chance there. Greedy decoding cuts drafted nodes this refuses before the
    /// target sees them (stochastic verification keeps them: dropping a draft because of its
    /// value would change the residual distributions and so the output's).
    func admits(_ token: Token, history: TokenHistory) -> Bool

    /// Whether ``admits(_:history:)`` ever says no (only then are trees cut).
    var restrictsTokens: Bool { get }
}

extension LogitProcessor {
    public func admits(_ token: Token, history: TokenHistory) -> Bool { true }
    public var restrictsTokens: Bool { false }
}

/// Applies processors to one verification step's logits.
struct LogitProcessing {
    let processors: [any LogitProcessor]

    var isEmpty: Bool { processors.isEmpty }

    /// `tree` without the drafted nodes a processor refuses along their path (and their subtrees).
    func admitted(_ tree: TokenTree, committed: [Token], promptLength: Int) -> TokenTree {
        let restricting = processors.filter(\.restrictsTokens)
        guard !restricting.isEmpty, tree.count > 0 else { return tree }
        var paths: [[Token]] = []
        paths.reserveCapacity(tree.count)
        for node in tree.nodes { paths.append((node.parent < 0 ? [] : paths[node.parent]) + [node.token]) }
        return tree.pruned { index in
            let history = TokenHistory(
                committed: committed, promptLength: promptLength, path: Array(paths[index].dropLast()))
            return restricting.allSatisfy { $0.admits(tree.nodes[index].token, history: history) }
        }
    }

    /// Processes the root's logits (after `committed`) and every node's (after its path).
    func apply(root: inout [Float], nodes: inout [[Float]], tree: TokenTree, committed: [Token], promptLength: Int) {
        guard !processors.isEmpty else { return }
        let rootHistory = TokenHistory(committed: committed, promptLength: promptLength)
        for processor in processors { processor.process(&root, history: rootHistory) }
        var paths: [[Token]] = []
        paths.reserveCapacity(tree.count)
        for (index, node) in tree.nodes.enumerated() {
            paths.append((node.parent < 0 ? [] : paths[node.parent]) + [node.token])
            let history = TokenHistory(committed: committed, promptLength: promptLength, path: paths[index])
            for processor in processors { processor.process(&nodes[index], history: history) }
        }
    }
}
