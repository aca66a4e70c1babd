import Foundation
import SpeculateCore
import Synchronization

/// The `auto` strategy: a proposer that owns other proposers and decides, every step, which of
/// them to ask, how deep, and which of their nodes to send to the target, so that expected
/// accepted tokens per second is highest — including sending nothing when nothing pays.
///
/// The policy (Sequoia's objective, with EAGLE-2's confidence-driven tree growth):
/// - **Cost model.** Verifying a tree of n nodes costs `step · t(n+1)` where `t` is the measured
///   ``VerificationCost`` curve and `step` the one-token forward time (refined live from the time
///   between proposing and the next `observe`); member m costs `c_m` seconds per drafted depth
///   (measured live, an exponential moving average).
/// - **Acceptance model.** For every member, depth and confidence bucket (a node's own
///   probability as the member reports it), Beta-smoothed counts of how often a node whose parent
///   was accepted is accepted. Nodes the policy pruned are still scored afterwards against what
///   the target chose, so pruning does not starve the statistics.
/// - **Asking.** Members that cost almost nothing (n-gram lookup, most plugins) are asked every
///   step for a full-depth draft. A costly member (a draft model) is first tried when its best chain
///   depth d makes `(1 + G_m(d)) / (t(1+d) + c_m · d / step)` exceed 1.02, with `G_m(d)` the expected
///   accepted length from its depth statistics (Sequoia's objective with the drafting term); from
///   then on it is judged by evidence. With greedy drafts each step that asked it is paired with
///   its counterfactual: what the cheap members' drafts alone, pruned alone, would have yielded
///   given the target's tokens, both sides timed by the cost model plus the step's measured
///   drafting; over ~30 such steps (discounted) the member must beat its counterfactual to come
///   back and stays until it falls below 0.85 of it. Until there are six pairs, or with sampled
///   drafts, the realized tokens per second of steps that asked it must beat steps that asked no
///   costly member by 5% (every 8th step going without it to keep that figure fresh; every 32nd
///   once it is ahead by 25%). When it does not pay it is explored in bursts of three steps, the
///   pause between bursts doubling (32, 64, 128, … steps; quadrupling when it is clearly worse).
///   While in use it is asked for depth d, or for the budget's full depth when it ends its drafts
///   on its own confidence (``SelfLimitingProposer``, as a draft model does).
/// - **Pruning.** Each returned node gets the value `v` = product of calibrated acceptance along
///   its path; the policy keeps the n best nodes (parents before children) with n maximising
///   `(1 + Σ v) / t(n+1)`, and sends nothing unless that beats a plain step by 4%. With sampled drafts (stochastic verification) values may not decide
///   which nodes survive — that would bias the output — so then only the depth limit from the
///   statistics is applied, in proposal order.
public final class AutoProposer: DraftProposer {
    public let name = "auto"
    /// The proposers the policy chooses from.
    public let members: [any DraftProposer]
    /// The target's verification cost curve the policy prices trees with (reported by
    /// `speculate bench`: a curve measured while the machine was busy shows as too steep or too flat).
    public let verificationCost: VerificationCost
    private let state: Mutex<PolicyState>

    /// A policy over `members` with the target's measured verification cost.
    ///
    /// - Parameters:
    ///   - members: the proposers to choose from each step.
    ///   - verificationCost: the target's measured t(n)/t(1) curve and one-token time.
    ///   - cheapFraction: members whose drafting costs less than this fraction of a target
    ///     step per drafted depth are asked every step (their drafts are still pruned); costlier
    ///     ones must earn their place by measured tokens per second, against each step's
    ///     counterfactual without them (greedy) or against steps without them (sampled).
    ///     1 treats every member as cheap.
    public init(members: [any DraftProposer], verificationCost: VerificationCost, cheapFraction: Double = 0.02) {
        self.members = members
        self.verificationCost = verificationCost
        state = Mutex(PolicyState(members: members.count, cost: verificationCost, cheapFraction: cheapFraction,
                                  selfLimiting: members.map { ($0 as? any SelfLimitingProposer)?.stopsWhenUnsure ?? false }))
    }

    /// What the policy has learned so far (for reports and tests).
    public var snapshot: AutoPolicySnapshot { state.withLock { $0.snapshot(names: members.map(\.name)) } }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let clock = ContinuousClock()
        let started = clock.now
        let plan = state.withLock { $0.plan(budget: context.budget, sampling: !context.sampling.isGreedy) }
        var returned: [(member: Int, candidate: DraftCandidate)] = []
        for (member, depth) in plan {
            var memberContext = context
            memberContext.budget.maxDepth = depth
            memberContext.budget.maxNodes = min(context.budget.maxNodes, max(depth, context.budget.branching.isEmpty ? depth * 3 : context.budget.maxNodes))
            let start = clock.now
            // A failing member only loses its draft this step; the others still count. The failure
            // is kept for the report (the decoder sees only `auto`).
            let candidates: [DraftCandidate]
            do {
                candidates = try await members[member].propose(memberContext)
            } catch {
                candidates = []
                state.withLock { $0.recordFailure(member: member, String(describing: error)) }
            }
            let seconds = (clock.now - start).components
            let elapsed = Double(seconds.seconds) + Double(seconds.attoseconds) / 1e18
            let valid = candidates.filter { $0.isWellFormed && $0.tokens.count <= memberContext.budget.maxNodes }
            state.withLock { $0.recordDraftTime(member: member, seconds: elapsed, depth: valid.map(Self.depth).max() ?? 0, asked: depth) }
            // Each draft keeps its member's name (or the member's own origin, for nested composites).
            let name = members[member].name
            returned += valid.map { candidate in
                var named = candidate
                named.origin = candidate.origin ?? name
                return (member, named)
            }
        }
        return state.withLock { $0.select(returned, budget: context.budget, draftStarted: started, now: clock.now) }
    }

    public func prepare(prompt: [Token]) async throws {
        for (index, member) in members.enumerated() {
            do { try await member.prepare(prompt: prompt) } catch {
                state.withLock { $0.recordFailure(member: index, "reading the prompt: \(error)") }
            }
        }
    }

    public func observe(accepted: [Token], context: [Token]) async {
        state.withLock { $0.learn(accepted: accepted, now: ContinuousClock().now) }
        for member in members { await member.observe(accepted: accepted, context: context) }
    }

    static func depth(_ candidate: DraftCandidate) -> Int { candidate.nodeDepths.max() ?? 0 }
}

extension DraftCandidate {
    /// Each node's depth (1 under the root); parents come before their children.
    var nodeDepths: [Int] {
        var depths: [Int] = []
        depths.reserveCapacity(parents.count)
        for parent in parents { depths.append(parent < 0 ? 1 : depths[parent] + 1) }
        return depths
    }

    /// Each node judged against the target's tokens along the path it accepted (`accepted`, its
    /// own token last): `reached` when the node's parent path equals the accepted prefix, `hit`
    /// when it is reached and its token is the target's at its depth (it would have been accepted).
    func judged(along accepted: [Token]) -> [(depth: Int, reached: Bool, hit: Bool)] {
        var result: [(depth: Int, reached: Bool, hit: Bool)] = []
        result.reserveCapacity(tokens.count)
        for (index, depth) in nodeDepths.enumerated() {
            let parent = parents[index]
            let reached = (parent < 0 || result[parent].hit) && depth <= accepted.count
            result.append((depth, reached, reached && accepted[depth - 1] == tokens[index]))
        }
        return result
    }
}

/// What ``AutoProposer`` has learned: per member, the measured drafting cost and acceptance.
public struct AutoPolicySnapshot: Sendable {
    /// One member's figures.
    public struct Member: Sendable {
        /// The member's name.
        public var name: String
        /// Steps it was asked.
        public var asked: Int
        /// Seconds per drafted depth (moving average).
        public var secondsPerDepth: Double
        /// Smoothed acceptance probability at depths 1, 2, … (given the parent was accepted).
        public var acceptanceByDepth: [Double]
        /// Realized tokens per second of steps that asked this member (costly members only; 0 if none).
        public var tokensPerSecond: Double
        /// Calls that threw.
        public var failures: Int
        /// The newest error's text, if any call threw.
        public var lastError: String?
    }
    /// The members.
    public var members: [Member]
    /// Realized tokens per second of steps that asked no costly member (0 if none).
    public var baseTokensPerSecond: Double
    /// The one-token target step time in use, seconds.
    public var stepSeconds: Double
    /// Steps where the policy sent no draft at all.
    public var plainSteps: Int
    /// All steps.
    public var steps: Int
}

/// Beta-smoothed success counts.
struct Rate {
    var successes = 0.0
    var trials = 0.0
    func estimate(prior: Double, weight: Double = 2) -> Double { (successes + prior * weight) / (trials + weight) }
    mutating func add(_ success: Bool) { trials += 1; if success { successes += 1 } }
}

/// An exponential moving average of a rate, with its sample count.
struct MovingRate {
    var value = 0.0
    var samples = 0
    mutating func add(_ rate: Double, weight: Double = 0.15) {
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
    /// Each step back weighs this much less.
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

/// The policy's mutable state (guarded by the proposer's mutex). Package access so that tests can
/// drive it step by step with synthetic timings.
package struct PolicyState {
    static let depthSlots = 8
    static let confidenceBuckets = 5
    /// An expensive member idle this many steps is explored again (the pause doubles each time).
    static let explorationInterval = 32
    /// Calls per exploration burst.
    static let burstLength = 3
    /// A costly member must beat plain steps by this factor in realized tokens per second.
    static let requiredAdvantage = 1.05
    /// A tree is sent only when its expected tokens per unit of verification cost beat a plain
    /// step by this factor: the estimate leaves out per-step overheads and both of its inputs are
    /// noisy, and a tree that merely breaks even made `auto` measurably slower than plain decoding
    /// once plain steps got cheaper relative to small trees (0.94x on 20 prompts, session 4).
    static let minimumTreeGain = 1.04
    /// While a costly member is in use, every this-many-th step goes without it.
    static let baselineRefresh = 8
    /// ... and every this-many-th step once it beats plain steps by `clearAdvantage`: each step
    /// without a draft that pays this well costs more than the fresher figure is worth
    /// (HumanEval-20, session 12: `auto` + draft 1.55x against the draft chain's 1.69x, with the
    /// refresh steps yielding ~1.7 tokens instead of ~4.6).
    static let clearAdvantageRefresh = 32
    static let clearAdvantage = 1.25
    /// Paired steps (a costly member's steps against their counterfactual) needed before they
    /// decide; the advantage a paused member must show to come back, and the one below which a
    /// member in use is left (session 13, `auto` + draft: HumanEval-20 2.95 tokens per forward
    /// with 0.85, 2.67 when leaving at 1.0; chat-12 1.73 against 1.56 without pairing).
    static let pairedEvidence = 6
    static let requiredPairedAdvantage = 1.0
    static let pairedStopBelow = 0.85

    let cost: VerificationCost
    /// Members cheaper than this fraction of a target step per depth are always asked.
    let cheapFraction: Double
    /// Members that end their drafts on their own confidence (``SelfLimitingProposer``): in use,
    /// they are asked for the budget's full depth. `bestDepth` prices each drafted token at the
    /// member's average acceptance, so it cut the 0.5B draft at depth 3 where its own stop, which
    /// knows when it is sure, went 7-8 deep on code (session 14, corrected cost curve: HumanEval-20
    /// 1.80x against 1.74x, 4.54 tokens per forward against 2.97).
    let selfLimiting: [Bool]
    var stepSeconds: Double
    var secondsPerDepth: [Double]
    var timed: [Bool]
    var byDepth: [[Rate]]
    var byConfidence: [[[Rate]]]
    var asked: [Int]
    var lastAsked: [Int]
    /// Whether this step's call follows one on the previous step.
    var steady: [Bool]
    var measuredSteady: [Bool]
    /// Steps left in an exploration burst, and the pause before the next one (doubling while
    /// exploration keeps finding nothing).
    var burst: [Int]
    var explorationInterval: [Int]
    var steps = 0
    var plainSteps = 0
    /// The draft sent this step: every returned node (sent or pruned) for learning afterwards.
    var outstanding: [(member: Int, candidate: DraftCandidate)] = []
    var sentNodes = 0
    var sentAt: ContinuousClock.Instant?
    var draftSeconds = 0.0
    /// Costly members asked this step.
    var askedCostly: [Int] = []
    /// Tokens per second of steps without any costly member, and of steps with each one.
    var baseRate = MovingRate()
    var costlyRate: [MovingRate]
    /// Each costly member's steps against their counterfactual without it (greedy steps only).
    var paired: [PairedRate]
    /// Whether the drafts of this step were sampled, and the budget they were pruned to.
    var sampledStep = false
    var lastBudget = TreeBudget()
    /// Whether a member's current call is the first of an exploration burst.
    var catchingUp: [Bool]
    var failures: [Int]
    var lastError: [String?]

    package init(members: Int, cost: VerificationCost, cheapFraction: Double, selfLimiting: [Bool] = []) {
        self.cost = cost
        self.cheapFraction = cheapFraction
        self.selfLimiting = (0..<members).map { $0 < selfLimiting.count && selfLimiting[$0] }
        stepSeconds = cost.oneTokenSeconds > 0 ? cost.oneTokenSeconds : 0.05
        secondsPerDepth = Array(repeating: 0, count: members)
        timed = Array(repeating: false, count: members)
        byDepth = Array(repeating: Array(repeating: Rate(), count: Self.depthSlots), count: members)
        byConfidence = Array(repeating: Array(repeating: Array(repeating: Rate(), count: Self.confidenceBuckets), count: Self.depthSlots), count: members)
        asked = Array(repeating: 0, count: members)
        lastAsked = Array(repeating: -1000, count: members)
        steady = Array(repeating: false, count: members)
        measuredSteady = Array(repeating: false, count: members)
        burst = Array(repeating: 0, count: members)
        costlyRate = Array(repeating: MovingRate(), count: members)
        paired = Array(repeating: PairedRate(), count: members)
        catchingUp = Array(repeating: false, count: members)
        failures = Array(repeating: 0, count: members)
        lastError = Array(repeating: nil, count: members)
        explorationInterval = Array(repeating: Self.explorationInterval, count: members)
    }

    /// P(a node at `depth` is accepted | its parent was), from the member's depth statistics.
    /// A depth's prior is the estimate one level up (0.5 at depth 1): acceptance changes slowly
    /// with depth, and a flat prior kept depths never sent at 0.5, so a chain that was accepted
    /// at 0.95 up to depth 3 was never sent deeper and never learned otherwise (session 8:
    /// `auto` cut the 0.5B draft at depth 3-4 where the draft alone accepted 7.6 tokens per forward).
    func depthAcceptance(_ member: Int, _ depth: Int) -> Double {
        var estimate = 0.5
        for level in 0..<min(depth, Self.depthSlots) { estimate = byDepth[member][level].estimate(prior: estimate) }
        return estimate
    }

    /// The best chain depth for a member and its rate gain over plain decoding (> 1 pays).
    func bestDepth(_ member: Int, limit: Int) -> (depth: Int, gain: Double) {
        var best = (depth: 0, gain: 1.0)
        var survival = 1.0, expected = 0.0
        for depth in stride(from: 1, through: limit, by: 1) {
            survival *= depthAcceptance(member, depth)
            expected += survival
            let seconds = stepSeconds * cost.relativeCost(1 + depth) + secondsPerDepth[member] * Double(depth)
            let gain = (1 + expected) / seconds * stepSeconds
            if gain > best.gain { best = (depth, gain) }
        }
        return best
    }

    /// Which members to ask this step, and how deep.
    /// With `sampling`, every member is asked every step at full depth: which drafts exist must not
    /// hinge on timings or realized rates there (a CI run under heavy load, where timings moved
    /// members onto the costly path, failed the chi-square test once, p = 0.0003; not explained yet).
    package mutating func plan(budget: TreeBudget, sampling: Bool = false) -> [(member: Int, depth: Int)] {
        steps += 1
        let limit = min(budget.maxDepth, Self.depthSlots, budget.maxNodes)
        guard limit > 0 else { return [] }
        var asks: [(member: Int, depth: Int)] = []
        for member in secondsPerDepth.indices {
            let cheap = sampling || (timed[member] && secondsPerDepth[member] < cheapFraction * stepSeconds)
            let (depth, gain) = bestDepth(member, limit: limit)
            if !timed[member] && !sampling {
                asks.append((member, min(limit, 2)))  // first contact: measure its cost
                continue
            }
            if cheap {
                asks.append((member, limit))  // free to ask; pruning decides what is sent
                continue
            }
            // A costly member (a draft model) is judged by evidence, drafting included; the
            // model-based gain only decides whether it is worth trying before there is any.
            // With greedy drafts every step that asks it is paired with what the same step would
            // have given without it (counterfactual, see `learn`): no step has to go without it
            // to keep the comparison fresh. Otherwise separate steps with and without it are compared.
            let pairedEvidence = paired[member].samples >= Self.pairedEvidence
            let evidence = pairedEvidence || (costlyRate[member].samples >= 3 && baseRate.samples >= 3)
            let advantage = pairedEvidence ? paired[member].advantage
                : evidence ? costlyRate[member].value / baseRate.value : gain
            // Hysteresis for paired evidence: a member in use stays until it is clearly behind
            // (stretches where lookup alone does as well come and go within a prompt, and each
            // return costs a catch-up), one paused must show a gain to come back.
            let inUse = lastAsked[member] == steps - 1
            let required = pairedEvidence ? (inUse ? Self.pairedStopBelow : Self.requiredPairedAdvantage) : Self.requiredAdvantage
            let pays = evidence ? advantage > required : gain > 1.02
            let refresh = pairedEvidence ? Int.max : evidence && advantage > Self.clearAdvantage ? Self.clearAdvantageRefresh : Self.baselineRefresh
            if burst[member] > 0 {
                burst[member] -= 1
                asks.append((member, max(1, min(limit, depth > 0 ? depth : 2))))
            } else if pays && !(costlyRate[member].samples >= 3 && baseRate.samples < 3 && !pairedEvidence)
                        && steps % refresh != 0 {
                // In use; without paired evidence every `baselineRefresh`-th step goes without it,
                // so that the comparison is against a fresh figure for plain steps on the same text.
                asks.append((member, selfLimiting[member] ? limit : max(1, depth)))
                explorationInterval[member] = Self.explorationInterval
            } else if !pays && steps - lastAsked[member] >= explorationInterval[member] {
                // Exploration comes in short bursts: the first call of a burst pays for catching the
                // member up on the tokens it missed and is not counted; the later ones measure its rate.
                burst[member] = Self.burstLength - 1
                // Back off faster when the evidence says it is clearly worse than plain steps.
                let clearlyWorse = evidence && advantage < 0.9
                explorationInterval[member] = min(explorationInterval[member] * (clearlyWorse ? 4 : 2), 4096)
                catchingUp[member] = true
                asks.append((member, max(1, min(limit, depth > 0 ? depth : 2))))
            }
        }
        askedCostly = asks.map(\.member).filter { timed[$0] && secondsPerDepth[$0] >= cheapFraction * stepSeconds }
        for (member, _) in asks {
            asked[member] += 1
            steady[member] = lastAsked[member] == steps - 1
            lastAsked[member] = steps
        }
        return asks
    }

    /// Updates a member's cost per drafted depth. Only calls that follow a call on the previous
    /// step count once a first figure exists: a member asked after a pause must first absorb
    /// every token it missed, which says nothing about what drafting costs while in use.
    package mutating func recordDraftTime(member: Int, seconds: Double, depth: Int, asked: Int) {
        let perDepth = seconds / Double(max(1, depth))
        if !timed[member] {
            secondsPerDepth[member] = perDepth
            timed[member] = true
        } else if steady[member] {
            secondsPerDepth[member] = measuredSteady[member] ? 0.8 * secondsPerDepth[member] + 0.2 * perDepth : perDepth
            measuredSteady[member] = true
        }
    }

    mutating func recordFailure(member: Int, _ message: String) {
        failures[member] += 1
        lastError[member] = message
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func bucket(_ confidence: Float) -> Int {
        guard confidence.isFinite else { return 0 }
        return min(confidenceBuckets - 1, max(0, Int(confidence * Float(confidenceBuckets))))
    }

    /// Each node's own confidence: its score relative to its parent's (path scores become
    /// per-token probabilities), clamped to [0, 1].
    static func confidences(_ candidate: DraftCandidate) -> [Float] {
        candidate.scores.enumerated().map { index, score in
            let parent = candidate.parents[index]
            let own = parent < 0 ? score : (candidate.scores[parent] > 0 ? score / candidate.scores[parent] : 0)
            return own.isFinite ? min(1, max(0, own)) : 0
        }
    }

    /// Calibrated acceptance of one node given its parent: the confidence bucket's rate, backed
    /// by the depth rate as a prior.
    func nodeAcceptance(member: Int, depth: Int, confidence: Float) -> Double {
        let slot = min(depth, Self.depthSlots) - 1
        return byConfidence[member][slot][Self.bucket(confidence)].estimate(prior: depthAcceptance(member, depth), weight: 3)
    }

    /// Chooses the nodes to send and remembers the whole draft for learning.
    package mutating func select(_ drafts: [(member: Int, candidate: DraftCandidate)], budget: TreeBudget,
                         draftStarted: ContinuousClock.Instant, now: ContinuousClock.Instant) -> [DraftCandidate] {
        outstanding = drafts
        sentAt = now
        draftSeconds = Self.seconds(now - draftStarted)
        lastBudget = budget
        sampledStep = drafts.contains { $0.candidate.distributions.contains { if case .sampled = $0 { return true } else { return false } } }
        let result = prune(drafts, budget: budget, sampled: sampledStep)
        sentNodes = result.reduce(0) { $0 + $1.tokens.count }
        if result.isEmpty { plainSteps += 1 }
        return result
    }

    /// The nodes worth sending out of `drafts`: the n best by value with n maximising expected
    /// tokens per unit of verification cost, or none unless that beats a plain step.
    func prune(_ drafts: [(member: Int, candidate: DraftCandidate)], budget: TreeBudget, sampled: Bool) -> [DraftCandidate] {
        guard !drafts.isEmpty else { return [] }
        // Every node's value: product of calibrated acceptance along its path.
        var nodes: [(draft: Int, node: Int, value: Double, depth: Int)] = []
        for (draftIndex, draft) in drafts.enumerated() {
            let confidence = Self.confidences(draft.candidate)
            var values: [Double] = []
            for (index, depth) in draft.candidate.nodeDepths.enumerated() {
                let parent = draft.candidate.parents[index]
                let value = (parent < 0 ? 1 : values[parent])
                    * (sampled ? depthAcceptance(draft.member, depth) : nodeAcceptance(member: draft.member, depth: depth, confidence: confidence[index]))
                values.append(value)
                nodes.append((draftIndex, index, value, depth))
            }
        }
        // Order: by value (parents never lose to children: values only shrink along a path), or in
        // proposal order when values may not decide.
        let order = sampled ? Array(nodes.indices)
            : nodes.indices.sorted { (nodes[$0].value, -nodes[$0].depth) > (nodes[$1].value, -nodes[$1].depth) }
        var bestCount = 0, bestRate = Self.minimumTreeGain, expected = 0.0
        for (rank, position) in order.prefix(budget.maxNodes).enumerated() {
            expected += nodes[position].value
            let rate = (1 + expected) / cost.relativeCost(rank + 2)
            if rate > bestRate { bestRate = rate; bestCount = rank + 1 }
        }
        guard bestCount > 0 else { return [] }
        var keep = Set<Int>()
        for position in order.prefix(bestCount) { keep.insert(position) }
        // Rebuild each draft from its kept nodes; a node whose parent was dropped goes too.
        var result: [DraftCandidate] = []
        var position = 0
        for draft in drafts {
            var remap: [Int: Int] = [:]
            var kept = DraftCandidate(tokens: [], parents: [], distributions: [], scores: [], origin: draft.candidate.origin)
            for index in draft.candidate.tokens.indices {
                defer { position += 1 }
                let parent = draft.candidate.parents[index]
                guard keep.contains(position), parent < 0 || remap[parent] != nil else { continue }
                remap[index] = kept.tokens.count
                kept.tokens.append(draft.candidate.tokens[index])
                kept.parents.append(parent < 0 ? -1 : remap[parent]!)
                kept.distributions.append(draft.candidate.distributions[index])
                kept.scores.append(Float(nodes[position].value))
            }
            if !kept.tokens.isEmpty { result.append(kept) }
        }
        return result
    }

    /// Tokens a step would have yielded had it sent `drafts`, given the target's tokens along the
    /// path it did accept (`accepted`, its own token last): the deepest node matching that path,
    /// plus the target's token after it. Exact when that node is shallower than `accepted`, else a
    /// lower bound (what the target would have said beyond is unknown).
    package static func counterfactualTokens(_ drafts: [DraftCandidate], accepted: [Token]) -> Int {
        let deepest = drafts.flatMap { $0.judged(along: accepted) }.filter(\.hit).map(\.depth).max() ?? 0
        return deepest + 1
    }

    /// Learns from the step's outcome: `accepted` is the accepted drafts followed by the target's token.
    package mutating func learn(accepted: [Token], now: ContinuousClock.Instant) {
        defer { outstanding = []; sentAt = nil; askedCostly = [] }
        if let sentAt {
            let seconds = Self.seconds(now - sentAt)
            let oneToken = seconds / cost.relativeCost(1 + sentNodes)
            if oneToken > 0, oneToken.isFinite { stepSeconds = 0.9 * stepSeconds + 0.1 * oneToken }
            // Realized rate of this step, drafting included: the evidence costly members are judged by.
            let rate = Double(accepted.count) / max(1e-6, seconds + draftSeconds)
            if askedCostly.isEmpty {
                baseRate.add(rate)
            } else {
                // Every step that used the member counts, catch-ups after a new prompt included (they
                // are part of what using it costs); only the first call of an exploration burst does not.
                for member in askedCostly where !catchingUp[member] { costlyRate[member].add(rate) }
                if !sampledStep { pairWithCounterfactual(accepted: accepted) }
                for member in askedCostly { catchingUp[member] = false }
            }
        }
        // A node is "reached" when its parent path equals the accepted prefix; it would have been
        // accepted when its token equals the token the target emitted at its depth.
        for (member, candidate) in outstanding {
            let confidence = Self.confidences(candidate)
            for (index, node) in candidate.judged(along: accepted).enumerated() where node.reached && node.depth <= Self.depthSlots {
                byDepth[member][node.depth - 1].add(node.hit)
                byConfidence[member][node.depth - 1][Self.bucket(confidence[index])].add(node.hit)
            }
        }
    }

    /// Pairs this step (which asked costly members) with what it would have given without them:
    /// the cheap members' drafts, pruned as they would have been alone, judged against the
    /// target's tokens. Both sides are timed by the verification cost model (plus this step's
    /// measured drafting), so the host's step-to-step noise cancels out of the comparison.
    mutating func pairWithCounterfactual(accepted: [Token]) {
        let cheapDrafts = outstanding.filter { !askedCostly.contains($0.member) }
        let alone = prune(cheapDrafts, budget: lastBudget, sampled: false)
        let baseNodes = alone.reduce(0) { $0 + $1.tokens.count }
        let baseTokens = Double(Self.counterfactualTokens(alone, accepted: accepted))
        let baseSeconds = stepSeconds * cost.relativeCost(1 + baseNodes)
        let seconds = stepSeconds * cost.relativeCost(1 + sentNodes) + draftSeconds
        for member in askedCostly where !catchingUp[member] {
            paired[member].add(tokens: Double(accepted.count), seconds: seconds, baseTokens: baseTokens, baseSeconds: baseSeconds, step: steps)
        }
    }

    func snapshot(names: [String]) -> AutoPolicySnapshot {
        AutoPolicySnapshot(
            members: names.indices.map { member in
                AutoPolicySnapshot.Member(name: names[member], asked: asked[member], secondsPerDepth: secondsPerDepth[member],
                                          acceptanceByDepth: (1...Self.depthSlots).map { depthAcceptance(member, $0) },
                                          tokensPerSecond: costlyRate[member].value, failures: failures[member],
                                          lastError: lastError[member])
            },
            baseTokensPerSecond: baseRate.value, stepSeconds: stepSeconds, plainSteps: plainSteps, steps: steps)
    }
}
