/// OpenAI's frequency and presence penalties: each token's logit is lowered by `frequency` times
/// the times it appears in the generated output so far plus `presence` if it appears at all
/// (the prompt does not count). Positive values discourage repetition, negative ones encourage it.
public struct RepetitionPenalty: LogitProcessor {
    /// Subtracted once per earlier occurrence.
    public var frequency: Float
    /// Subtracted once if the token occurred at all.
    public var presence: Float

    /// A penalty; 0 and 0 change nothing.
    public init(frequency: Float = 0, presence: Float = 0) {
        self.frequency = frequency
        self.presence = presence
    }

    public func process(_ logits: inout [Float], history: TokenHistory) {
        var counts: [Token: Int] = [:]
        for token in history.committed[history.promptLength...] { counts[token, default: 0] += 1 }
        for token in history.path { counts[token, default: 0] += 1 }
        for (token, count) in counts where token >= 0 && Int(token) < logits.count {
            logits[Int(token)] -= frequency * Float(count) + presence
        }
    }
}

/// Adds a fixed bias to chosen tokens' logits (OpenAI's `logit_bias`): -100 all but bans a token,
/// +100 all but forces it.
public struct LogitBias: LogitProcessor {
    /// The bias per token.
    public var biases: [Token: Float]

    /// A bias of `biases`.
    public init(_ biases: [Token: Float]) { self.biases = biases }

    public func process(_ logits: inout [Float], history: TokenHistory) {
        for (token, bias) in biases where token >= 0 && Int(token) < logits.count { logits[Int(token)] += bias }
    }
}
