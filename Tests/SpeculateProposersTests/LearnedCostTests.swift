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
    static let steep = VerificationCost(tokens: truth.tokens, relative: truth.relative.map { 1 + 2 * ($0 - 1) },
                                        oneTokenSeconds: truth.oneTokenSeconds)

    @Test("measured sizes are priced by their own times; unmeasured ones carry the nearest correction")
    func learnsMeasuredSizes() {
        var cost = LearnedVerificationCost(seed: Self.steep)
        let step = Self.truth.oneTokenSeconds
        for _ in 0..<20 {
            for size in [1, 3, 5] { cost.record(tokens: size, seconds: step * Self.truth.relativeCost(size)) }
        }
        #expect(abs(cost.stepSeconds - step) < 1e-9)
        for size in [3, 5] {
            #expect(abs(cost.relativeCost(size) - Self.truth.relativeCost(size)) < 1e-6, "size \(size)")
        }
        // Size 4 carries size 3's correction (the seed's extra cost halved), size 8 size 5's.
        let correction = Self.truth.relativeCost(5) / Self.steep.relativeCost(5)
        #expect(abs(cost.relativeCost(8) - Self.steep.relativeCost(8) * correction) < 1e-6)
        #expect(cost.relativeCost(8) < Self.steep.relativeCost(8))
        // Prices never fall with size, whatever the noise.
        #expect(zip(1..<80, 2..<81).allSatisfy { cost.relativeCost($0) <= cost.relativeCost($1) })
    }

    @Test("without plain steps, the one-token time comes from the smallest size sent, through the seed's shape")
    func oneTokenTimeWithoutPlainSteps() {
        var cost = LearnedVerificationCost(seed: Self.truth)
        let slower = 1.5 * Self.truth.oneTokenSeconds  // the host is slower than when probed
        for _ in 0..<10 {
            for size in [4, 8] { cost.record(tokens: size, seconds: slower * Self.truth.relativeCost(size)) }
        }
        #expect(abs(cost.stepSeconds - slower) < 1e-9)
        #expect(abs(cost.relativeCost(8) - Self.truth.relativeCost(8)) < 1e-6)
    }

    @Test("bad timings are ignored")
    func ignoresBadTimings() {
        var cost = LearnedVerificationCost(seed: Self.truth)
        for seconds in [0, -1, .nan, .infinity] { cost.record(tokens: 3, seconds: seconds) }
        cost.record(tokens: 0, seconds: 1)
        #expect(cost.stepSeconds == Self.truth.oneTokenSeconds)
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
        #expect(nodes(unlearned) < 0.9 * nodes(withRight), "the steep curve alone prunes: \(nodes(unlearned)) against \(nodes(withRight)) nodes")
        #expect(abs(nodes(learned) - nodes(withRight)) < 0.25, "\(nodes(learned)) nodes per step against \(nodes(withRight))")
        #expect(learned.rate > 0.98 * withRight.rate, "\(learned.rate) tokens/s against \(withRight.rate)")
    }
}
