/// The `auto` policy's constants, each with the reason for its value (figures from HumanEval-20
/// and chat-12 on the project's 2-vCPU Zen 4 hosts; the history is in Docs/History.md).
enum AutoTuning {
    // MARK: Acceptance model

    /// Depths with statistics of their own; deeper nodes share the last slot's.
    static let depthSlots = 8
    /// Confidence buckets per depth (a node's own probability, as its member reports it).
    static let confidenceBuckets = 5
    /// Prior acceptance at depth 1; each deeper depth's prior is the estimate one level up, so a
    /// chain accepted at 0.95 up to depth 3 is priced as likely to go on (a flat 0.5 prior kept
    /// depths never sent at 0.5, and the 0.5B draft was cut at depth 3 where alone it accepted
    /// 7.6 tokens per forward).
    static let firstDepthPrior = 0.5
    /// Pseudo-trials of a depth's prior.
    static let depthPriorWeight = 2.0
    /// Pseudo-trials of the depth estimate behind a confidence bucket: buckets fill slowly.
    static let confidencePriorWeight = 3.0
    /// Pseudo-trials of the prior behind a node beside a self-limiting member's node: the prior
    /// (independence of the two members) is a guess, so a few steps' evidence should outweigh it.
    static let besidePriorWeight = 4.0
    /// Runner-up leaves asked of a self-limiting member per drafted position, with greedy
    /// decoding: the draft's second choice is often the target's where its first is not, it
    /// costs no drafting, and a tree of up to four tokens verifies at about the price of one
    /// (the pricing sends it only where it pays).
    static let runnersUp = 1

    // MARK: Pricing

    /// A tree is sent only when its expected tokens per unit of verification cost beat a plain
    /// step by this factor: the estimate leaves out per-step overheads and both of its inputs are
    /// noisy, and a tree that merely broke even made `auto` measurably slower than plain decoding
    /// (0.94x on 20 prompts) once plain steps got cheaper relative to small trees.
    static let minimumTreeGain = 1.04
    /// Most drafting a step's pricing counts, in one-token steps: a member catching up on a
    /// prompt or after a pause drafts for longer than a step in use, which says nothing about
    /// the steps to come (the 0.5B draft in use: 0.5–1 step of drafting per step).
    static let largestDraftCost = 1.5
    /// Weight of the newest verification time (of the one-token time inferred from it, and of the
    /// time learned for its size): an average over ~10 steps, so that one slow step does not
    /// reprice every tree.
    static let stepTimeWeight = 0.1
    /// The one-token time assumed when the cost curve has none.
    static let fallbackStepSeconds = 0.05

    // MARK: Members and their cost

    /// Depth asked of a member on first contact: enough to time it, little to waste.
    static let firstContactDepth = 2
    /// Weight of the newest drafting time per depth, once steady calls are measured.
    static let draftTimeWeight = 0.2

    // MARK: Costly members: trying, evidence, exploring

    /// A costly member whose drafts are sampled while the decoding is greedy (a plugin may draft
    /// that way; with sampled decoding every member is asked anyway) has no counterfactual to be
    /// paired with. Before any evidence it is tried when its modelled gain (Sequoia's objective
    /// with the drafting term) reaches this: a little above break-even, as the model is optimistic.
    static let trialGain = 1.02
    /// Steps that asked such a member must beat steps that asked none by this factor in realized
    /// tokens per second.
    static let requiredAdvantage = 1.05
    /// Weight of the newest step in a realized tokens-per-second average (steps vary a lot: an
    /// average over ~7 of them).
    static let realizedRateWeight = 0.15
    /// Samples of each side before realized rates count as evidence.
    static let rateEvidence = 3
    /// Paired steps (a costly member's steps against their counterfactual without it) needed
    /// before they decide.
    static let pairedEvidence = 6
    /// Each pair weighs this fraction of the next one's weight (about 50 pairs in view): long
    /// enough that one stretch of unlucky steps does not pause a draft that pays on the whole
    /// (chat steps gain 0–3 tokens each), short enough to follow a change of workload within a
    /// few prompts while the member is in use ...
    static let pairedEvidenceKeep = 0.98
    /// ... and every step without a pair (a pause) this much again: a pause of 256 steps keeps
    /// 60% of the evidence, one of 2,048 keeps 2%, so a member paused long ago is judged afresh.
    static let pausedStepKeep = 0.998
    /// The paired advantage a paused member must show to come back ...
    static let requiredPairedAdvantage = 1.0
    /// ... and the one below which a member in use is left: lookup alone does as well as the
    /// draft over stretches of code, and leaving at 1.0 cost a catch-up on each return
    /// (HumanEval-20: 2.95 tokens per forward with 0.85, 2.67 when leaving at 1.0).
    static let pairedStopBelow = 0.85
    /// For such a member in use, every this-many-th step goes without it, to keep the figure for
    /// steps without it fresh ...
    static let baselineRefresh = 8
    /// ... and every this-many-th once it beats them by `clearAdvantage`: each step without a draft
    /// that pays this well costs more than the fresher figure is worth (HumanEval-20: `auto` +
    /// draft 1.55x against the chain's 1.69x when refreshing every 8th step).
    static let clearAdvantageRefresh = 32
    static let clearAdvantage = 1.25
    /// An idle costly member is explored again after this many steps ...
    static let explorationInterval = 32
    /// ... in bursts of this many calls (the first catches up on missed tokens and is not counted) ...
    static let burstLength = 3
    /// ... with the pause doubling after each fruitless burst, quadrupling when the evidence says
    /// the member is clearly worse than going without it, up to this many steps.
    static let pauseGrowth = 2
    static let pauseGrowthWhenClearlyWorse = 4
    /// "Clearly worse": an advantage below this.
    static let clearlyWorse = 0.9
    static let longestPause = 4096

    // MARK: Learning the verification cost

    /// Tree sizes (tokens verified in one forward) whose times are kept.
    static let largestLearnedSize = 80
    /// Verifications of a size before its time counts in the fit.
    static let learnedSizeEvidence = 3
    /// A size not timed in this many verifications leaves the fit.
    static let learnedSizeMaxAge = 256
    /// Most weight one size has in the fit (its verifications, capped), so that the most common
    /// size does not drown the others.
    static let learnedSizeWeightCap = 20
    /// Least difference in the seed's extra cost between the sizes timed (in one-token steps) to
    /// tell a slope: with each size's average within ±2% (about ten times each), sizes this close
    /// give the slope to ±15% (sizes 4 and 8 are ~0.8 apart here, 4 and 6 ~0.45, 2 and 4 ~0.05).
    static let smallestExtraCostSpread = 0.25
    /// Least extra cost (over one token, in one-token steps, by the fitted shape) of a size whose
    /// time sets its price: below it a timing error of 2% is an error of 10% or more in the factor.
    static let smallestFactorExtra = 0.2
    /// The learned slope's bounds relative to the seed's (a probe is not off by more), and the
    /// grid it is searched on (steps of ~2%).
    static let scaleRange = 0.25...4.0
    static let scaleGridSteps = 128
    /// A fitted slope within this band of the seed's keeps the seed's. The errors that cost were
    /// probes too steep, at 0.55–0.65 of the true slope; a fit above the seed's is mostly the fit's
    /// own bias: it ended at 1.2–1.55 on hosts whose probe matched the times in place at the sizes
    /// sent (HumanEval-10 on a loaded host: the chain's 9-token trees took 2.34 of its one-token
    /// steps in place, the probe said ~2.35, the fit 2.9), as the seed's flat start (2 and 4 tokens
    /// alike) does not match the sizes' times in place and the free one-token term absorbs the
    /// difference. Pricing by such a fit made `auto` 2–3% slower (HumanEval-10, alternated: 1.88x
    /// and 1.82x against 1.91x and 1.89x with the seed).
    static let trustedScaleBand = 0.8...2.0
    /// Every this-many-th step sends one node more than priced best: a tree size sent every step
    /// teaches nothing about the slope, and without other sizes a curve seeded too steep would
    /// never be found out (the extra node is the next most valuable one). Rarely: on a full
    /// 8-node chain the extra node makes a 10-token tree, which took ~0.3 one-token steps more
    /// in place (the decoder's times per size on HumanEval-10: 9 tokens 2.1, 10 tokens 2.55),
    /// about 1% of HumanEval's time when sent every 8th step; the sizes sent vary on their own
    /// in both HumanEval and chat. Only while the sizes sent do not yet fit a slope: once they do,
    /// each size is priced as timed, and the probe's extra node cost ~1% of HumanEval's time
    /// for nothing (`auto` at 0.981 of the chain with it).
    static let sizeProbeInterval = 32
    /// Most plain work of other requests in a target forward (tokens: one per request decoding,
    /// prompt chunks whole) for which a draft model whose forwards are shared (`DraftLane`) is
    /// still priced as a member: beyond it, it steps aside as an unshared one does. With one
    /// other request the shared-forward pricing holds (HumanEval-8, 128 tokens,
    /// Zen 4 host: 2 clients decode 54.8 tokens/s against plain batched 50.3 and one `auto`
    /// client's 47.3); with three it sent 4.6-token trees per request into ~29-token forwards
    /// that ran at 61.7 tokens/s against plain batched decoding's 106.8: there the forward is
    /// compute-bound, drafted nodes are accepted less often than valued, and the draft round
    /// (27% of the wall time) is dearer than priced.
    static let sharedDraftMostPlainLoad = 1
}
