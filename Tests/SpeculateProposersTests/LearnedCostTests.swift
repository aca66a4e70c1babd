import Foundation
import SpeculateCore
import SpeculateProposers
import Testing

/// `auto` prices trees with the verification cost it measures as the decoder verifies: a wrong
/// start-up curve (a probe taken while the machine was busy) is corrected within a few dozen steps.
@Suite("The auto policy's learned verification cost")
struct LearnedCostTests {
    static let truth = CostlyMemberTests.curve
    /// What a probe measured on a busy host: twice the true extra cost of every size (8 tokens
    /// 2.8 single steps where they cost 1.9).
    static let steep = VerificationCost(
        tokens: truth.tokens, relative: truth.relative.map { 1 + 2 * ($0 - 1) },
        oneTokenSeconds: truth.oneTokenSeconds)

    @Test("a seed with the wrong slope is refitted from the sizes sent, and prices every size")
    func learnsSlope() {
        var cost = LearnedVerificationCost(seed: Self.steep)
        let step = Self.truth.oneTokenSeconds
        for _ in 0..<20 {
            for size in [3, 5, 9] { cost.record(tokens: size, seconds: step * Self.truth.relativeCost(size)) }
        }
        // The grid's resolution is ~2%.
        #expect(abs(cost.scale - 0.5) < 0.02, "scale \(cost.scale)")
        #expect(abs(cost.stepSeconds - step) < 0.02 * step)
        // Sizes never sent are priced right too: the seed's shape carries the fit.
        for size in [2, 4, 8, 16, 40] {
            #expect(abs(cost.relativeCost(size) / Self.truth.relativeCost(size) - 1) < 0.02, "size \(size)")
        }
    }

    @Test("a slower host moves the one-token time, not the shape")
    func slowerHost() {
        var cost = LearnedVerificationCost(seed: Self.truth)
        let slower = 1.5 * Self.truth.oneTokenSeconds
        for _ in 0..<20 {
            for size in [4, 8] { cost.record(tokens: size, seconds: slower * Self.truth.relativeCost(size)) }
        }
        #expect(cost.scale == 1, "scale \(cost.scale)")
        #expect(abs(cost.stepSeconds / slower - 1) < 0.02)
    }

    @Test("a fitted slope near the seed's keeps the seed's level; the sizes timed keep their own shape")
    func trustedBand() {
        let flatter = VerificationCost(
            tokens: Self.truth.tokens, relative: Self.truth.relative.map { 1 + 0.9 * ($0 - 1) },
            oneTokenSeconds: Self.truth.oneTokenSeconds)
        var cost = LearnedVerificationCost(seed: Self.truth)
        for _ in 0..<20 {
            for size in [4, 8] {
                cost.record(tokens: size, seconds: Self.truth.oneTokenSeconds * flatter.relativeCost(size))
            }
        }
        #expect(cost.scale == 1)
        // 8 tokens are priced as timed, against the fitted one-token time.
        let timed = Self.truth.oneTokenSeconds * flatter.relativeCost(8) / cost.stepSeconds
        #expect(abs(cost.relativeCost(8) / timed - 1) < 0.01)
        #expect(abs(cost.stepSeconds / Self.truth.oneTokenSeconds - 1) < 0.05)
    }

    @Test("sizes that cost more in place than the seed's shape says are priced as timed, and larger ones with them")
    func stepsInPlace() {
        var cost = LearnedVerificationCost(seed: Self.truth)
        let step = Self.truth.oneTokenSeconds
        // The decoder's times on HumanEval-10: a step at 9 tokens and steeper beyond, where the
        // seed interpolates smoothly between 8 and 16.
        let inPlace: [Int: Double] = [5: 1.3, 8: 1.8, 9: 2.15, 10: 2.55]
        for _ in 0..<20 {
            for (size, relative) in inPlace.sorted(by: { $0.key < $1.key }) {
                cost.record(tokens: size, seconds: step * relative)
            }
        }
        #expect(cost.scale == 1, "scale \(cost.scale)")
        let one = cost.stepSeconds
        for (size, relative) in inPlace where size >= 8 {
            #expect(abs(cost.relativeCost(size) / (step * relative / one) - 1) < 0.01, "size \(size)")
        }
        // The tenth token is priced at what it costs in place, not at the seed's ~0.17.
        #expect(abs((cost.relativeCost(10) - cost.relativeCost(9)) - 0.4 * step / one) < 0.02)
        #expect(
            cost.relativeCost(10) - cost.relativeCost(9) > 2
                * (Self.truth.relativeCost(10) - Self.truth.relativeCost(9)))
        // Sizes beyond follow the seed's extra cost scaled as the largest timed size's.
        #expect(cost.relativeCost(12) > cost.relativeCost(10))
        #expect(cost.relativeCost(12) / Self.truth.relativeCost(12) > cost.relativeCost(9) / Self.truth.relativeCost(9))
        // Never cheaper for more tokens.
        for size in 2..<100 { #expect(cost.relativeCost(size + 1) >= cost.relativeCost(size)) }
    }

    @Test("one size alone, or sizes too close to tell a slope, keep the seed's shape")
    func needsTwoSizes() {
        var cost = LearnedVerificationCost(seed: Self.steep)
        let step = Self.truth.oneTokenSeconds
        for _ in 0..<50 {
            cost.record(tokens: 2, seconds: step * Self.truth.relativeCost(2))
            cost.record(tokens: 3, seconds: step * Self.truth.relativeCost(3))
        }
        #expect(cost.scale == 1)
        #expect(cost.relativeCost(8) == Self.steep.relativeCost(8))
    }

    @Test("bad timings are ignored")
    func ignoresBadTimings() {
        var cost = LearnedVerificationCost(seed: Self.truth)
        for seconds in [0, -1, .nan, .infinity] { cost.record(tokens: 3, seconds: seconds) }
        cost.record(tokens: 0, seconds: 1)
        #expect(cost.stepSeconds == Self.truth.oneTokenSeconds)
        #expect(cost.scale == 1)
        #expect(cost.relativeCost(3) == Self.truth.relativeCost(3))
    }

    @Test("a policy started from a too-steep curve sends the trees a right curve sends, and gains as much")
    func steepSeedIsCorrected() {
        // One cheap member (n-gram lookup at its best) drafting 8-deep chains right 85% of the time.
        var right = PolicyState(members: 1, cost: Self.truth, cheapFraction: 1)
        var steep = PolicyState(members: 1, cost: Self.steep, cheapFraction: 1)
        var frozen = PolicyState(members: 1, cost: Self.steep, cheapFraction: 1)
        let warmUp = 100
        _ = CostlyMemberTests.simulate(&right, steps: warmUp, hitRate: 0.85, seed: 3)
        _ = CostlyMemberTests.simulate(&steep, steps: warmUp, hitRate: 0.85, seed: 3)
        let withRight = CostlyMemberTests.simulate(&right, steps: 400, hitRate: 0.85, seed: 4)
        let learned = CostlyMemberTests.simulate(&steep, steps: 400, hitRate: 0.85, seed: 4)
        // The same steep curve, never corrected (what the policy did before it learned): the steep
        // seed's own world, so that its prices stay what they were.
        _ = CostlyMemberTests.simulate(&frozen, steps: warmUp, hitRate: 0.85, seed: 3, truth: Self.steep)
        let unlearned = CostlyMemberTests.simulate(&frozen, steps: 400, hitRate: 0.85, seed: 4, truth: Self.steep)
        let nodes = { (stretch: CostlyMemberTests.Stretch) in Double(stretch.sentNodes) / Double(stretch.steps) }
        #expect(
            nodes(unlearned) < 0.9 * nodes(withRight),
            "the steep curve alone prunes: \(nodes(unlearned)) against \(nodes(withRight)) nodes")
        #expect(
            abs(nodes(learned) - nodes(withRight)) < 0.25,
            "\(nodes(learned)) nodes per step against \(nodes(withRight))")
        #expect(learned.rate > 0.98 * withRight.rate, "\(learned.rate) tokens/s against \(withRight.rate)")
    }
}
