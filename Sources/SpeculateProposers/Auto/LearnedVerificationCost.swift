/// The target's verification cost as the policy prices trees with it: seeded by the measured
/// ``VerificationCost`` curve (the start-up probe or the cache), then learned from the
/// verifications the decoder runs anyway.
///
/// A probe of a few seconds at start-up can be wrong by a third (measured on fresh hosts: t(8)
/// cached at 2.28 single steps where `bench --batch-costs` a minute later measured 1.72), and a
/// curve priced too steep makes `auto` prune the trees that would have paid. So every
/// verification's time is kept per tree size (a moving average), and the price of a size comes
/// from its own times once it has a few. A size never sent is priced by the seed curve times the
/// correction learned at the nearest smaller size that was sent (the nearest larger one below
/// the smallest), so that a curve found flatter than seeded lets the next larger trees be tried,
/// and their own times then take over.
///
/// The one-token time is the time of plain steps when there are enough of them; without them
/// (a draft that pays is used every step) it is inferred from the smallest size sent through the
/// seed curve's shape up to that size, where the seed's error is smallest.
package struct LearnedVerificationCost {
    /// The measured curve the prices start from.
    package let seed: VerificationCost
    /// Seconds per verification, by tokens verified (index 0 unused).
    private var seconds: [MovingRate]
    /// t(n)/t(1) for n = 0 ... ``AutoTuning/largestLearnedSize`` (index 0 unused).
    private var table: [Double]
    /// The correction at the largest learned size, for sizes beyond the table.
    private var correction = 1.0
    /// Whether plain steps (one token) have been timed often enough to price against.
    package var knowsOneTokenTime: Bool { seconds[1].samples >= AutoTuning.learnedSizeEvidence }
    /// The one-token forward time, seconds.
    package private(set) var stepSeconds: Double

    /// Whether sizes are learned; when not, only the one-token time follows the measurements and
    /// the seed's shape prices every tree.
    package let learns: Bool

    package init(seed: VerificationCost, learns: Bool = true) {
        self.seed = seed
        self.learns = learns
        stepSeconds = seed.oneTokenSeconds > 0 ? seed.oneTokenSeconds : AutoTuning.fallbackStepSeconds
        seconds = Array(repeating: MovingRate(), count: AutoTuning.largestLearnedSize + 1)
        table = (0...AutoTuning.largestLearnedSize).map { seed.relativeCost(max(1, $0)) }
    }

    /// t(n)/t(1): the cost of verifying `n` tokens in one forward, in one-token steps.
    package func relativeCost(_ n: Int) -> Double {
        if n < table.count { return table[max(1, n)] }
        return max(table[table.count - 1], seed.relativeCost(n) * correction)
    }

    /// Learns from one verification of `tokens` tokens (the root and the tree's nodes) that took
    /// `seconds`, everything between sending the tree and hearing the outcome included.
    package mutating func record(tokens: Int, seconds elapsed: Double) {
        guard tokens >= 1, elapsed > 0, elapsed.isFinite else { return }
        if learns, tokens < seconds.count {
            seconds[tokens].add(elapsed, weight: AutoTuning.stepTimeWeight)
        }
        if !refit() {
            // Nothing learned well enough yet: only the one-token time follows the measurements.
            let oneToken = elapsed / relativeCost(tokens)
            stepSeconds = (1 - AutoTuning.stepTimeWeight) * stepSeconds + AutoTuning.stepTimeWeight * oneToken
        }
    }

    /// Rebuilds the price table from the sizes with enough measurements; false when there are none.
    private mutating func refit() -> Bool {
        let learned = seconds.map { $0.samples >= AutoTuning.learnedSizeEvidence }
        guard let anchor = (1..<seconds.count).first(where: { learned[$0] }) else { return false }
        let oneToken = seconds[anchor].value / seed.relativeCost(anchor) * seed.relativeCost(1)
        guard oneToken > 0, oneToken.isFinite else { return false }
        stepSeconds = oneToken
        // Each learned size's correction to the seed; an unlearned size takes the nearest smaller
        // learned size's, or the nearest larger one's below the first.
        var corrections = Array(repeating: Double.nan, count: table.count)
        for size in 2..<table.count where learned[size] && seed.relativeCost(size) > 0 {
            corrections[size] = seconds[size].value / oneToken / seed.relativeCost(size)
        }
        var correction = corrections[2...].first { !$0.isNaN } ?? 1
        var previous = 1.0
        table[1] = 1
        for size in 2..<table.count {
            if !corrections[size].isNaN { correction = corrections[size] }
            // A larger tree never costs less than a smaller one: noise must not make one look free.
            previous = max(previous, seed.relativeCost(size) * correction)
            table[size] = previous
        }
        self.correction = correction
        return true
    }

    /// The prices in use, as a curve (for reports).
    package var curve: VerificationCost {
        let sizes = [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64]
        return VerificationCost(tokens: sizes, relative: sizes.map(relativeCost), oneTokenSeconds: stepSeconds)
    }
}
