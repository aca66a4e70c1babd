import SpeculateCore
import SpeculateProposers
import Testing

/// `auto` when the target's forward is shared with other requests (`serve --parallel`): nodes
/// priced at their marginal cost on the shared forward, drafting as time the whole batch waits.
/// Driven step by step with synthetic timings, so the outcome does not depend on this machine.
@Suite("The auto policy under a shared forward")
struct SharedForwardPricingTests {
    static let budget = TreeBudget(maxNodes: 8, maxDepth: 8)

    /// A policy whose one member (a draft model) was right 90% of the time at every depth over
    /// 60 steps alone, drafting a token in `drafting` target steps (a fifth by default).
    static func trained(drafting: Double = 0.2) -> PolicyState {
        var state = PolicyState(
            members: 1, cost: CostlyMemberTests.curve, cheapFraction: 0.02, learnsCost: false, selfLimiting: [true])
        let step = CostlyMemberTests.curve.oneTokenSeconds
        var now = ContinuousClock.now
        for index in 0..<60 {
            _ = state.plan(budget: budget)
            let tokens: [Token] = (0..<6).map { $0 == 5 && index % 2 == 0 ? 2 : 1 }
            let started = now
            now = now.advanced(by: .seconds(drafting * step * Double(tokens.count)))
            state.recordDraftTime(member: 0, seconds: drafting * step * Double(tokens.count), depth: 6, asked: 6)
            let draft = TreePricingTests.chain(tokens, confidence: 0.9)
            _ = state.select([(0, draft)], budget: budget, draftStarted: started, now: now)
            now = now.advanced(by: .seconds(step * 1.6))
            state.learn(accepted: Array(repeating: 1, count: 6), now: now)
        }
        return state
    }

    @Test("alone the draft's chain is sent whole; the more tokens share the forward, the fewer nodes pay, down to none")
    func treesShrinkWithLoad() {
        let state = Self.trained()
        let draft = TreePricingTests.chain([1, 1, 1, 1, 1, 1], confidence: 0.9)
        var sizes: [Int] = []
        for load in [0, 1, 3, 7, 15] {
            var loaded = state
            loaded.load = load
            loaded.plainLoad = load
            sizes.append(
                loaded.prune([(0, draft)], budget: Self.budget, sampled: false, draftCost: 1).first?.tokens.count ?? 0)
        }
        #expect(sizes[0] == 6, "sizes by load \(sizes)")
        #expect(zip(sizes, sizes.dropFirst()).allSatisfy { $0 >= $1 }, "sizes by load \(sizes)")
        #expect(sizes.last == 0, "sizes by load \(sizes)")
    }

    @Test("a draft model that pays alone is not asked when its drafting would hold up a full batch")
    func costlyMemberStepsAsideUnderLoad() {
        var alone = Self.trained()
        #expect(alone.plan(budget: Self.budget).map(\.member) == [0])
        var busy = Self.trained()
        #expect(busy.plan(budget: Self.budget, load: 7, plainLoad: 7).isEmpty)
        var light = Self.trained()
        #expect(light.plan(budget: Self.budget, load: 1, plainLoad: 1).map(\.member) == [0])
    }

    @Test(
        "a draft model drafting for two requests in shared forwards is asked deeper than one drafting alone; not past one other request"
    )
    func sharedDraftingPays() {
        // One other request whose tree shares the forward: a draft's rounds alone hold both
        // requests up; drafting for both in one forward costs each half.
        func depth(load: Int, plainLoad: Int, drafters: Int) -> Int {
            var state = Self.trained(drafting: 0.6)
            return state.plan(budget: Self.budget, load: load, plainLoad: plainLoad, drafters: [drafters]).first?.depth
                ?? 0
        }
        let loads = [1, 4, 8, 12, 16]
        let alone = loads.map { depth(load: $0, plainLoad: 1, drafters: 1) }
        let shared = loads.map { depth(load: $0, plainLoad: 1, drafters: 2) }
        #expect(zip(shared, alone).allSatisfy { $0 >= $1 }, "depths alone \(alone), shared \(shared)")
        #expect(zip(shared, alone).contains { $0 > $1 }, "depths alone \(alone), shared \(shared)")
        // Three others decoding: a shared draft is priced as an unshared one (it did not pay there).
        #expect(depth(load: 3, plainLoad: 3, drafters: 4) == depth(load: 3, plainLoad: 3, drafters: 1))
    }

    @Test("under load, nodes whose values the outcomes do not bear out are sent less")
    func loadedValuesCalibrated() {
        let draft = TreePricingTests.chain([1, 1, 1], confidence: 0.9)
        func sent(_ state: PolicyState) -> Int {
            var loaded = state
            loaded.load = 1
            loaded.plainLoad = 1
            return loaded.prune([(0, draft)], budget: Self.budget, sampled: false).first?.tokens.count ?? 0
        }
        let fresh = Self.trained()
        var rejected = Self.trained()
        var now = ContinuousClock.now
        for _ in 0..<40 {
            _ = rejected.plan(budget: Self.budget, load: 1, plainLoad: 1)
            _ = rejected.select([(0, draft)], budget: Self.budget, draftStarted: now, now: now)
            now = now.advanced(by: .seconds(0.05))
            rejected.learn(accepted: [2], now: now)  // the target's own token: every node rejected
        }
        #expect(sent(fresh) > 0)
        #expect(sent(rejected) < sent(fresh), "fresh \(sent(fresh)), after rejections \(sent(rejected))")
    }

    @Test("steps under load teach acceptance but neither the cost curve nor the members' verdicts")
    func loadedStepsDoNotTeachTimings() {
        var state = PolicyState(
            members: 1, cost: CostlyMemberTests.curve, cheapFraction: 0.02, learnsCost: true, selfLimiting: [true])
        let before = state.stepSeconds
        var now = ContinuousClock.now
        for _ in 0..<40 {
            _ = state.plan(budget: Self.budget, load: 3, plainLoad: 3)
            let draft = TreePricingTests.chain([1], confidence: 0.9)
            _ = state.select([(0, draft)], budget: Self.budget, draftStarted: now, now: now)
            now = now.advanced(by: .seconds(1))  // a forward that waited for three other requests
            state.learn(accepted: [1, 1], now: now)
        }
        #expect(state.stepSeconds == before)
    }
}
