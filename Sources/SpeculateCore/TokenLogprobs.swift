import Foundation

/// The target's log-probability of an emitted token and of its most likely alternatives, from
/// the distribution that chose it: the target's logits at that position after the logit
/// processors (penalties, biases), at temperature 1. The kernels are batch-invariant, so a token
/// verified inside a tree has exactly the logits plain decoding gives it: the figures are the
/// same with and without speculation.
public struct TokenLogprobs: Sendable, Equatable {
    /// The emitted token's natural-log probability.
    public let logprob: Float
    /// The most likely tokens there, most likely first, with their log-probabilities.
    public let top: [Alternative]

    /// One alternative: a token and its log-probability.
    public struct Alternative: Sendable, Equatable {
        /// The token.
        public let token: Token
        /// Its natural-log probability.
        public let logprob: Float
    }

    /// The figures of `token` under `logits`, with the `count` most likely alternatives.
    public init(token: Token, logits: [Float], count: Int) {
        let top = logits.max() ?? 0
        var sum = 0.0
        for value in logits where value > -.infinity { sum += exp(Double(value - top)) }
        let normalizer = top + Float(log(sum))
        let index = Int(token)
        logprob = logits.indices.contains(index) ? logits[index] - normalizer : -.infinity
        guard count > 0 else {
            self.top = []
            return
        }
        // The `count` largest by a bounded insertion: count is at most a few dozen.
        var best: [(index: Int, value: Float)] = []
        best.reserveCapacity(count + 1)
        for (i, value) in logits.enumerated() where best.count < count || value > best[best.count - 1].value {
            let at = best.firstIndex { value > $0.value } ?? best.count
            best.insert((i, value), at: at)
            if best.count > count { best.removeLast() }
        }
        self.top = best.map { Alternative(token: Token($0.index), logprob: $0.value - normalizer) }
    }
}
