import Foundation

/// The target's verification cost as the policy prices trees with it: seeded by the measured
/// ``VerificationCost`` curve (the start-up probe or the cache), then learned from the
/// verifications the decoder runs anyway.
///
/// A probe of a few seconds at start-up can be wrong by a third (measured on fresh hosts: t(8)
/// cached at 2.28 single steps where `bench --batch-costs` a minute later measured 1.72), and a
/// curve priced too steep makes `auto` prune the trees that would have paid. Such a curve keeps
/// its shape but not its slope (there: 0.55–0.65 of the probe's extra cost at every size from 4
/// to 16). So every verification's time is kept per tree size (a moving average), and the seed's
/// shape is fitted to the sizes sent: `t(n) = t(1) · (1 + scale · (seed(n) − 1))`, `scale` and
/// `t(1)` by least squares on the logarithms, each size weighted by how often it was timed. The
/// fit uses tree sizes only, which follow each other within a few steps, so the host's drift
/// (±10% between minutes here) cancels out of their ratios; plain steps are rare while a draft
/// pays, and comparing them with trees timed minutes apart measured the drift instead. Sizes
/// sent a few times each, at least two of them, are enough; until then the seed's shape prices
/// every tree and only the one-token time follows the measurements. A fitted slope near the
/// seed's (``AutoTuning/trustedScaleBand``) keeps the seed's: the fit corrects probes that are
/// clearly off.
///
/// The fit gives the level; the sizes timed give the shape around it. Each size timed is priced
/// at its own time over the fitted one-token time, and sizes between them follow the seed's
/// extra cost scaled as their timed neighbours' is (linearly in between, as the nearest one's
/// beyond). In place, a tree's cost steps where the probe's is smooth (HumanEval-10: 9 tokens
/// 2.1–2.2 one-token steps, 10 tokens ~2.55, 11 ~2.8, where the probe interpolated ~0.18 per
/// token), and priced by the seed's shape, `auto` added nodes to the 0.5B draft's full chains
/// that cost more than they brought.
package struct LearnedVerificationCost {
    /// The measured curve the prices start from.
    package let seed: VerificationCost
    /// Whether the shape is learned; when not, only the one-token time follows the measurements.
    package let learns: Bool
    /// Seconds per verification, by tokens verified (index 0 unused), and when each size was
    /// last timed (in verifications recorded).
    private var seconds: [MovingRate]
    private var lastTimed: [Int]
    private var recorded = 0
    /// The seed slope's scale in use.
    package private(set) var scale = 1.0
    /// The one-token forward time, seconds.
    package private(set) var stepSeconds: Double
    /// Whether the last verification recorded left enough sizes timed to fit the slope and price
    /// the sizes as timed.
    package private(set) var isFitted = false
    /// Prices by size (index 0 unused) once the fit has sizes to go on, and the scale of the seed's
    /// extra cost beyond the largest size timed.
    private var priced: [Double] = []
    private var factorBeyond = 1.0

    package init(seed: VerificationCost, learns: Bool = true) {
        self.seed = seed
        self.learns = learns
        stepSeconds = seed.oneTokenSeconds > 0 ? seed.oneTokenSeconds : AutoTuning.fallbackStepSeconds
        seconds = Array(repeating: MovingRate(), count: AutoTuning.largestLearnedSize + 1)
        lastTimed = Array(repeating: 0, count: AutoTuning.largestLearnedSize + 1)
    }

    /// t(n)/t(1): the cost of verifying `n` tokens in one forward, in one-token steps.
    package func relativeCost(_ n: Int) -> Double {
        guard n > 1 else { return 1 }
        guard let last = priced.last else { return fittedCost(n) }
        if n < priced.count { return priced[n] }
        return max(last, 1 + factorBeyond * (fittedCost(n) - 1))
    }

    /// The seed's shape with the fitted slope.
    private func fittedCost(_ n: Int) -> Double {
        guard n > 1 else { return 1 }
        return max(1, 1 + scale * (seed.relativeCost(n) - seed.relativeCost(1)))
    }

    /// Learns from one verification of `tokens` tokens (the root and the tree's nodes) that took
    /// `seconds`, everything between sending the tree and hearing the outcome included.
    package mutating func record(tokens: Int, seconds elapsed: Double) {
        guard tokens >= 1, elapsed > 0, elapsed.isFinite else { return }
        recorded += 1
        if learns, tokens > 1, tokens < seconds.count {
            seconds[tokens].add(elapsed, weight: AutoTuning.stepTimeWeight)
            lastTimed[tokens] = recorded
            isFitted = fit()
            if isFitted { return }
        }
        let oneToken = elapsed / relativeCost(tokens)
        stepSeconds = (1 - AutoTuning.stepTimeWeight) * stepSeconds + AutoTuning.stepTimeWeight * oneToken
    }

    /// Fits `scale` (on a grid over ``AutoTuning/scaleRange``) and the one-token time to the
    /// sizes timed often enough; false while fewer than two sizes are, or they are too close in
    /// cost to tell a slope.
    private mutating func fit() -> Bool {
        var points: [(size: Int, extra: Double, logSeconds: Double, weight: Double)] = []
        // Sizes not timed lately are left out: their times are from another stretch of the
        // host's speed, and the fit relies on the sizes' times being close together.
        for size in 2..<seconds.count
        where seconds[size].samples >= AutoTuning.learnedSizeEvidence
            && recorded - lastTimed[size] <= AutoTuning.learnedSizeMaxAge
        {
            points.append(
                (
                    size, seed.relativeCost(size) - seed.relativeCost(1), log(seconds[size].value),
                    Double(min(seconds[size].samples, AutoTuning.learnedSizeWeightCap))
                ))
        }
        let extras = points.map(\.extra)
        guard points.count >= 2, let low = extras.min(), let high = extras.max(),
            high - low >= AutoTuning.smallestExtraCostSpread
        else { return false }
        let totalWeight = points.reduce(0) { $0 + $1.weight }
        // For a given scale the best log t(1) is the weighted mean of the residuals.
        func logOneToken(_ scale: Double) -> Double {
            points.reduce(0) { $0 + $1.weight * ($1.logSeconds - log(1 + scale * $1.extra)) } / totalWeight
        }
        var best = (error: Double.infinity, scale: 1.0)
        let range = AutoTuning.scaleRange
        for step in 0...AutoTuning.scaleGridSteps {
            let candidate =
                range.lowerBound
                * pow(range.upperBound / range.lowerBound, Double(step) / Double(AutoTuning.scaleGridSteps))
            let offset = logOneToken(candidate)
            let error = points.reduce(0) {
                let residual = $1.logSeconds - offset - log(1 + candidate * $1.extra)
                return $0 + $1.weight * residual * residual
            }
            if error < best.error { best = (error, candidate) }
        }
        scale = AutoTuning.trustedScaleBand.contains(best.scale) ? 1 : best.scale
        stepSeconds = exp(logOneToken(scale))
        reprice(timed: points.map { ($0.size, exp($0.logSeconds)) })
        return true
    }

    /// Prices every size from the sizes `timed` (with their seconds per verification): each timed
    /// size's extra cost over the fitted one-token time, as a factor of the fitted shape's extra
    /// cost, interpolated between sizes; never cheaper than a smaller size.
    private mutating func reprice(timed: [(size: Int, seconds: Double)]) {
        // Sizes costing little more than one token say nothing of a factor (a 2% timing error
        // there is a 40% error in it).
        let factors = timed.sorted { $0.size < $1.size }.compactMap { point -> (size: Int, factor: Double)? in
            let extra = fittedCost(point.size) - 1
            guard extra >= AutoTuning.smallestFactorExtra else { return nil }
            let factor = (point.seconds / stepSeconds - 1) / extra
            return (point.size, min(max(factor, AutoTuning.scaleRange.lowerBound), AutoTuning.scaleRange.upperBound))
        }
        guard let first = factors.first, let last = factors.last else {
            priced = []
            return
        }
        func factor(_ n: Int) -> Double {
            if n <= first.size { return first.factor }
            guard let upper = factors.firstIndex(where: { $0.size >= n }) else { return last.factor }
            let (a, b) = (factors[upper - 1], factors[upper])
            return a.factor + (b.factor - a.factor) * Double(n - a.size) / Double(b.size - a.size)
        }
        var table = [1.0, 1.0]
        for n in 2...AutoTuning.largestLearnedSize {
            table.append(max(table[n - 1], 1 + factor(n) * (fittedCost(n) - 1)))
        }
        priced = table
        factorBeyond = last.factor
    }

    /// The prices in use, as a curve (for reports).
    package var curve: VerificationCost {
        let sizes = [1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64]
        return VerificationCost(tokens: sizes, relative: sizes.map(relativeCost), oneTokenSeconds: stepSeconds)
    }
}
