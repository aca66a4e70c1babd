import SpeculateCore

/// The `auto` policy's state, guarded by ``AutoProposer``'s mutex: one ``MemberState`` per
/// member, the learned verification cost, and the step in flight. Package access so that tests
/// can drive it step by step with synthetic timings. Its work is spread over files by concern:
/// scheduling (`Scheduling.swift`: whom to ask, how deep), pricing (`TreePricing.swift`: which
/// nodes to send), and learning (here: what a step's outcome teaches).
package struct PolicyState {
    /// Members cheaper than this fraction of a target step per depth are asked every step.
    let cheapFraction: Double
    var members: [MemberState]
    /// The verification cost trees are priced with, learned as the decoder verifies.
    var cost: LearnedVerificationCost
    /// The one-token target step, seconds.
    package var stepSeconds: Double { cost.stepSeconds }
    var steps = 0
    /// Steps where the policy sent no draft at all.
    var plainSteps = 0
    /// Realized tokens per second of steps that asked no costly member.
    var baseRate = MovingRate()
    /// Costly members asked this step.
    var askedCostly: [Int] = []
    /// Whether this step was planned for sampled drafts (every member asked at full depth).
    var plannedForSampling = false
    /// The drafting of recent steps, in one-token steps: what the sampled path prices trees
    /// with, as a step's own drafting time follows its drafted tokens there (a draft model ends
    /// its chain on its sampled tokens' probabilities), and node counts may not.
    var recentDraftCost = MovingRate()
    /// The step whose tree is being verified, if any.
    var inFlight: SentStep?
    /// Tokens of other requests in this step's target forward (0 alone): greedy steps under load
    /// are priced by `SharedForwardPricing.swift`, and their timings (which include waiting for
    /// the other requests) teach neither the cost curve nor the costly members' verdicts.
    package var load = 0
    /// Of `load`, the others' useful work (a token per request decoding, the chunks of prompts
    /// being read): what the forward would carry with no draft nodes, this request's root aside.
    package var plainLoad = 0
    /// How the values of nodes sent under load fared (see ``SharedCalibration``).
    var sharedCalibration = SharedCalibration()
    /// Per member, the decoding loops its forwards are shared with (1: its own alone); a draft
    /// model of a server slot drafts for all slots in one forward (`DraftLane`).
    package var drafters: [Int] = []

    /// A step between sending its tree and learning its outcome.
    struct SentStep {
        /// Every returned node (sent or pruned), for learning afterwards.
        var drafts: [(member: Int, candidate: DraftCandidate)]
        /// Nodes of the tree sent to the target (shared prefixes once).
        var sentNodes: Int
        var sentAt: ContinuousClock.Instant
        /// Seconds the members spent drafting.
        var draftSeconds: Double
        /// Whether any draft was sampled (stochastic verification).
        var sampled: Bool
        /// Whether the step was planned for sampled drafts.
        var plannedForSampling: Bool
        /// The budget the drafts were pruned to.
        var budget: TreeBudget
        /// Under load (greedy): the summed values of the nodes sent, the tokens they should bring.
        var expectedUnderLoad: Double?
    }

    package init(
        members: Int, cost: VerificationCost, cheapFraction: Double, learnsCost: Bool = true, selfLimiting: [Bool] = []
    ) {
        self.cheapFraction = cheapFraction
        self.members = (0..<members).map { MemberState(selfLimiting: $0 < selfLimiting.count && selfLimiting[$0]) }
        self.cost = LearnedVerificationCost(seed: cost, learns: learnsCost)
    }

    /// Updates a member's cost per drafted depth from one call (see ``MemberState/recordDraftTime(seconds:depth:)``).
    package mutating func recordDraftTime(member: Int, seconds: Double, depth: Int, asked: Int) {
        members[member].recordDraftTime(seconds: seconds, depth: depth)
    }

    mutating func recordFailure(member: Int, _ message: String) {
        members[member].recordFailure(message)
    }

    /// Chooses the nodes to send and remembers the whole draft for learning.
    package mutating func select(
        _ drafts: [(member: Int, candidate: DraftCandidate)], budget: TreeBudget,
        draftStarted: ContinuousClock.Instant, now: ContinuousClock.Instant
    ) -> [DraftCandidate] {
        let sampled = drafts.contains { $0.candidate.isSampled }
        // A probe that teaches the verification cost (``AutoTuning/sizeProbeInterval``) until the
        // sizes sent price the curve: it hinges on the step count and earlier steps' timings, never
        // on this step's drafted tokens, so sampled output keeps its distribution.
        let sizeProbe = cost.learns && !cost.isFitted && steps % AutoTuning.sizeProbeInterval == 0
        let draftSeconds = Self.seconds(now - draftStarted)
        let stepDraftCost = max(0, min(AutoTuning.largestDraftCost, draftSeconds / stepSeconds))
        // Sampled drafts are priced with earlier steps' drafting, never this step's own.
        let draftCost = sampled ? recentDraftCost.value : stepDraftCost
        recentDraftCost.add(stepDraftCost)
        let sent = prune(drafts, budget: budget, sampled: sampled, draftCost: draftCost, extraNodes: sizeProbe ? 1 : 0)
        let sentNodes = min(Self.mergedSize(sent), budget.maxNodes)
        inFlight = SentStep(
            drafts: drafts, sentNodes: sentNodes, sentAt: now, draftSeconds: draftSeconds, sampled: sampled,
            plannedForSampling: plannedForSampling, budget: budget,
            expectedUnderLoad: load > 0 && !plannedForSampling && !sampled ? Self.expectedTokens(sent) : nil)
        if sent.isEmpty { plainSteps += 1 }
        return sent
    }

    /// Learns from the step's outcome: `accepted` is the accepted drafts followed by the target's token.
    package mutating func learn(accepted: [Token], now: ContinuousClock.Instant) {
        defer {
            inFlight = nil
            askedCostly = []
        }
        guard let step = inFlight else { return }
        let seconds = Self.seconds(now - step.sentAt)
        let shared = load > 0 && !step.plannedForSampling
        if !shared { cost.record(tokens: 1 + step.sentNodes, seconds: seconds) }
        if shared, let expected = step.expectedUnderLoad, expected > 0 {
            sharedCalibration.add(predicted: expected, realized: accepted.count - 1)
        }
        // Realized rate of this step, drafting included: the evidence costly members are judged by.
        // A step planned for sampling asked every member whatever the evidence, and its evidence
        // would judge the members by another kind of decoding: it teaches acceptance only.
        let rate = Double(accepted.count) / max(1e-6, seconds + step.draftSeconds)
        if !step.plannedForSampling && !shared { judgeCostlyMembers(step, accepted: accepted, rate: rate) }
        for (member, candidate) in step.drafts {
            members[member].acceptance.record(
                candidate, accepted: accepted, runnersUp: !step.sampled && members[member].selfLimiting)
        }
        // Beside a self-limiting member's chain, other members' nodes are priced by how they fare
        // there (greedy steps only: sampled drafts are not sent that way).
        guard !step.sampled else { return }
        let selfLimitingPaths = Set(
            step.drafts.filter { members[$0.member].selfLimiting }.flatMap { draft in
                zip(draft.candidate.nodePaths, draft.candidate.onFirstChain).filter(\.1).map(\.0)
            })
        guard !selfLimitingPaths.isEmpty else { return }
        for (member, candidate) in step.drafts where !members[member].selfLimiting {
            members[member].acceptance.recordBesideDraft(
                candidate, accepted: accepted, selfLimitingPaths: selfLimitingPaths)
        }
    }

    /// Adds a greedy-planned step's evidence about the costly members it asked (or, when it asked
    /// none, to the rate of steps without them).
    private mutating func judgeCostlyMembers(_ step: SentStep, accepted: [Token], rate: Double) {
        if askedCostly.isEmpty {
            baseRate.add(rate)
        } else {
            // Every step that used the member counts, catch-ups after a new prompt included (they
            // are part of what using it costs); only the first call of an exploration burst does not.
            for member in askedCostly where !members[member].isCatchUpCall { members[member].rateWhenAsked.add(rate) }
            if !step.sampled { pairWithCounterfactual(step, accepted: accepted) }
            for member in askedCostly {
                members[member].isCatchUpCall = false
                let own = step.drafts.filter { $0.member == member }.map(\.candidate)
                if !own.isEmpty { members[member].draftsSampled = own.contains(where: \.isSampled) }
            }
        }
    }

    /// Pairs this step (which asked costly members) with what it would have given without them:
    /// the cheap members' drafts, pruned as they would have been alone, judged against the
    /// target's tokens. Both sides' verification is timed by the cost model, so the host's
    /// step-to-step noise cancels out of the comparison; this step's measured drafting (all of
    /// it, the cheap members' included) is added to its own side only, as the cheap members'
    /// share is negligible.
    private mutating func pairWithCounterfactual(_ step: SentStep, accepted: [Token]) {
        let cheapDrafts = step.drafts.filter { !askedCostly.contains($0.member) }
        let alone = prune(cheapDrafts, budget: step.budget, sampled: false)
        let baseNodes = min(Self.mergedSize(alone), step.budget.maxNodes)
        let baseTokens = Double(Self.counterfactualTokens(alone, accepted: accepted))
        let baseSeconds = stepSeconds * cost.relativeCost(1 + baseNodes)
        let seconds = stepSeconds * cost.relativeCost(1 + step.sentNodes) + step.draftSeconds
        for member in askedCostly where !members[member].isCatchUpCall {
            members[member].paired.add(
                tokens: Double(accepted.count), seconds: seconds, baseTokens: baseTokens,
                baseSeconds: baseSeconds, step: steps)
        }
    }

    /// The tokens `sent` should bring: each node's value (its score after pruning), shared
    /// prefixes once.
    static func expectedTokens(_ sent: [DraftCandidate]) -> Double {
        var values: [[Token]: Double] = [:]
        for draft in sent {
            for (path, score) in zip(draft.nodePaths, draft.scores) {
                values[path] = max(values[path] ?? 0, Double(score))
            }
        }
        return values.values.reduce(0, +)
    }

    /// Nodes of the tree the decoder verifies from `drafts`: the merger keeps a shared prefix
    /// once (the n-gram and draft members often agree on the first tokens), so the tree is often
    /// smaller than the drafts' node count, and its time belongs to its own size.
    static func mergedSize(_ drafts: [DraftCandidate]) -> Int {
        Set(drafts.flatMap(\.nodePaths)).count
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
