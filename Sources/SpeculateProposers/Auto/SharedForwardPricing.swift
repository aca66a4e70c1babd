import SpeculateCore

/// Pricing when the target's forward is shared with other requests (`serve --parallel`): the
/// machine's time is the whole batch's, so a request's tree is worth its nodes only where they
/// bring more tokens than the time they add would bring the batch anyway.
///
/// With R other requests and `load` tokens of theirs in the forward, plain decoding yields the
/// batch ρ = (R + 1) / c(R + 1) tokens per one-token step (c the verification curve). A tree of n
/// nodes adds c(load + 1 + n) − c(load + 1) steps of verification, and drafting adds its own
/// time (every other request waits for it; a draft model's forwards shared by several requests
/// cost each its share), so n pays when its expected accepted tokens exceed
/// ρ times that. Alone (load 0) ρ is 1, the plain step's rate; under load ρ grows and the steep
/// part of the curve comes sooner, so trees shrink, and a draft model whose forwards cost a
/// fifth of a step each stops paying: `auto` falls back towards plain batched decoding, which
/// is what these CPUs do best at four or more requests. Greedy decoding only (a sampled step's
/// drafts must not hinge on timings).
extension PolicyState {
    /// The batch's plain rate, tokens per one-token step: the useful work the forward's time
    /// buys without draft nodes (a token per decoding request, the chunks of prompts being read).
    /// Not the tokens it carries: counting the others' tree nodes as tokens would value time at
    /// what their trees might yield, and two requests would each find the other's tree a reason
    /// to send none. Prompt chunks count: a tree riding on a 64-token prompt chunk is verified on
    /// the compute-bound part of the curve, and the time is the prompt's too.
    func batchRate() -> Double { Double(plainLoad + 1) / sharedCost(plainLoad + 1) }

    /// The cost of a shared forward of `n` tokens in one-token steps: the start-up probe's curve
    /// (the forward alone on a quiet machine), not the prices learned in place. Those are timed
    /// around the decoder's own steps, and on a server's steps with no load (between the others'
    /// requests, beside their prompt reads and their threads' work) they came out ragged (4
    /// tokens 1.24 steps, 5 tokens 1.30, 2 tokens 1.32 on one slot), pricing a fifth node at 0.06
    /// steps where the forward's own is ~0.2: four clients' `auto` sent n-gram pairs into every
    /// forward and decoded at 0.8x plain batched decoding.
    func sharedCost(_ n: Int) -> Double { cost.seed.relativeCost(n) / cost.seed.relativeCost(1) }

    /// The decoding loops `member`'s forwards are shared with (1 alone, or when the load is past
    /// ``AutoTuning/sharedDraftMostPlainLoad``: then it is priced as if unshared).
    func sharers(_ member: Int) -> Int {
        guard member < drafters.count, plainLoad <= AutoTuning.sharedDraftMostPlainLoad else { return 1 }
        return max(1, drafters[member])
    }

    /// Steps of verification `nodes` more nodes add to a forward already carrying `load + 1` tokens.
    func marginalVerification(nodes: Int, load: Int) -> Double {
        sharedCost(load + 1 + nodes) - sharedCost(load + 1)
    }

    /// The depth to ask a costly member under load (nil: it does not pay), by its acceptance model
    /// and its drafting cost (shared by the loops that draft in the same forwards).
    func sharedDepth(_ member: Int, limit: Int, load: Int) -> Int? {
        let rate = batchRate()
        var best: (depth: Int, surplus: Double)?
        var survival = 1.0
        var expected = 0.0
        for depth in stride(from: 1, through: limit, by: 1) {
            survival *= members[member].acceptance.depthAcceptance(depth)
            expected += calibrated(survival)
            let drafting = members[member].secondsPerDepth * Double(depth) / stepSeconds / Double(sharers(member))
            let surplus = expected - rate * (marginalVerification(nodes: depth, load: load) + drafting)
            if surplus > (best?.surplus ?? 0) { best = (depth, surplus) }
        }
        return best?.depth
    }

    /// A node's value under load: its modelled value scaled by how the nodes sent under load
    /// fared (see ``SharedCalibration``).
    func calibrated(_ value: Double) -> Double { value * sharedCalibration.factor }

    /// How many of the nodes, in `order` of value with `values` summed along it, to send under
    /// load: the count with the largest surplus of expected tokens over the batch's rate times
    /// their verification (none when no count has one).
    func sharedCount(values: [Double], load: Int, maxNodes: Int) -> Int {
        let rate = batchRate()
        var best = (count: 0, surplus: 0.0)
        var expected = 0.0
        for (rank, value) in values.prefix(maxNodes).enumerated() {
            expected += value
            let surplus = expected - rate * marginalVerification(nodes: rank + 1, load: load)
            if surplus > best.surplus { best = (rank + 1, surplus) }
        }
        return best.count
    }
}

/// Drafted tokens accepted against the values the pricing gave the nodes it sent, over the steps
/// that shared a forward (discounted sums). Under load only nodes rated far above the rest pay
/// (with four requests, ~0.8 where alone 0.2 does), and the best-rated of many guesses are
/// rated too high (the winner's curse): four clients' `auto` sent ~1.1 n-gram nodes per forward
/// that were accepted about half the time, and decoded at 0.91x plain batched decoding. The
/// factor scales values under load by the realized ratio (never up).
struct SharedCalibration {
    var predicted = 0.0
    var realized = 0.0
    /// Weight of each older step: about the last hundred loaded steps that sent nodes count.
    static let discount = 0.99
    /// Pseudo-tokens on both sides: with no evidence the factor is 1.
    static let prior = 2.0

    mutating func add(predicted expected: Double, realized accepted: Int) {
        predicted = Self.discount * predicted + expected
        realized = Self.discount * realized + Double(accepted)
    }

    var factor: Double { min(1, (realized + Self.prior) / (predicted + Self.prior)) }
}
