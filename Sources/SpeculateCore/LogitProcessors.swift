import Foundation

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

/// llama.cpp's `repeat_penalty` over its `repeat_last_n` window: every distinct token among the
/// last `window` tokens of the prompt and output (llama-server counts the prompt too) has its
/// logit divided by `penalty` when positive and multiplied by it when not. 1 changes nothing.
public struct WindowRepeatPenalty: LogitProcessor {
    /// The divisor (above 1 discourages repeating).
    public var penalty: Float
    /// How many of the latest tokens count (0 = none).
    public var window: Int

    /// A penalty of `penalty` over the last `window` tokens.
    public init(penalty: Float, window: Int = 64) {
        self.penalty = penalty
        self.window = window
    }

    public func process(_ logits: inout [Float], history: TokenHistory) {
        guard window > 0, penalty != 1 else { return }
        let fromPath = min(window, history.path.count)
        let fromCommitted = min(window - fromPath, history.committed.count)
        var seen = Set<Token>()
        for token in history.committed.suffix(fromCommitted) { seen.insert(token) }
        for token in history.path.suffix(fromPath) { seen.insert(token) }
        for token in seen where token >= 0 && Int(token) < logits.count {
            let logit = logits[Int(token)]
            logits[Int(token)] = logit <= 0 ? logit * penalty : logit / penalty
        }
    }
}

/// Min-p filtering (llama.cpp's `min_p`): tokens whose probability is below `fraction` of the
/// most likely token's are removed, judged on the logits as they stand (before temperature, as
/// llama.cpp's sampler chain applies it). Greedy decoding is unchanged by it.
public struct MinP: LogitProcessor {
    /// The fraction of the top probability a token needs (0 keeps every token).
    public var fraction: Float

    /// A filter keeping tokens within `fraction` of the top probability.
    public init(_ fraction: Float) { self.fraction = fraction }

    public func process(_ logits: inout [Float], history: TokenHistory) {
        guard fraction > 0, let top = logits.max(), top.isFinite else { return }
        let floor = top + log(fraction)
        for index in logits.indices where logits[index] < floor { logits[index] = -.infinity }
    }
}

/// The common penalty and filter settings (the server's request fields, the command line's
/// flags) and the processors they make: none for the values that leave each off.
public struct LogitShaping: Sendable, Equatable {
    /// OpenAI's frequency and presence penalties (0 = off).
    public var frequencyPenalty: Float = 0
    public var presencePenalty: Float = 0
    /// llama.cpp's repeat penalty (1 = off) over the last `repeatWindow` tokens (0 = off).
    public var repeatPenalty: Float = 1
    public var repeatWindow = 64
    /// The min-p fraction (0 = off).
    public var minP: Float = 0

    /// Settings that change nothing.
    public init() {}

    /// The processors these settings ask for, in the order they apply.
    public var processors: [any LogitProcessor] {
        var processors: [any LogitProcessor] = []
        if frequencyPenalty != 0 || presencePenalty != 0 {
            processors.append(RepetitionPenalty(frequency: frequencyPenalty, presence: presencePenalty))
        }
        if repeatPenalty != 1, repeatWindow > 0 {
            processors.append(WindowRepeatPenalty(penalty: repeatPenalty, window: repeatWindow))
        }
        if minP > 0 { processors.append(MinP(minP)) }
        return processors
    }
}
