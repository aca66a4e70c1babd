import SpeculateCore
import SpeculateProposers
import Testing

/// How `auto` prices other members' nodes beside a draft model's whole draft, driven step by step
/// so that the outcome does not depend on this machine's speed.
@Suite("The auto policy's tree pricing beside a draft model")
struct TreePricingTests {
    static let budget = TreeBudget(maxNodes: 16, maxDepth: 8)

    /// A chain of `tokens` under the root, each node's score its path's probability.
    static func chain(_ tokens: [Token], confidence: Float) -> DraftCandidate {
        DraftCandidate(
            tokens: tokens, parents: tokens.indices.map { $0 - 1 },
            distributions: Array(repeating: .deterministic, count: tokens.count),
            scores: tokens.indices.map { index in (0...index).reduce(Float(1)) { product, _ in product * confidence } })
    }

    /// Every node's path from the root, over all drafts.
    static func paths(_ drafts: [DraftCandidate]) -> Set<[Token]> {
        var result = Set<[Token]>()
        for draft in drafts {
            var paths: [[Token]] = []
            for (index, token) in draft.tokens.enumerated() {
                let parent = draft.parents[index]
                paths.append((parent < 0 ? [] : paths[parent]) + [token])
                result.insert(paths[index])
            }
        }
        return result
    }

    @Test(
        "beside a draft model's whole draft, a member's rival nodes are priced by how they fare there; its copies of the draft cost nothing"
    )
    func rivalsBesideADraft() {
        var state = PolicyState(
            members: 2, cost: CostlyMemberTests.curve, cheapFraction: 0.02, learnsCost: false,
            selfLimiting: [true, false])
        // The draft model is right four tokens deep; the lookup member repeats it and runs two
        // tokens further (always right), and offers a rival first token (never right).
        let draft = Self.chain([1, 2, 3, 4], confidence: 0.9)
        var lookup = Self.chain([1, 2, 3, 4, 5, 6], confidence: 0.9)
        lookup.tokens += [9, 10]
        lookup.parents += [-1, 6]
        lookup.distributions += [.deterministic, .deterministic]
        lookup.scores += [0.9, 0.81]
        let drafts: [(member: Int, candidate: DraftCandidate)] = [(0, draft), (1, lookup)]
        let clock = ContinuousClock()
        for _ in 0..<100 {
            let now = clock.now
            _ = state.select(drafts, budget: Self.budget, draftStarted: now, now: now)
            state.learn(accepted: [1, 2, 3, 4, 5, 6, 7], now: now + .milliseconds(50))
        }
        let sent = Self.paths(state.prune(drafts, budget: Self.budget, sampled: false, draftCost: 1))
        // Unconditionally the lookup member is right on 7 of its 8 nodes' depths, so its rival
        // would look worth a place; beside the draft it never was.
        #expect(
            sent == Set((1...6).map { Array([1, 2, 3, 4, 5, 6].prefix($0)) }),
            "sent \(sent.sorted { $0.count < $1.count })")
    }

    @Test("a draft model's runner-up leaves go out where runner-ups like them were the target's; its chain always")
    func runnersUp() {
        // The chain [1, 2] (first choices, 0.6 each) with runner-ups 7 beside 1 and 8 beside 2.
        var draft = Self.chain([1, 2], confidence: 0.6)
        draft.tokens += [7, 8]
        draft.parents += [-1, 0]
        draft.distributions += [.deterministic, .deterministic]
        draft.scores += [0.3, 0.6 * 0.3]
        let drafts: [(member: Int, candidate: DraftCandidate)] = [(0, draft)]
        let clock = ContinuousClock()
        func trained(_ outcomes: [[Token]]) -> Set<[Token]> {
            var state = PolicyState(
                members: 1, cost: CostlyMemberTests.curve, cheapFraction: 0.02, learnsCost: false,
                selfLimiting: [true])
            for step in 0..<120 {
                let now = clock.now
                _ = state.select(drafts, budget: Self.budget, draftStarted: now, now: now)
                state.learn(accepted: outcomes[step % outcomes.count], now: now + .milliseconds(50))
            }
            return Self.paths(state.prune(drafts, budget: Self.budget, sampled: false, draftCost: 1))
        }
        // The target takes the chain, or (two steps in five) the first runner-up; never the second.
        let useful = trained([[1, 2, 3], [7, 5], [1, 2, 3], [7, 5], [1, 2, 3]])
        #expect(useful == [[1], [1, 2], [7]], "sent \(useful.sorted { $0.count < $1.count })")
        // Runner-ups that are never the target's are left out; the chain still goes.
        let useless = trained([[1, 2, 3], [5], [1, 9]])
        #expect(useless == [[1], [1, 2]], "sent \(useless.sorted { $0.count < $1.count })")
        // The chain's own statistics are not the runner-ups': its first token is right 3 times in 5
        // above, whatever its runner-ups did.
        var state = PolicyState(
            members: 1, cost: CostlyMemberTests.curve, cheapFraction: 0.02, learnsCost: false, selfLimiting: [true])
        for step in 0..<100 {
            let now = clock.now
            _ = state.select(drafts, budget: Self.budget, draftStarted: now, now: now)
            state.learn(accepted: [[1, 2, 3], [7, 5], [1, 2, 3], [7, 5], [1, 2, 3]][step % 5], now: now)
        }
        let firstDepth = state.snapshot(names: ["draft"]).members[0].acceptanceByDepth[0]
        #expect(abs(firstDepth - 0.6) < 0.05, "depth-1 acceptance \(firstDepth)")
    }

    @Test(
        "with sampled drafts a draft model's whole draft goes out, and how many other nodes join does not hinge on its length"
    )
    func sampledContainment() {
        var state = PolicyState(
            members: 2, cost: CostlyMemberTests.curve, cheapFraction: 0.02, learnsCost: false,
            selfLimiting: [true, false])
        // Both members right eight deep, so that drafts pay.
        let clock = ContinuousClock()
        let right = Self.chain([1, 2, 3, 4, 5, 6, 7, 8], confidence: 0.9)
        for _ in 0..<100 {
            let now = clock.now
            _ = state.select([(0, right), (1, right)], budget: Self.budget, draftStarted: now, now: now)
            state.learn(accepted: [1, 2, 3, 4, 5, 6, 7, 8, 9], now: now + .milliseconds(50))
        }
        func sampled(_ tokens: [Token]) -> DraftCandidate {
            var candidate = Self.chain(tokens, confidence: 0.9)
            candidate.distributions = tokens.map { _ in .sampled([0.5, 0.5]) }
            return candidate
        }
        let lookup = Self.chain([20, 21, 22, 23], confidence: 0.9)
        var others: [Int] = []
        for length in [2, 6] {
            let draft = sampled(Array(1...Token(length)))
            let sent = state.prune([(0, draft), (1, lookup)], budget: Self.budget, sampled: true, draftCost: 1)
            let sentDraft = sent.filter { $0.tokens.first == 1 }.map(\.tokens.count).reduce(0, +)
            #expect(sentDraft == length, "\(sentDraft) of the draft's \(length) nodes sent")
            others.append(sent.filter { $0.tokens.first == 20 }.map(\.tokens.count).reduce(0, +))
        }
        #expect(others[0] == others[1], "other members' nodes: \(others)")
    }
}
