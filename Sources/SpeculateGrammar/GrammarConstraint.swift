import Foundation
import SpeculateCore

/// Keeps generation inside a ``JSONGrammar``: at every position the target scores (the root and
/// each drafted node, along its own path) tokens whose bytes would leave the grammar get no
/// chance, end tokens only where the document is complete. Speculation stays exact: greedy
/// output equals constrained plain decoding's, sampling follows the masked distribution, and
/// greedy decoding cuts refused drafts before verifying them (``admits(_:history:)``).
///
/// Put it before filters that judge the scores as they stand (min-p): after them it could find
/// every token it allows already removed.
///
/// Masks are cached by matcher state (inside a long string every position has the same one),
/// so a mask is computed once per distinct place in the document; ``statistics`` reports the cost.
public final class GrammarConstraint: LogitProcessor, @unchecked Sendable {
    /// The grammar.
    public let grammar: JSONGrammar
    /// The vocabulary it masks.
    public let vocabulary: GrammarVocabulary

    /// Mask figures: how many were computed and reused, and the seconds spent computing them.
    public struct Statistics: Sendable {
        /// Masks computed (cache misses).
        public var computed = 0
        /// Masks found in the cache.
        public var reused = 0
        /// Seconds spent computing masks.
        public var seconds = 0.0
    }

    // Guarded by `lock` (NSLock, which ThreadSanitizer sees).
    private let lock = NSLock()
    private var masks: [JSONMatcher: [UInt64]] = [:]
    private var committed: (tokens: [Token], state: JSONMatcher)
    private var figures = Statistics()
    /// Most masks kept (one is a bit per token: ~19 KB for a 151,936-token vocabulary).
    private let capacity = 256

    /// A constraint of `grammar` over `vocabulary`.
    public init(grammar: JSONGrammar, vocabulary: GrammarVocabulary) {
        self.grammar = grammar
        self.vocabulary = vocabulary
        committed = ([], JSONMatcher(grammar))
    }

    /// Masks computed and reused so far, and their cost.
    public var statistics: Statistics { lock.withLock { figures } }

    /// A grammar refuses tokens: greedy decoding cuts drafts it refuses.
    public var restrictsTokens: Bool { true }

    /// Gives every token the grammar refuses after `history` no chance (end tokens are refused
    /// until the document is complete, and then only they are allowed).
    public func process(_ logits: inout [Float], history: TokenHistory) {
        let state = lock.withLock { self.state(after: history) }
        // A path the grammar already refused is never taken (its parent's mask forbids it):
        // its scores stay as they are.
        guard !state.failed else { return }
        let mask = lock.withLock { self.mask(after: state) }
        logits.withUnsafeMutableBufferPointer { scores in
            for index in 0..<min(scores.count, vocabulary.size) where mask[index >> 6] >> UInt64(index & 63) & 1 == 0 {
                scores[index] = -.infinity
            }
            // Rows the vocabulary does not spell (padding of the output head) are never text.
            for index in min(scores.count, vocabulary.size)..<scores.count { scores[index] = -.infinity }
        }
    }

    /// Whether `token` keeps the text after `history` inside the grammar.
    public func admits(_ token: Token, history: TokenHistory) -> Bool {
        var state = lock.withLock { self.state(after: history) }
        return advance(&state, by: token)
    }

    /// Whether `token` keeps `state` inside the grammar (an end token: where it is complete).
    private func advance(_ state: inout JSONMatcher, by token: Token) -> Bool {
        if vocabulary.endTokens.contains(token) {
            let complete = state.isComplete
            state.feed(0, grammar: grammar)  // nothing follows an end token
            return complete
        }
        guard let bytes = vocabulary.bytes(of: token) else {
            state.feed(0, grammar: grammar)
            return false
        }
        return state.feed(bytes, grammar: grammar)
    }

    /// The state after `history`'s generated tokens, from the cached state of the committed ones.
    private func state(after history: TokenHistory) -> JSONMatcher {
        let generated = history.committed[history.promptLength...]
        if generated.count < committed.tokens.count || !generated.starts(with: committed.tokens) {
            committed = ([], JSONMatcher(grammar))
        }
        var state = committed.state
        for token in generated.dropFirst(committed.tokens.count) { advance(&state, by: token) }
        committed = (Array(generated), state)
        for token in history.path { advance(&state, by: token) }
        return state
    }

    private func mask(after state: JSONMatcher) -> [UInt64] {
        if let mask = masks[state] {
            figures.reused += 1
            return mask
        }
        let start = ContinuousClock.now
        let mask = vocabulary.mask(after: state, grammar: grammar)
        let elapsed = ContinuousClock.now - start
        figures.computed += 1
        figures.seconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        if masks.count >= capacity { masks.removeAll(keepingCapacity: true) }
        masks[state] = mask
        return mask
    }
}
