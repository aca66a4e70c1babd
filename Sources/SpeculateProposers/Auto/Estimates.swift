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
///
/// The discount is mostly per pair, not per step: while the member is paused no pairs arrive,
/// and the evidence it earned must not vanish with the pause. (Discounted by 0.97 per step, a
/// pause of a few hundred steps left the next exploration burst's two pairs to decide alone; on
/// chat, where one step of the 0.5B draft gains 0 to 3 tokens, that was a coin flip, and each
/// lost flip doubled the pause: `auto` went without the draft on 27% of chat-12's steps and ran
/// at 1.27x against the chain's 1.31x.)
struct PairedRate {
    var tokens = 0.0, seconds = 0.0
    var baseTokens = 0.0, baseSeconds = 0.0
    var samples = 0
    var lastStep = 0

    /// Adds the pair of step `step`: older pairs weigh ``AutoTuning/pairedEvidenceKeep`` less, and
    /// a little less again for every step without a pair (``AutoTuning/pausedStepKeep``), so that
    /// after a long pause a few bursts can overturn what was learned before it.
    mutating func add(tokens: Double, seconds: Double, baseTokens: Double, baseSeconds: Double, step: Int) {
        let keep =
            AutoTuning.pairedEvidenceKeep * pow(AutoTuning.pausedStepKeep, Double(max(0, step - lastStep - 1)))
        lastStep = step
        self.tokens = self.tokens * keep + tokens
        self.seconds = self.seconds * keep + seconds
        self.baseTokens = self.baseTokens * keep + baseTokens
        self.baseSeconds = self.baseSeconds * keep + baseSeconds
        samples += 1
    }

    /// Tokens per second with the member over tokens per second without it (1 = no gain).
    var advantage: Double {
        guard seconds > 0, baseSeconds > 0, baseTokens > 0 else { return 0 }
        return (tokens / seconds) / (baseTokens / baseSeconds)
    }
}
