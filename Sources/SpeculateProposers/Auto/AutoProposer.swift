import SpeculateCore
import Synchronization

/// The `auto` strategy: a proposer that owns other proposers and decides, every step, which of
/// them to ask, how deep, and which of their nodes to send to the target, so that expected
/// accepted tokens per second is highest — including sending nothing when nothing pays.
///
/// The policy (Sequoia's objective, with EAGLE-2's confidence-driven tree growth):
/// - **Cost model.** Verifying a tree of n nodes costs `step · t(n+1)` where `t` is the target's
///   verification cost curve and `step` the one-token forward time: seeded by the measured
///   ``VerificationCost`` curve, then learned from the time between proposing and the next
///   `observe`, per tree size (`LearnedVerificationCost`); member m costs `c_m` seconds per
///   drafted depth (measured live, an exponential moving average).
/// - **Acceptance model.** For every member, depth and confidence bucket (a node's own
///   probability as the member reports it), Beta-smoothed counts of how often a node whose parent
///   was accepted is accepted. Nodes the policy pruned are still scored afterwards against what
///   the target chose, so pruning does not starve the statistics.
/// - **Asking.** Members that cost almost nothing (n-gram lookup, most plugins) are asked every
///   step for a full-depth draft. A costly member (a draft model) with greedy drafts is used from
///   the start, and each step that asks it is paired with its counterfactual: what the cheap
///   members' drafts alone, pruned alone, would have yielded given the target's tokens, both
///   sides' verification timed by the cost model and the step's measured drafting added to its
///   own side. After six pairs, the discounted sums of the last ~50 pairs decide (a pause fades
///   them slowly): it stays while it reaches 0.85 of its counterfactual and, once paused, must
///   beat it to come back. With sampled decoding every member is asked every step. A member
///   whose drafts are sampled while decoding is greedy (a plugin may draft that way) has no
///   counterfactual: it is tried when its best chain depth d makes
///   `(1 + G_m(d)) / (t(1+d) + c_m · d / step)` exceed 1.02, with `G_m(d)` the expected accepted
///   length from its depth statistics (Sequoia's objective with the drafting term), and then the
///   realized tokens per second of steps that asked it must beat steps that asked no costly
///   member by 5% (every 8th step going without it to keep that figure fresh; every 32nd once it
///   is ahead by 25%). When it does not pay it is explored in bursts of three steps, the pause
///   between bursts doubling (32, 64, 128, … steps; quadrupling when it is clearly worse). While
///   in use it is asked for depth d, or for the budget's full depth when it ends its drafts on its
///   own confidence (``SelfLimitingProposer``, as a draft model does).
/// - **Pruning.** Each returned node gets the value `v` = product of calibrated acceptance along
///   its path; the policy keeps the n best nodes (parents before children) with n maximising
///   `(1 + Σ v) / (t(n+1) + D)`, D the step's drafting in one-token steps (every step pays it, so
///   trees that yield more save it), among the n whose `(1 + Σ v) / t(n+1)` beats a plain step by
///   4% (none when no n does). A self-limiting member's chain goes first (`auto` contains the
///   draft chain), and the runner-up it offers beside each of its tokens when asked (greedy
///   decoding) is priced by how its runner-ups of that confidence fared; another member's node
///   beside one of its nodes is valued by how such nodes fared there; nodes on a path already
///   counted cost nothing. With sampled drafts (stochastic verification)
///   values may not decide which nodes survive — that would bias the output — so then only the
///   depth statistics set the values, nodes go in proposal order (a self-limiting member's drafts
///   whole, the others' count priced with them at their worst-case size), and D is that of
///   earlier steps (a step's own drafting time follows its sampled tokens).
public final class AutoProposer: DraftProposer {
    public let name = "auto"
    /// The proposers the policy chooses from.
    public let members: [any DraftProposer]
    /// The target's measured verification cost curve the policy starts from (reported by
    /// `speculate bench` beside the curve learned since, ``AutoPolicySnapshot/verificationCost``).
    public let verificationCost: VerificationCost
    private let state: Mutex<PolicyState>
    /// Which members end their own drafts (``SelfLimitingProposer``): their chains go out whole.
    private let selfLimiting: [Bool]

    /// Members that draft a depth for less than this fraction of a target step are cheap by
    /// default: asked every step at full depth (n-gram lookup, most plugins), pruning deciding
    /// what is sent; a draft model costs ~0.3 of a target step per depth here, lookup ~0.001.
    public static let defaultCheapFraction = 0.02

    /// A policy over `members` with the target's measured verification cost.
    ///
    /// - Parameters:
    ///   - members: the proposers to choose from each step.
    ///   - verificationCost: the target's measured t(n)/t(1) curve and one-token time.
    ///   - learnsVerificationCost: whether the curve is only the start, corrected by the times
    ///     of the verifications the decoder runs (the default), or the prices for good (for a
    ///     target whose real cost the times do not show, as a simulated one in a test).
    ///   - cheapFraction: members whose drafting costs less than this fraction of a target
    ///     step per drafted depth are asked every step (their drafts are still pruned); costlier
    ///     ones must earn their place by measured tokens per second, against each step's
    ///     counterfactual without them (greedy) or against steps without them (sampled).
    ///     1 treats every member as cheap.
    public init(
        members: [any DraftProposer], verificationCost: VerificationCost, cheapFraction: Double = defaultCheapFraction,
        learnsVerificationCost: Bool = true
    ) {
        self.members = members
        self.verificationCost = verificationCost
        selfLimiting = members.map { ($0 as? any SelfLimitingProposer)?.stopsWhenUnsure ?? false }
        state = Mutex(
            PolicyState(
                members: members.count, cost: verificationCost, cheapFraction: cheapFraction,
                learnsCost: learnsVerificationCost, selfLimiting: selfLimiting))
    }

    /// What the policy has learned so far (for reports and tests).
    public var snapshot: AutoPolicySnapshot { state.withLock { $0.snapshot(names: members.map(\.name)) } }

    public func propose(_ context: DraftContext) async throws -> [DraftCandidate] {
        let clock = ContinuousClock()
        let started = clock.now
        let plan = state.withLock {
            $0.plan(
                budget: context.budget, sampling: !context.sampling.isGreedy, load: context.concurrentTokens,
                plainLoad: context.concurrentPlainTokens, drafters: drafters)
        }
        var returned: [(member: Int, candidate: DraftCandidate)] = []
        for (member, depth) in plan {
            var memberContext = context
            memberContext.budget.maxDepth = depth
            if selfLimiting[member] && context.sampling.isGreedy {
                memberContext.runnersUp = AutoTuning.runnersUp
            }
            memberContext.budget.maxNodes = min(
                context.budget.maxNodes,
                max(depth, context.budget.branching.isEmpty ? depth * 3 : context.budget.maxNodes))
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
            state.withLock {
                $0.recordDraftTime(
                    member: member, seconds: elapsed, depth: valid.map(Self.depth).max() ?? 0, asked: depth)
            }
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
        try await prepare(prompt: prompt, concurrentTokens: 0)
    }

    /// Under load (other requests share the target's forwards) a costly member whose cost is
    /// known and whose forwards are its own is not asked while the load lasts (the shared-forward
    /// pricing rarely lets it pay), so its prompt is left unread: reading it would hold up every
    /// other request, and a member asked later catches up in its first call. A draft model whose
    /// forwards are shared with the other requests' reads its prompt in them.
    public func prepare(prompt: [Token], concurrentTokens: Int) async throws {
        let shared = drafters.map { $0 > AutoTuning.sharedDraftMostPlainLoad + 1 ? 1 : $0 }
        let skipped = Set(
            concurrentTokens > 0
                ? state.withLock { state in
                    members.indices.filter { state.members[$0].costMeasured && !state.isCheap($0) && shared[$0] == 1 }
                } : [])
        for (index, member) in members.enumerated() where !skipped.contains(index) {
            do { try await member.prepare(prompt: prompt, concurrentTokens: concurrentTokens) } catch {
                state.withLock { $0.recordFailure(member: index, "reading the prompt: \(error)") }
            }
        }
    }

    /// Per member, the decoding loops sharing its forwards (1 for all but draft models in a
    /// server slot's lane).
    private var drafters: [Int] { members.map { ($0 as? DraftModelProposer)?.drafters ?? 1 } }

    public func observe(accepted: [Token], context: [Token]) async {
        state.withLock { $0.learn(accepted: accepted, now: ContinuousClock().now) }
        for member in members { await member.observe(accepted: accepted, context: context) }
    }

    static func depth(_ candidate: DraftCandidate) -> Int { candidate.nodeDepths.max() ?? 0 }
}
