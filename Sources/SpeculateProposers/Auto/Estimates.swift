import Foundation

/// Success counts smoothed towards a prior (a Beta posterior's mean).
struct SmoothedRate {
    var successes = 0.0
    var trials = 0.0

    /// The rate, with `weight` pseudo-trials at `prior`.
    func estimate(prior: Double, weight: Double = AutoTuning.depthPriorWeight) -> Double {
        (successes + prior * weight) / (trials + weight)
    }

    mutating func add(_ success: Bool) {
        trials += 1
        if success { successes += 1 }
    }
}

/// An exponential moving average of a rate, with its sample count.
struct MovingRate {
    var value = 0.0
    var samples = 0

    mutating func add(_ rate: Double, weight: Double = AutoTuning.realizedRateWeight) {
        guard rate.isFinite else { return }
        value = samples == 0 ? rate : (1 - weight) * value + weight * rate
        samples += 1
    }
}

/// A costly member's steps judged against what the same steps would have given without it:
/// discounted sums of tokens and modelled seconds, both ways, over the steps that asked it.
/// Pairs share the text and the target's choices, so their ratio is far less noisy than
/// comparing separate steps with and without the member.
struct PairedRate {
    var tokens = 0.0, seconds = 0.0
    var baseTokens = 0.0, baseSeconds = 0.0
    var samples = 0
    var lastStep = 0
    /// Each step back weighs this much less (about 30 steps in view).
    static let keep = 0.97

    mutating func add(tokens: Double, seconds: Double, baseTokens: Double, baseSeconds: Double, step: Int) {
        let decay = pow(Self.keep, Double(max(0, step - lastStep)))
        self.tokens = self.tokens * decay + tokens
        self.seconds = self.seconds * decay + seconds
        self.baseTokens = self.baseTokens * decay + baseTokens
        self.baseSeconds = self.baseSeconds * decay + baseSeconds
        samples += 1
        lastStep = step
    }

    /// Tokens per second with the member over tokens per second without it (1 = no gain).
    var advantage: Double {
        guard seconds > 0, baseSeconds > 0, baseTokens > 0 else { return 0 }
        return (tokens / seconds) / (baseTokens / baseSeconds)
    }
}
