import Foundation
import SpeculateCore
import SpeculateProposers
import Testing

/// How `auto` judges a costly member (a draft model), driven step by step with synthetic timings
/// so that the outcome does not depend on this machine's speed or load.
@Suite("The auto policy with a costly member")
struct CostlyMemberTests {
    /// The measured shape of this project's CPU hosts (two tokens 1.09 steps, 16 tokens 3.3).
    static let curve = VerificationCost(
        tokens: [1, 2, 4, 8, 16, 64], relative: [1, 1.09, 1.14, 1.91, 3.29, 15.7], oneTokenSeconds: 0.034)
    /// A drafted token costs this fraction of a target step (the 0.5B draft's figure here).
    static let draftShare = 0.3

    /// What one simulated stretch of decoding produced.
    struct Stretch {
        var tokens = 0
        var seconds = 0.0
        var steps = 0
        var stepsAskingMember = 0
        var sentNodes = 0
        var rate: Double { Double(tokens) / seconds }
        var share: Double { Double(stepsAskingMember) / Double(steps) }
        func report(_ what: String) {
            print(
                "\(what): member asked on \(String(format: "%.1f", 100 * share))% of steps, \(String(format: "%.2f", rate * curve.oneTokenSeconds))x plain"
            )
        }
    }

    /// Runs `steps` steps of a single costly member whose every drafted token is right with
    /// probability `hitRate` (a fixed pseudo-random sequence), against a target that costs
    /// `truth` per verified tree (`curve` unless said otherwise).
    /// With `stopsAtMiss`, the member ends each draft at its first wrong token (a draft model that
    /// knows when it is unsure, at its best), and pays only for the tokens it drafted.
    static func simulate(
        _ state: inout PolicyState, steps: Int, hitRate: Double, seed: UInt64, stopsAtMiss: Bool = false,
        truth: VerificationCost = curve, asked: ((Int) -> Void)? = nil
    ) -> Stretch {
        var random = seed
        func uniform() -> Double {
            random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(random >> 11) / Double(1 << 53)
        }
        let step = curve.oneTokenSeconds
        let budget = TreeBudget(maxNodes: 8, maxDepth: 8)
        var now = ContinuousClock.now
        var stretch = Stretch()
        for _ in 0..<steps {
            let asks = state.plan(budget: budget)
            let started = now
            var drafts: [(member: Int, candidate: DraftCandidate)] = []
            for (member, depth) in asks {
                asked?(depth)
                // Token 1 is what the target emits at every depth; 2 is a miss.
                var tokens: [Token] = (0..<depth).map { _ in uniform() < hitRate ? 1 : 2 }
                if stopsAtMiss, let miss = tokens.firstIndex(of: 2) { tokens.removeSubrange((miss + 1)...) }
                let seconds = draftShare * step * Double(tokens.count)
                now = now.advanced(by: .seconds(seconds))
                stretch.seconds += seconds
                state.recordDraftTime(member: member, seconds: seconds, depth: tokens.count, asked: depth)
                drafts.append(
                    (
                        member,
                        DraftCandidate(
                            tokens: tokens, parents: tokens.indices.map { $0 - 1 },
                            distributions: Array(repeating: .deterministic, count: tokens.count),
                            scores: tokens.indices.map { Float(pow(0.8, Double($0 + 1))) })
                    ))
            }
            let sent = state.select(drafts, budget: budget, draftStarted: started, now: now)
            let chain = sent.first?.tokens ?? []
            let verification = step * truth.relativeCost(1 + chain.count)
            now = now.advanced(by: .seconds(verification))
            stretch.seconds += verification
            let accepted = (chain.firstIndex { $0 != 1 } ?? chain.count) + 1
            stretch.sentNodes += chain.count
            state.learn(accepted: Array(repeating: 1, count: accepted), now: now)
            stretch.tokens += accepted
            stretch.steps += 1
            if !asks.isEmpty { stretch.stepsAskingMember += 1 }
        }
        return stretch
    }

    static var plainRate: Double { 1 / curve.oneTokenSeconds }

    @Test("uses a draft model that pays on most steps, and gains what it offers")
    func adoptsPayingMember() {
        var state = PolicyState(members: 1, cost: Self.curve, cheapFraction: 0.02)
        let stretch = Self.simulate(&state, steps: 400, hitRate: 0.8, seed: 1)
        stretch.report("right 80% of the time")
        // A policy judging by realized rates of separate steps (every 8th step without the
        // member) asked it on 66% of steps, 1.31x; paired with counterfactuals: 99%, 1.39x.
        #expect(stretch.share > 0.9, "asked on \(stretch.share) of steps")
        #expect(stretch.rate > 1.3 * Self.plainRate, "\(stretch.rate / Self.plainRate)x plain")
    }

    @Test("a draft model far ahead needs no steps without it: each step is paired with its counterfactual")
    func noRefreshStepsWhenPaired() {
        var state = PolicyState(members: 1, cost: Self.curve, cheapFraction: 0.02)
        _ = Self.simulate(&state, steps: 200, hitRate: 0.97, seed: 3)  // learn and adopt it
        let stretch = Self.simulate(&state, steps: 320, hitRate: 0.97, seed: 4)
        stretch.report("right 97% of the time")
        // Every 8th step without it would leave at most 87.5%, every 32nd ~97%.
        #expect(stretch.share > 0.99, "asked on \(stretch.share) of steps")
        #expect(stretch.rate > 1.25 * Self.plainRate, "\(stretch.rate / Self.plainRate)x plain")
    }

    @Test("a step's counterfactual: the deepest cheap node on the target's path, plus the target's token")
    func counterfactualTokens() {
        let chain = DraftCandidate(
            tokens: [1, 2, 3], parents: [-1, 0, 1], distributions: Array(repeating: .deterministic, count: 3),
            scores: [0.9, 0.8, 0.7])
        let fork = DraftCandidate(
            tokens: [5, 1, 6], parents: [-1, -1, 1], distributions: Array(repeating: .deterministic, count: 3),
            scores: [0.5, 0.4, 0.3])
        #expect(PolicyState.counterfactualTokens([], accepted: [7]) == 1)  // nothing sent: a plain step
        #expect(PolicyState.counterfactualTokens([chain], accepted: [1, 2, 9, 4]) == 3)  // 1, 2, then the target's 9
        #expect(PolicyState.counterfactualTokens([chain], accepted: [8, 2]) == 1)  // wrong at the root
        #expect(PolicyState.counterfactualTokens([chain], accepted: [1, 2, 3]) == 4)  // all of it: at least 4
        #expect(PolicyState.counterfactualTokens([fork], accepted: [1, 6, 0]) == 3)  // the second branch
        #expect(PolicyState.counterfactualTokens([chain, fork], accepted: [1, 6]) == 3)
    }

    @Test("leaves a draft model that loses, and exploring it costs little")
    func dropsLosingMember() {
        var state = PolicyState(members: 1, cost: Self.curve, cheapFraction: 0.02)
        let stretch = Self.simulate(&state, steps: 400, hitRate: 0.1, seed: 2)
        stretch.report("right 10% of the time")
        // The policy as it stands: 3.2% of steps (six on trial, then bursts), 0.98x.
        #expect(stretch.share < 0.1, "asked on \(stretch.share) of steps")
        #expect(stretch.rate > 0.95 * Self.plainRate, "\(stretch.rate / Self.plainRate)x plain")
    }

    @Test(
        "a draft model that ends its own drafts is asked for the full depth while in use, others for their best depth")
    func selfLimitingMemberDraftsDeep() {
        var depths: [Bool: [Int]] = [:]
        var rates: [Bool: Double] = [:]
        for selfLimiting in [false, true] {
            var state = PolicyState(members: 1, cost: Self.curve, cheapFraction: 0.02, selfLimiting: [selfLimiting])
            _ = Self.simulate(&state, steps: 200, hitRate: 0.9, seed: 6, stopsAtMiss: true)  // learn and adopt it
            let stretch = Self.simulate(&state, steps: 300, hitRate: 0.9, seed: 7, stopsAtMiss: true) {
                depths[selfLimiting, default: []].append($0)
            }
            stretch.report(
                selfLimiting
                    ? "ends its own drafts, asked for the full depth" : "ends its own drafts, asked for its best depth")
            #expect(stretch.share > 0.9, "asked on \(stretch.share) of steps")
            rates[selfLimiting] = stretch.rate
        }
        // bestDepth prices every drafted token at the average acceptance and stops short of the
        // 8-token budget. Which pays more depends on how well the member's confidence predicts its
        // misses, which this simulation does not model (it drafts the miss and then stops: 1.81x
        // against 1.62x with pruning that counts the drafting, 1.51x against 1.62x without); the
        // real 0.5B draft gained from the full depth on HumanEval and chat, so this test pins the
        // behaviour and that both pay, not which pays more.
        #expect(depths[false, default: []].allSatisfy { $0 < 8 } && depths[true, default: []].allSatisfy { $0 == 8 })
        #expect(rates.values.allSatisfy { $0 > 1.3 * Self.plainRate }, "\(rates.mapValues { $0 / Self.plainRate })")
    }

    @Test("a draft model with greedy drafts is on trial from its first step, however its first drafts went")
    func greedyMemberOnTrial() {
        var state = PolicyState(members: 1, cost: Self.curve, cheapFraction: 0.02)
        // Right 20% of the time: the modelled gain after first contact is below break-even, which
        // once kept a draft out before any evidence; six paired steps must judge it first.
        let stretch = Self.simulate(&state, steps: 8, hitRate: 0.2, seed: 9)
        #expect(stretch.stepsAskingMember >= 7, "asked on \(stretch.stepsAskingMember) of the first 8 steps")
    }

    @Test(
        "pruning counts the step's drafting: deeper trees when drafting is dear, none that its verification does not pay"
    )
    func pruningCountsDrafting() {
        var state = PolicyState(
            members: 1, cost: Self.curve, cheapFraction: 0.02, learnsCost: false, selfLimiting: [false])
        // Acceptance ~0.9 at every depth (asked for the full depth, it drafts up to its first miss).
        _ = Self.simulate(&state, steps: 200, hitRate: 0.9, seed: 10, stopsAtMiss: true)
        let chain = DraftCandidate(
            tokens: Array(repeating: 1, count: 8), parents: (0..<8).map { $0 - 1 },
            distributions: Array(repeating: .deterministic, count: 8),
            scores: (0..<8).map { Float(pow(0.9, Double($0 + 1))) })
        let budget = TreeBudget(maxNodes: 16, maxDepth: 8)
        func sent(_ draftCost: Double) -> Int {
            state.prune([(0, chain)], budget: budget, sampled: false, draftCost: draftCost).map(\.tokens.count).reduce(
                0, +)
        }
        // With verification alone the curve's jump after 4 tokens stops the tree early; with a
        // step's drafting on top (the 0.5B draft: ~1 step), more of the chain pays.
        let (cheap, dear) = (sent(0), sent(1.5))
        #expect(cheap < 8 && dear > cheap, "\(cheap) nodes without drafting, \(dear) with")
        // A member that ends its own drafts where it is unsure has its whole draft sent, as the
        // draft chain sends it, however the step's drafting is priced.
        var limiting = PolicyState(
            members: 1, cost: Self.curve, cheapFraction: 0.02, learnsCost: false, selfLimiting: [true])
        _ = Self.simulate(&limiting, steps: 200, hitRate: 0.9, seed: 10, stopsAtMiss: true)
        let whole = limiting.prune([(0, chain)], budget: budget, sampled: false, draftCost: 0)
        #expect(whole.map(\.tokens.count).reduce(0, +) == 8)
        // A member that is almost never right: dear drafting must not make its nodes worth sending.
        var poor = PolicyState(members: 1, cost: Self.curve, cheapFraction: 0.02, learnsCost: false)
        _ = Self.simulate(&poor, steps: 200, hitRate: 0.03, seed: 11)
        let sentPoor = poor.prune([(0, chain)], budget: budget, sampled: false, draftCost: 1.5)
        #expect(sentPoor.isEmpty, "sent \(sentPoor.map(\.tokens.count)) nodes")
    }
}
